"""Reconciliation of both kinds: read, decide with the pure modules, write once.

The kopf handlers (handlers.py) only route to these functions. Here: the I/O around
:mod:`xorj.controller.desired` (children) and :mod:`xorj.controller.status` (status), with Events for
what a person cares about. Every status write is one merge PATCH, and only when something changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from xorj.controller import admission, desired, guard, metrics
from xorj.controller import status as st
from xorj.controller.models import (
    CopyTradeSpec,
    CopyTradeStatus,
    RankedTrader,
    TraderPoolStatus,
    TradingStrategySpec,
    TradingStrategyStatus,
)
from xorj.controller.pools import POOLS
from xorj.controller.runtime import Runtime
from xorj.domain.trades import TradeState
from xorj.errors import LedgerError
from xorj.ledger import IdempotencyKey, Trade, TradeIntent
from xorj.ledger.records import AlertSeverity, NewAlert
from xorj.redaction import redact_urls

log = logging.getLogger(__name__)

STRATEGIES = "tradingstrategies"
COPYTRADES = "copytrades"
# Re-apply unchanged children at most this often: heals hand edits without a PATCH every resync.
REAPPLY_SECONDS = 300.0


def now() -> datetime:
    return datetime.now(UTC)


def strategy_key(namespace: str, name: str) -> str:
    """The ledger's strategy column: namespaced, so equal names in two namespaces never mix."""
    return f"{namespace}/{name}"


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _status_model(model: type, raw: Any) -> Any:
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError:
        return None  # unreadable (e.g. written by an older version): recomputed from scratch


def _condition_events(body: Any, before: list[st.Condition], after: list[st.Condition]) -> None:
    """An Event for each condition whose status changed (the transitions a person cares about)."""
    old = {c.type: c.status for c in before}
    for cond in after:
        if old.get(cond.type) != cond.status and (cond.type in old or cond.status.value == "True"):
            warn = (cond.type != st.PAUSED) and cond.status.value != "True"
            kopf.event(
                body,
                type="Warning" if warn else "Normal",
                reason=f"{cond.type}{cond.status.value}",
                message=cond.message,
            )


# --------------------------------------------------------------------------------------------------
# Cluster-wide halt


async def enforce_trading_halt(rt: Runtime, logger: Any) -> bool:
    """Make the ledger's halt what the operator's setting says (a no-op when it already is): the
    setting is the source of truth, so a halt lifted by hand while the setting is on comes back at
    the next resync. False when the ledger could not be reached (tried again at the next resync)."""
    wanted = rt.settings.global_halt
    reason = (rt.settings.global_halt_reason or "operator setting globalHalt") if wanted else None
    try:
        before = await rt.ledger_call("trading_halt", rt.ledger.trading_halt)
        if (before.halted, before.reason if wanted else None) == (wanted, reason):
            return True
        await rt.ledger_call("set_trading_halt", rt.ledger.set_trading_halt, wanted, reason=reason,
                             actor=f"operator/{rt.identity}")
    except LedgerError as exc:
        logger.warning("could not enforce the trading halt setting", extra={"error": type(exc).__name__})
        return False
    logger.warning("cluster-wide trading halt " + ("ON: every trade is refused" if wanted else "lifted"),
                   extra={"reason": reason})
    return True


# --------------------------------------------------------------------------------------------------
# TradingStrategy


