"""CopyTrade reconciliation: admit the trade into the ledger, mirror its state into the status until it
is terminal, then apply the TTL. :mod:`.mirrors` runs these for every CopyTrade the watch shows, and the
kopf handlers (:mod:`.handlers`) only route there; the status is built by the pure :mod:`.status`. Every status write is one merge PATCH, and only when
something changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from xorj.controller import admission, metrics
from xorj.controller.common import (
    COPYTRADES,
    STRATEGIES,
    now,
    ranks_of_pool,
    status_model,
    strategy_key,
    validation_message,
)
from xorj.controller.conditions import set_condition
from xorj.controller.copytrade import status as st
from xorj.controller.models import ConditionStatus, CopyTradeSpec, CopyTradeStatus, TradingStrategySpec
from xorj.controller.runtime import Runtime
from xorj.domain.trades import TradeState
from xorj.errors import LedgerError
from xorj.ledger import IdempotencyKey, Trade, TradeIntent, transactions, vaults
from xorj.ledger import scores as score_store
from xorj.ledger.records import AlertSeverity, NewAlert

log = logging.getLogger(__name__)

# A many-vault CopyTrade's mirror waits this long after a wake-up before reading its counts again.
FANOUT_COALESCE_SECONDS = 0.2


def copytrade_ref(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


# The watch-fed index of strategies: (namespace, name) -> the strategy's spec as stored, or None.
StrategyLookup = Callable[[str, str], "dict[str, Any] | None"]


def _no_index(namespace: str, name: str) -> dict[str, Any] | None:
    return None


async def _strategy_spec(rt: Runtime, namespace: str, name: str,
                         strategies: StrategyLookup) -> TradingStrategySpec | None:
    """A strategy's spec: from the watch-fed index (no API request), else a GET (a strategy created a
    moment ago may not be indexed yet). None if the strategy does not exist or its spec does not
    validate (the strategy's own reconcile says why)."""
    raw = strategies(namespace, name)
    if raw is None:
        obj = await rt.kube.get_cr(namespace, STRATEGIES, name)
        if obj is None:
            return None
        raw = obj["spec"]
    else:
        # one validation per indexed version of the strategy, shared by all its CopyTrades: thousands
        # admitted at once each held a validated copy of the same spec
        cached = rt.validated_strategy_specs.get((namespace, name))
        if cached is not None and (cached[0] is raw or cached[0] == raw):
            return cached[1]
    try:
        spec = TradingStrategySpec.model_validate(dict(raw))
    except ValidationError:
        spec = None
    if strategies(namespace, name) is raw:
        rt.validated_strategy_specs[(namespace, name)] = (raw, spec)
    return spec


def _created_before(trade: Trade, body: Any) -> bool:
    """Did the trade exist before this CopyTrade object? Then this object is a duplicate (a
    re-creation or a second CopyTrade for the same lead trade), not the one that admitted it."""
    stamp = body["metadata"].get("creationTimestamp")
    if not stamp:
        return False
    created = datetime.fromisoformat(stamp)
    # creationTimestamp has 1 s resolution: a trade admitted by this object is never older than it
    return trade.created_at < created


async def admit_copytrade(
    rt: Runtime, body: Any, spec: CopyTradeSpec, logger: Any, strategies: StrategyLookup = _no_index
) -> tuple[Trade | None, CopyTradeStatus | None]:
    """Admit the trade into the ledger (idempotent) and write the status that says so.
    (None, None) while the strategy does not exist.

    The strategy decides (:mod:`xorj.controller.admission`): a lead trader it does not follow gets
    its trade stored already FAILED (LEADER_NOT_FOLLOWED, never claimable), and ``spec.sizing`` sets
    the follower's amount."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    strategy = await _strategy_spec(rt, namespace, spec.strategy, strategies)
    previous = status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
    if strategy is None:
        cond = set_condition(
            previous.conditions, st.ADMITTED, ConditionStatus.FALSE, "StrategyNotFound",
            f"TradingStrategy {spec.strategy!r} not found in {namespace}; waiting for it",
            now=now(), generation=meta.get("generation"),
        )
        if not any(c.type == st.ADMITTED and c.reason == "StrategyNotFound" for c in previous.conditions):
            kopf.event(body, type="Warning", reason="StrategyNotFound", message=cond.message)
            await rt.kube.patch_status(namespace, COPYTRADES, name, {"conditions": [cond.to_wire()]})
        return None, None
    scores = []
    pool_ranks = None
    if admission.needs_scores(strategy):
        scores = await rt.ledger_run(score_store.list_scores(None, None, None))
        pool_ranks = await ranks_of_pool(rt, namespace, admission.needs_pool(strategy))
    decision = admission.decide(strategy, spec, scores, pool_ranks)
    intent = TradeIntent(
        strategy=strategy_key(namespace, spec.strategy),
        vault=strategy.vault.public_key,
        lead_signature=spec.lead_signature,
        lead_trader=spec.lead_trader,
        input_mint=spec.input_mint,
        output_mint=spec.output_mint,
        amount=decision.amount or spec.amount,  # a refused trade keeps the lead's amount on record
        max_slippage_bps=spec.max_slippage_bps,
        notional_usd=decision.notional_usd,
        copytrade=copytrade_ref(namespace, name),
    )
    actor = f"operator/{rt.identity}"
    if decision.refused:
        assert decision.refusal is not None
        alert = NewAlert("ADMISSION_REFUSED", AlertSeverity.WARNING,
                         f"CopyTrade {copytrade_ref(namespace, name)}: {decision.detail}"[:1000],
                         strategy=intent.strategy)
        result = await rt.ledger_run(transactions.admit_refused(intent, decision.refusal, decision.detail,
                                                                  actor=actor, alert=alert))
        if result.created:
            kopf.event(body, type="Warning", reason="AdmissionRefused",
                       message=f"trade {result.trade_id} FAILED {decision.refusal.value}: {decision.detail}")
            logger.info("trade refused at admission", extra={"trade_id": result.trade_id,
                                                              "reason": decision.refusal.value})
    else:
        # one trade per active vault of the strategy, in one transaction; this CopyTrade's tradeId is
        # the strategy's own vault's (spec.vault), as for a one-vault strategy
        fanned = await rt.ledger_run(vaults.admit_fanout(intent, actor=actor))
        result = fanned.results[intent.vault]
    trade = await rt.ledger_run(transactions.get_trade(result.trade_id))
    # A CopyTrade the watcher wrote to show a trade it admitted from the ledger names that trade
    # (its copytrade column) and carries the watcher's label: it is the trade's own object.
    projected = (trade.copytrade == copytrade_ref(namespace, name)
                 and (meta.get("labels") or {}).get("trading.xorj.io/source") == "watcher")
    duplicate = (not result.created) and not projected and (
        trade.copytrade != copytrade_ref(namespace, name) or _created_before(trade, body)
    )
    if projected and not result.created:
        fields = {"admission": "Admitted",
                  "admissionMessage": f"trade {result.trade_id} admitted by the watcher from lead swap "
                                      f"{spec.lead_signature}"}
        metrics.ADMISSIONS.labels("admitted").inc()
    elif (result.created or not duplicate) and decision.refused:
        assert decision.refusal is not None
        fields = {"admission": "Admitted",
                  "admissionMessage": f"trade {result.trade_id} refused at admission: {decision.refusal.value}: "
                                      f"{decision.detail}"}
        metrics.ADMISSIONS.labels("refused").inc()
    elif result.created or not duplicate:
        fields = {"admission": "Admitted", "admissionMessage": f"trade {result.trade_id} admitted"}
        metrics.ADMISSIONS.labels("admitted").inc()
        if result.created:
            kopf.event(body, type="Normal", reason="Admitted", message=f"trade {result.trade_id} admitted (PENDING)")
            logger.info("trade admitted", extra={"trade_id": result.trade_id})
    else:
        fields = st.admission_fields(result, copytrade_ref(namespace, name), trade.copytrade)
        metrics.ADMISSIONS.labels("duplicate").inc()
        kopf.event(body, type="Normal", reason="DuplicateTrade", message=fields["admissionMessage"])
        logger.info("duplicate CopyTrade: no new trade", extra={"trade_id": result.trade_id})
    seeded = previous.model_copy(update={
        "trade_id": str(result.trade_id),
        "admission": fields["admission"],
        "admission_message": fields["admissionMessage"],
    })
    status = st.copytrade_status(trade=trade, previous=seeded, generation=meta.get("generation"), now=now())
    status = st.with_fanout(status, await rt.ledger_run(vaults.fanout_counts(intent.strategy, spec.lead_signature)),
                            now=now())
    if await rt.kube.patch_status(namespace, COPYTRADES, name, status.to_wire()) is None:
        return None, None  # deleted meanwhile
    return trade, status


@dataclass(frozen=True)
class MirrorEnd:
    """How one run of a CopyTrade's mirror ended (:mod:`.mirrors` acts on it)."""

    retry_in: float | None = None  # not admitted (no strategy yet, ledger unavailable): run again then
    ttl_remaining: float | None = None  # finished: delete the object after this long (None: keep it)


async def mirror_copytrade(rt: Runtime, body: Any, logger: Any, strategies: StrategyLookup = _no_index, *,
                           first_look_done: Callable[[], None] = lambda: None) -> MirrorEnd:
    """One CopyTrade's mirror: admit it, then keep its status equal to the ledger's trade until it is
    terminal; say whether and when its TTL deletes it.

    One admission attempt per run: a CopyTrade whose strategy does not exist yet, or whose admission
    met an unavailable ledger, ends the run with ``retry_in`` (it must not hold one of the few
    admission slots while it waits). ``first_look_done`` is called once the trade is admitted and its
    status written, before the first wait for news.

    Woken by NOTIFY for low latency; re-reads the ledger every ``copytrade_resync_seconds`` anyway, so
    a lost notification delays a status, never loses it. Cancelled when the object's deletion begins
    or the operator stops.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = CopyTradeSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        # what CEL cannot check (e.g. a public key that does not decode to 32 bytes): never admitted
        message = validation_message(exc)
        kopf.event(body, type="Warning", reason="InvalidSpec", message=message)
        previous = status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
        cond = set_condition(previous.conditions, st.ADMITTED, ConditionStatus.FALSE, "InvalidSpec",
                                message, now=now(), generation=meta.get("generation"))
        await rt.kube.patch_status(namespace, COPYTRADES, name, {"conditions": [cond.to_wire()]})
        return MirrorEnd()
    status = status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
    resync = rt.settings.timing.copytrade_resync_seconds
    trade_id = int(status.trade_id) if status.trade_id else None

    if trade_id is None:
        try:
            trade, admitted = await admit_copytrade(rt, body, spec, logger, strategies)
        except LedgerError as exc:
            logger.warning("admission failed, will retry", extra={"error": type(exc).__name__})
            trade = admitted = None
        if trade is None or admitted is None:
            return MirrorEnd(retry_in=min(resync, 5.0))
        trade_id, status = trade.trade_id, admitted

    # A many-vault fan-out (status.vaults set at admission) is mirrored as counts: one aggregate query
    # per wake-up, whatever the vault count; a news of any of its trades wakes the loop.
    fanout = status.vaults is not None
    key = strategy_key(namespace, spec.strategy)
    trade_ids = [trade_id]
    if fanout:
        while True:
            try:
                trade_ids = await rt.ledger_run(vaults.fanout_trade_ids(key, spec.lead_signature))
                break
            except LedgerError as exc:
                logger.warning("ledger read failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(min(resync, 5.0))
    wake = rt.wakeups.register_many(trade_ids)
    try:
        while True:
            wake.clear()  # cleared before reading: a NOTIFY during the read re-wakes us
            try:
                trade = await rt.ledger_run(transactions.get_trade(trade_id))
                counts = await rt.ledger_run(vaults.fanout_counts(key, spec.lead_signature)) if fanout else None
            except LedgerError as exc:
                logger.warning("ledger read failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(min(resync, 5.0))
                continue
            new_status = st.with_fanout(st.copytrade_status(
                trade=trade, previous=status, generation=meta.get("generation"), now=now()
            ), counts, now=now())
            if new_status != status:
                await rt.kube.patch_status(namespace, COPYTRADES, name, new_status.to_wire())
                notified = rt.wakeups.take_notified_at(trade_id)
                if notified is not None:
                    metrics.MIRROR_LATENCY.observe(time.monotonic() - notified)
                _phase_events(body, status, new_status)
                status = new_status
            if trade.is_terminal and (new_status.phase is None or new_status.phase.is_terminal):
                break
            first_look_done()
            try:
                await asyncio.wait_for(wake.wait(), timeout=resync)
            except TimeoutError:
                pass
            if fanout:  # news of many vaults' trades comes in bursts: one read and one PATCH per burst
                await asyncio.sleep(FANOUT_COALESCE_SECONDS)
    finally:
        rt.wakeups.unregister_many(trade_ids, wake)
    return MirrorEnd(ttl_remaining=st.ttl_remaining(status.finished_at, spec.ttl_seconds_after_finished, now()))


async def delete_after_ttl(rt: Runtime, namespace: str, name: str, uid: str) -> None:
    """A terminal CopyTrade's TTL ran out: delete it (this very object: a re-created one of the same
    name is another uid and is left alone)."""
    if await rt.kube.delete_cr(namespace, COPYTRADES, name, uid=uid):
        metrics.TTL_DELETIONS.inc()
        log.info("terminal CopyTrade deleted after its TTL", extra={"copytrade": copytrade_ref(namespace, name)})


def _phase_events(body: Any, before: CopyTradeStatus, after: CopyTradeStatus) -> None:
    if before.phase == after.phase and before.attempt_count == after.attempt_count:
        return
    if after.phase is TradeState.CONFIRMED and before.phase is not TradeState.CONFIRMED:
        metrics.COPYTRADES_TERMINAL.labels("CONFIRMED").inc()
        kopf.event(body, type="Normal", reason="Confirmed",
                   message=f"trade {after.trade_id} confirmed by {after.final_signature} "
                           f"after {after.attempt_count} attempt(s)")
    elif after.phase is TradeState.FAILED and before.phase is not TradeState.FAILED:
        metrics.COPYTRADES_TERMINAL.labels("FAILED").inc()
        kopf.event(body, type="Warning", reason="Failed",
                   message=f"trade {after.trade_id} failed: {after.error_reason}"
                           + (f" ({after.error_message})" if after.error_message else ""))
    elif after.attempt_count > before.attempt_count and after.attempts:
        last = after.attempts[-1]
        kopf.event(body, type="Normal", reason="Submitted",
                   message=f"attempt {last.number} signed at {last.slippage_bps} bps slippage: {last.signature}")


async def finalize_copytrade(rt: Runtime, body: Any, logger: Any) -> None:
    """Let a CopyTrade go only when its trade cannot be orphaned.

    - no trade, a terminal one, or this object is a duplicate: go;
    - PENDING and this object admitted it: cancel it (FAILED, CANCELLED), then go;
    - SUBMITTED: a transaction is out; hold (TemporaryError) until it is terminal. If the strategy no
      longer exists at all, there is nobody to finish it and nothing to wait for: go with a Warning
      (the ledger keeps the trade; the strategy's re-creation takes it over). A strategy that is
      being deleted still exists, and its own finalizer keeps its executors until they are done, so
      the two finalizers never wait for each other.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    rt.freshness.forget(meta["uid"])  # the watch may never show our last write of a vanishing object
    status = status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
    spec = CopyTradeSpec.model_validate(dict(body["spec"]))
    try:
        trade: Trade | None
        if status.trade_id:
            trade = await rt.ledger_run(transactions.get_trade(int(status.trade_id)))
        else:
            # admitted, but the status write may have been lost to a crash: look it up by key
            strategy = await _strategy_spec(rt, namespace, spec.strategy, _no_index)
            if strategy is None:
                return
            key = IdempotencyKey(strategy_key(namespace, spec.strategy), strategy.vault.public_key, spec.lead_signature)
            trade = await rt.ledger_run(transactions.find_trade(key))
        if trade is None:
            return
        if trade.copytrade != copytrade_ref(namespace, name) or status.admission == "Duplicate":
            return  # the trade belongs to another CopyTrade; deleting a duplicate changes nothing
        if status.vaults is not None:  # a many-vault fan-out: every vault's PENDING trade goes with it
            await rt.ledger_run(transactions.cancel_pending(
                trade.strategy, f"CopyTrade {namespace}/{name} deleted", actor=f"operator/{rt.identity}",
                lead_signature=trade.lead_signature, copytrade=copytrade_ref(namespace, name)))
            trade = await rt.ledger_run(transactions.get_trade(trade.trade_id))
        if trade.is_terminal:
            return
        if trade.state is TradeState.PENDING:
            try:
                await rt.ledger_run(transactions.cancel_trade(trade.trade_id, f"CopyTrade {namespace}/{name} deleted",
                                                             actor=f"operator/{rt.identity}"))
                kopf.event(body, type="Normal", reason="Cancelled",
                           message=f"trade {trade.trade_id} cancelled before any send")
                return
            except LedgerError:
                trade = await rt.ledger_run(transactions.get_trade(trade.trade_id))
                if trade.is_terminal:
                    return
    except LedgerError as exc:
        raise kopf.TemporaryError(f"ledger unavailable ({type(exc).__name__}); retrying", delay=5) from exc
    if await rt.kube.get_cr(namespace, STRATEGIES, spec.strategy) is None:
        kopf.event(body, type="Warning", reason="StrategyGone",
                   message=f"trade {trade.trade_id} is {trade.state.value} and its strategy is gone; "
                           "released, the ledger keeps the trade")
        return
    raise kopf.TemporaryError(
        f"trade {trade.trade_id} is {trade.state.value}: waiting until it is terminal", delay=2
    )