async def reconcile_strategy(rt: Runtime, body: Any, logger: logging.Logger | logging.LoggerAdapter) -> None:
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = meta.get("generation")
    previous = _status_model(TradingStrategyStatus, body.get("status"))
    try:
        spec = TradingStrategySpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        # The API server validates most of the same rules; what reaches here is what CEL cannot check
        # (a public key that does not decode to 32 bytes) or a CRD older than the operator. Retrying
        # cannot fix a spec: say so in a condition and wait for the next change.
        await _refuse_strategy(rt, body, previous, guard.Refusal(guard.INVALID_SPEC, _validation_message(exc)))
        metrics.RECONCILES.labels("TradingStrategy", "invalid").inc()
        return

    refusal = guard.check_endpoints(spec, allow_insecure=rt.settings.allow_insecure_endpoints)
    if refusal is None:
        refusal = await _check_secrets(rt, namespace, name, spec)
    if refusal is not None:
        await _refuse_strategy(rt, body, previous, refusal)
        # a binding revoked (or an endpoint refused) after executors were built: stop them
        if await rt.kube.scale_to_zero("Deployment", namespace, desired.names(name)["deployment"]):
            logger.warning("executors scaled to zero: the strategy is refused",
                           extra={"strategy": name, "reason": refusal.reason})
        rt.applied.pop(uid, None)
        metrics.RECONCILES.labels("TradingStrategy", "refused").inc()
        return

    await enforce_trading_halt(rt, logger)
    defaults = rt.settings.executor_defaults()
    owner = desired.Owner(name=name, uid=uid)
    children = desired.children(owner, namespace, spec, defaults)
    digest = hashlib.sha256(json.dumps(children, sort_keys=True).encode()).hexdigest()
    last = rt.applied.get(uid)
    deployment_obj: dict[str, Any] | None = None
    dep_name = desired.names(name)["deployment"]
    apply_error: str | None = None
    must_apply = last is None or last[0] != digest or time.monotonic() - last[1] > REAPPLY_SECONDS
    if not must_apply:
        deployment_obj = await rt.kube.get_child("Deployment", namespace, dep_name)
        want = next(c for c in children if c["kind"] == "Deployment")
        must_apply = _deployment_drifted(deployment_obj, want)
        if must_apply:
            logger.info("executor Deployment drifted from the spec; re-applying", extra={"strategy": name})
    if must_apply:
        try:
            for child in children:
                applied = await rt.kube.apply(child)
                if child["kind"] == "Deployment":
                    deployment_obj = applied
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            # the API server refused a child (e.g. a quota or a policy) or could not be reached: say so
            # in ChildrenApplied and try again at the next resync, instead of raising out of the handler
            apply_error = f"{child['kind']} {child['metadata']['name']}: {_api_error_text(exc)}"
            logger.warning("applying a child failed", extra={"strategy": name, "error": apply_error})
            deployment_obj = await _get_child_quietly(rt, namespace, dep_name)
        else:
            rt.applied[uid] = (digest, time.monotonic())
            if last is not None and last[0] != digest:
                logger.info("executors reconfigured", extra={"strategy": name, "digest": digest[:12]})

    replicas = desired.desired_replicas(spec)
    if deployment_obj is None:
        observation = st.DeploymentObservation(desired=replicas, absent=True)
    else:
        observation = st.DeploymentObservation.from_status(replicas, deployment_obj.get("status"))

    ledger_error: str | None = None
    counts = followed = None
    try:
        raw_counts = await rt.ledger_call("counts_by_state", rt.ledger.counts_by_state, strategy_key(namespace, name))
        scores = await rt.ledger_call("list_trader_scores", rt.ledger.list_trader_scores)
        counts = st.trade_counts(raw_counts)
        pool_ranks = await _pool_ranks(rt, namespace, admission.needs_pool(spec))
        followed = st.followed_traders(spec, scores, pool_ranks)
    except LedgerError as exc:
        ledger_error = f"ledger unavailable: {type(exc).__name__}"
    except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
        logger.warning("reading the strategy's TraderPool failed; followed traders kept",
                       extra={"strategy": name, "error": _api_error_text(exc)})

    new_status = st.strategy_status(
        spec=spec,
        generation=generation,
        deployment=observation,
        ledger_error=ledger_error,
        counts=counts,
        followed=followed,
        previous=previous,
        config_hash=desired.config_hash(spec, defaults),
        now=now(),
        apply_error=apply_error,
    )
    if previous is None or new_status != previous:
        await rt.kube.patch_status(namespace, STRATEGIES, name, new_status.to_wire())
        _condition_events(body, previous.conditions if previous else [], new_status.conditions)
        change = st.followed_change(previous.followed_traders if previous else [], new_status.followed_traders)
        if change is not None and followed is not None:
            kopf.event(body, type="Normal", reason="FollowedTradersChanged", message=change)
            logger.info("followed traders changed", extra={"strategy": name, "followed": new_status.followed_trader_count})
    metrics.RECONCILES.labels("TradingStrategy", "ok").inc()


async def _pool_ranks(rt: Runtime, namespace: str, pool: str | None) -> list[RankedTrader] | None:
    """The ranking of TraderPool ``pool`` (its status.ranks); None when no pool is named, when it does
    not exist, or when it has no readable ranking yet."""
    if pool is None:
        return None
    obj = await rt.kube.get_cr(namespace, POOLS, pool)
    status = _status_model(TraderPoolStatus, (obj or {}).get("status")) if obj is not None else None
    return list(status.ranks) if status is not None and status.last_scored is not None else None


async def _check_secrets(rt: Runtime, namespace: str, name: str, spec: TradingStrategySpec) -> guard.Refusal | None:
    """Read the metadata of every Secret the executors would mount and check each is bound to ``name``."""
    secrets: dict[str, dict[str, str] | None] = {}
    for secret in spec.referenced_secrets():
        try:
            secrets[secret] = await rt.kube.secret_annotations(namespace, secret)
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            return guard.Refusal("SecretUnreadable",
                                 f"Secret {secret!r}: cannot read its metadata ({_api_error_text(exc)})")
    return guard.check_secret_bindings(name, spec, secrets)


async def _refuse_strategy(rt: Runtime, body: Any, previous: TradingStrategyStatus | None,
                           refusal: guard.Refusal) -> None:
    """Write SpecAccepted=False (and Ready=False) with the refusal; a Warning Event when it is new."""
    meta = body["metadata"]
    message = redact_urls(refusal.message)
    status = st.refused_strategy_status(previous=previous, generation=meta.get("generation"),
                                        reason=refusal.reason, message=message, now=now())
    old = next((c for c in (previous.conditions if previous else []) if c.type == st.SPEC_ACCEPTED), None)
    if old is None or old.status.value != "False" or old.reason != refusal.reason or old.message != message:
        kopf.event(body, type="Warning", reason=refusal.reason, message=message)
    if previous is None or status != previous:
        await rt.kube.patch_status(meta["namespace"], STRATEGIES, meta["name"], status.to_wire())


def _api_error_text(exc: BaseException) -> str:
    """A short, redacted description of a failed API call (the API server's message, not its body)."""
    if isinstance(exc, ApiException):
        detail = ""
        try:
            detail = json.loads(exc.body or "{}").get("message") or ""
        except (ValueError, AttributeError):
            detail = ""
        text = f"{exc.status} {exc.reason}" + (f": {detail}" if detail else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact_urls(text)[:1000]


async def _get_child_quietly(rt: Runtime, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await rt.kube.get_child("Deployment", namespace, name)
    except (ApiException, OSError, urllib3.exceptions.HTTPError):
        return None


def _deployment_drifted(actual: dict[str, Any] | None, want: dict[str, Any]) -> bool:
    """Someone deleted, scaled or edited the executor Deployment by hand (cheap checks only; the
    periodic full re-apply catches the rest)."""
    if actual is None:
        return True
    annotations = ((actual["spec"]["template"].get("metadata") or {}).get("annotations") or {})
    return (
        actual["spec"].get("replicas") != want["spec"]["replicas"]
        or annotations.get(desired.CONFIG_HASH_ANNOTATION)
        != want["spec"]["template"]["metadata"]["annotations"][desired.CONFIG_HASH_ANNOTATION]
    )


async def finalize_strategy(rt: Runtime, body: Any, logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Hold the strategy (and so its executors) until its in-flight trades are finished.

    SUBMITTED trades have a transaction out: their executors must see them through. PENDING ones are
    drained by the same executors. A paused strategy has no executors: its PENDING trades are
    cancelled (nothing was sent for them) and only SUBMITTED ones are waited for. After
    ``strategy_drain_seconds`` the strategy is let go with a Warning: PENDING trades left are cancelled,
    SUBMITTED ones stay in the ledger for an executor of a re-created strategy of the same name to
    settle. A PENDING trade is never left to run later under a strategy someone re-creates with
    another vault or other limits.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    key = strategy_key(namespace, name)
    rt.freshness.forget(meta["uid"])  # the watch may never show our last write of a vanishing object
    deleted_at = meta.get("deletionTimestamp")
    waited = (now() - datetime.fromisoformat(deleted_at)).total_seconds() if deleted_at else 0
    timed_out = waited >= rt.settings.strategy_drain_seconds
    paused = bool((body.get("spec") or {}).get("paused"))
    try:
        cancelled = []
        if paused or timed_out:
            cancelled = await rt.ledger_call("cancel_pending", rt.ledger.cancel_pending, key,
                                             f"TradingStrategy {key} deleted before the trade was sent",
                                             actor=f"operator/{rt.identity}")
        counts = await rt.ledger_call("counts_by_state", rt.ledger.counts_by_state, key)
    except LedgerError as exc:
        raise kopf.TemporaryError(f"ledger unavailable ({type(exc).__name__}); retrying", delay=5) from exc
    if cancelled:
        kopf.event(body, type="Normal", reason="TradesCancelled",
                   message=f"{len(cancelled)} pending trade(s) cancelled: the strategy is deleted "
                           f"{'while paused' if paused else 'and its drain time is over'}")
    in_flight = counts[TradeState.SUBMITTED] + counts[TradeState.PENDING]
    if in_flight == 0:
        rt.applied.pop(meta["uid"], None)
        return
    if timed_out:
        kopf.event(body, type="Warning", reason="DrainTimeout",
                   message=f"{in_flight} submitted trade(s) still unsettled after {int(waited)}s; "
                           "released, the ledger keeps them")
        rt.applied.pop(meta["uid"], None)
        return
    raise kopf.TemporaryError(f"waiting for {in_flight} in-flight trade(s) to finish", delay=3)


# --------------------------------------------------------------------------------------------------
# CopyTrade


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
    try:
        return TradingStrategySpec.model_validate(dict(raw))
    except ValidationError:
        return None


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
    previous = _status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
    if strategy is None:
        cond = st.set_condition(
            previous.conditions, st.ADMITTED, st.ConditionStatus.FALSE, "StrategyNotFound",
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
        scores = await rt.ledger_call("list_trader_scores", rt.ledger.list_trader_scores)
        pool_ranks = await _pool_ranks(rt, namespace, admission.needs_pool(strategy))
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
        result = await rt.ledger_call("admit_refused", rt.ledger.admit_refused, intent, decision.refusal,
                                      decision.detail, actor=actor, alert=alert)
        if result.created:
            kopf.event(body, type="Warning", reason="AdmissionRefused",
                       message=f"trade {result.trade_id} FAILED {decision.refusal.value}: {decision.detail}")
            logger.info("trade refused at admission", extra={"trade_id": result.trade_id,
                                                              "reason": decision.refusal.value})
    else:
        result = await rt.ledger_call("admit_trade", rt.ledger.admit_trade, intent, actor=actor)
    trade = await rt.ledger_call("get_trade", rt.ledger.get_trade, result.trade_id)
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
    if await rt.kube.patch_status(namespace, COPYTRADES, name, status.to_wire()) is None:
        return None, None  # deleted meanwhile
    return trade, status


async def mirror_copytrade(rt: Runtime, body: Any, logger: Any, strategies: StrategyLookup = _no_index) -> None:
    """The daemon of one CopyTrade: admit it, then keep its status equal to the ledger's trade until
    it is terminal; then, if it has a TTL, delete it when the TTL runs out.

    Woken by NOTIFY for low latency; re-reads the ledger every ``copytrade_resync_seconds`` anyway, so
    a lost notification delays a status, never loses it. kopf cancels this coroutine when the object
    is deleted or the operator stops or is paused by a higher-priority peer.
    """
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    try:
        spec = CopyTradeSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        # what CEL cannot check (e.g. a public key that does not decode to 32 bytes): never admitted
        message = _validation_message(exc)
        kopf.event(body, type="Warning", reason="InvalidSpec", message=message)
        previous = _status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
        cond = st.set_condition(previous.conditions, st.ADMITTED, st.ConditionStatus.FALSE, "InvalidSpec",
                                message, now=now(), generation=meta.get("generation"))
        await rt.kube.patch_status(namespace, COPYTRADES, name, {"conditions": [cond.to_wire()]})
        return
    status = _status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
    resync = rt.settings.copytrade_resync_seconds
    trade_id = int(status.trade_id) if status.trade_id else None

    while trade_id is None:
        try:
            trade, admitted = await admit_copytrade(rt, body, spec, logger, strategies)
        except LedgerError as exc:
            logger.warning("admission failed, will retry", extra={"error": type(exc).__name__})
            trade = admitted = None
        if trade is not None and admitted is not None:
            trade_id, status = trade.trade_id, admitted
        else:
            await asyncio.sleep(min(resync, 5.0))

    wake = rt.wakeups.register(trade_id)
    try:
        while True:
            wake.clear()  # cleared before reading: a NOTIFY during the read re-wakes us
            try:
                trade = await rt.ledger_call("get_trade", rt.ledger.get_trade, trade_id)
            except LedgerError as exc:
                logger.warning("ledger read failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(min(resync, 5.0))
                continue
            new_status = st.copytrade_status(
                trade=trade, previous=status, generation=meta.get("generation"), now=now()
            )
            if new_status != status:
                await rt.kube.patch_status(namespace, COPYTRADES, name, new_status.to_wire())
                notified = rt.wakeups.take_notified_at(trade_id)
                if notified is not None:
                    metrics.MIRROR_LATENCY.observe(time.monotonic() - notified)
                _phase_events(body, status, new_status)
                status = new_status
            if trade.is_terminal:
                break
            try:
                await asyncio.wait_for(wake.wait(), timeout=resync)
            except TimeoutError:
                pass
    finally:
        rt.wakeups.unregister(trade_id, wake)

    remaining = st.ttl_remaining(status.finished_at, spec.ttl_seconds_after_finished, now())
    if remaining is None:
        return
    await asyncio.sleep(remaining)
    if await rt.kube.delete_cr(namespace, COPYTRADES, name, uid=uid):
        metrics.TTL_DELETIONS.inc()
        logger.info("terminal CopyTrade deleted after its TTL", extra={"trade_id": trade_id})


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
    status = _status_model(CopyTradeStatus, body.get("status")) or CopyTradeStatus()
    spec = CopyTradeSpec.model_validate(dict(body["spec"]))
    try:
        trade: Trade | None
        if status.trade_id:
            trade = await rt.ledger_call("get_trade", rt.ledger.get_trade, int(status.trade_id))
        else:
            # admitted, but the status write may have been lost to a crash: look it up by key
            strategy = await _strategy_spec(rt, namespace, spec.strategy, _no_index)
            if strategy is None:
                return
            key = IdempotencyKey(strategy_key(namespace, spec.strategy), strategy.vault.public_key, spec.lead_signature)
            trade = await rt.ledger_call("find_trade", rt.ledger.find_trade, key)
        if trade is None or trade.is_terminal:
            return
        if trade.copytrade != copytrade_ref(namespace, name) or status.admission == "Duplicate":
            return  # the trade belongs to another CopyTrade; deleting a duplicate changes nothing
        if trade.state is TradeState.PENDING:
            try:
                await rt.ledger_call("cancel_trade", rt.ledger.cancel_trade, trade.trade_id,
                                     f"CopyTrade {namespace}/{name} deleted", actor=f"operator/{rt.identity}")
                kopf.event(body, type="Normal", reason="Cancelled",
                           message=f"trade {trade.trade_id} cancelled before any send")
                return
            except LedgerError:
                trade = await rt.ledger_call("get_trade", rt.ledger.get_trade, trade.trade_id)
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
