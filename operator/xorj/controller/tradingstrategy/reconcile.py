"""TradingStrategy reconciliation: read, decide with the pure modules, write once.

The kopf handlers (:mod:`.handlers`) only route here. Here: the I/O around :mod:`.desired`
(children) and :mod:`.status` (status), with Events for what a person cares about.
Every status write is one merge PATCH, and only when something changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from xorj.controller import admission, guard, metrics
from xorj.controller.common import (
    STRATEGIES,
    condition_events,
    now,
    ranks_of_pool,
    status_model,
    strategy_key,
    validation_message,
)
from xorj.controller.kube import API_ERRORS, error_text
from xorj.controller.models import TradingStrategySpec, TradingStrategyStatus
from xorj.controller.runtime import Runtime
from xorj.controller.tradingstrategy import desired
from xorj.controller.tradingstrategy import status as st
from xorj.domain.trades import TradeState
from xorj.errors import LedgerError
from xorj.ledger import scores as score_store
from xorj.ledger import transactions, vaults
from xorj.redaction import redact_urls

log = logging.getLogger(__name__)

# Re-apply unchanged children at most this often: heals hand edits without a PATCH every resync.
REAPPLY_SECONDS = 300.0


async def enforce_trading_halt(rt: Runtime, logger: Any) -> bool:
    """Make the ledger's halt what the operator's setting says (a no-op when it already is): the
    setting is the source of truth, so a halt lifted by hand while the setting is on comes back at
    the next resync. False when the ledger could not be reached (tried again at the next resync)."""
    wanted = rt.settings.trading.global_halt
    reason = (rt.settings.trading.global_halt_reason or "operator setting globalHalt") if wanted else None
    try:
        before = await rt.ledger_run(transactions.trading_halt())
        if (before.halted, before.reason if wanted else None) == (wanted, reason):
            return True
        await rt.ledger_run(transactions.set_trading_halt(wanted, reason=reason, actor=f"operator/{rt.identity}"))
    except LedgerError as exc:
        logger.warning("could not enforce the trading halt setting", extra={"error": type(exc).__name__})
        return False
    logger.warning("cluster-wide trading halt " + ("ON: every trade is refused" if wanted else "lifted"),
                   extra={"reason": reason})
    return True


async def reconcile_strategy(rt: Runtime, body: Any, logger: logging.Logger | logging.LoggerAdapter,
                             vault_keys: Iterable[desired.VaultKeyRef] = ()) -> None:
    """``vault_keys``: where the keys of the strategy's active Vaults are (the ``vault_keys`` index)."""
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    generation = meta.get("generation")
    previous = status_model(TradingStrategyStatus, body.get("status"))
    try:
        spec = TradingStrategySpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        # The API server validates most of the same rules; what reaches here is what CEL cannot check
        # (a public key that does not decode to 32 bytes) or a CRD older than the operator. Retrying
        # cannot fix a spec: say so in a condition and wait for the next change.
        await _refuse_strategy(rt, body, previous, guard.Refusal(guard.INVALID_SPEC, validation_message(exc)))
        metrics.RECONCILES.labels("TradingStrategy", "invalid").inc()
        return

    metrics.STRATEGY_PAUSED.labels(strategy_key(namespace, name)).set(1 if spec.paused else 0)
    refusal = guard.check_endpoints(spec, allow_insecure=rt.settings.trading.allow_insecure_endpoints)
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
    defaults = rt.settings.executor.defaults()
    owner = desired.Owner(name=name, uid=uid)
    apply_error: str | None = None
    try:
        keys = desired.key_sources(spec, vault_keys)
    except desired.KeyCollision as exc:
        # one key file would shadow another: keep the executors as they are (their vaults keep
        # trading) and say which Secrets collide, instead of mounting one of the two silently
        keys, apply_error = None, f"VaultKeyCollision: {exc}"
        rt.key_sources[(namespace, name)] = str(exc)
    else:
        rt.key_sources[(namespace, name)] = keys
    children = desired.children(owner, namespace, spec, defaults, keys)
    digest = hashlib.sha256(json.dumps(children, sort_keys=True).encode()).hexdigest()
    last = rt.applied.get(uid)
    deployment_obj: dict[str, Any] | None = None
    dep_name = desired.names(name)["deployment"]
    if apply_error is not None:
        must_apply = False
        deployment_obj = await _get_child_quietly(rt, namespace, dep_name)
    else:
        must_apply = last is None or last[0] != digest or time.monotonic() - last[1] > REAPPLY_SECONDS
    if not must_apply and apply_error is None:
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
        except API_ERRORS as exc:
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
    counts = followed = vault_count = None
    try:
        raw_counts = await rt.ledger_run(transactions.counts_by_state(strategy_key(namespace, name)))
        vault_count = await rt.ledger_run(vaults.active_vault_count(strategy_key(namespace, name),
                                                                    spec.vault.public_key))
        scores = await rt.ledger_run(score_store.list_scores(None, None, None))
        counts = st.trade_counts(raw_counts)
        pool_ranks = await ranks_of_pool(rt, namespace, admission.needs_pool(spec))
        followed = st.followed_traders(spec, scores, pool_ranks)
    except LedgerError as exc:
        ledger_error = f"ledger unavailable: {type(exc).__name__}"
    except API_ERRORS as exc:
        logger.warning("reading the strategy's TraderPool failed; followed traders kept",
                       extra={"strategy": name, "error": _api_error_text(exc)})

    new_status = st.strategy_status(
        spec=spec,
        generation=generation,
        deployment=observation,
        ledger_error=ledger_error,
        counts=counts,
        followed=followed,
        vault_count=vault_count,
        previous=previous,
        config_hash=desired.config_hash(spec, defaults),
        now=now(),
        apply_error=apply_error,
    )
    if previous is None or new_status != previous:
        await rt.kube.patch_status(namespace, STRATEGIES, name, new_status.to_wire())
        condition_events(body, previous.conditions if previous else [], new_status.conditions)
        change = st.followed_change(previous.followed_traders if previous else [], new_status.followed_traders)
        if change is not None and followed is not None:
            kopf.event(body, type="Normal", reason="FollowedTradersChanged", message=change)
            logger.info("followed traders changed", extra={"strategy": name, "followed": new_status.followed_trader_count})
    metrics.RECONCILES.labels("TradingStrategy", "ok").inc()


async def rerender_for_vaults(rt: Runtime, namespace: str, strategy: str, strategy_spec: Any | None,
                              vault_keys: Iterable[desired.VaultKeyRef],
                              logger: logging.Logger | logging.LoggerAdapter) -> None:
    """A Vault of ``strategy`` appeared, went, or changed its Secret: reconcile the strategy when its keys
    directory changes (a new Secret to mount, one no longer named, a collision). A new key in a Secret
    already mounted changes nothing here: the kubelet updates the files and the keyring reads them.
    ``strategy_spec``: the strategy's spec from the ``strategy_specs`` index (no GET per Vault event)."""
    if strategy_spec is None or (namespace, strategy) not in rt.key_sources:
        return  # no such strategy, or not reconciled in this process yet (its own reconcile reads the index)
    refs = list(vault_keys)
    try:
        wanted: object = desired.key_sources(TradingStrategySpec.model_validate(dict(strategy_spec)), refs)
    except desired.KeyCollision as exc:
        wanted = str(exc)
    except ValidationError:
        return  # the strategy's own reconcile says why
    if rt.key_sources.get((namespace, strategy)) == wanted:
        return
    body = await rt.kube.get_cr(namespace, STRATEGIES, strategy)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    logger.info("the strategy's vault keys changed; re-rendering its executors", extra={"strategy": strategy})
    await reconcile_strategy(rt, body, logger, refs)


async def _check_secrets(rt: Runtime, namespace: str, name: str, spec: TradingStrategySpec) -> guard.Refusal | None:
    """Read the metadata of every Secret the executors would mount and check each is bound to ``name``."""
    secrets: dict[str, dict[str, str] | None] = {}
    for secret in spec.referenced_secrets():
        try:
            secrets[secret] = await rt.kube.secret_annotations(namespace, secret)
        except API_ERRORS as exc:
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
    return redact_urls(error_text(exc))[:1000]


async def _get_child_quietly(rt: Runtime, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await rt.kube.get_child("Deployment", namespace, name)
    except API_ERRORS:
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
    rt.key_sources.pop((namespace, name), None)
    rt.freshness.forget(meta["uid"])  # the watch may never show our last write of a vanishing object
    with contextlib.suppress(KeyError):  # a deleted strategy is no longer paused: no stale alert
        metrics.STRATEGY_PAUSED.remove(key)
    deleted_at = meta.get("deletionTimestamp")
    waited = (now() - datetime.fromisoformat(deleted_at)).total_seconds() if deleted_at else 0
    timed_out = waited >= rt.settings.timing.strategy_drain_seconds
    paused = bool((body.get("spec") or {}).get("paused"))
    try:
        cancelled = []
        if paused or timed_out:
            cancelled = await rt.ledger_run(transactions.cancel_pending(
                key, f"TradingStrategy {key} deleted before the trade was sent", actor=f"operator/{rt.identity}"))
        counts = await rt.ledger_run(transactions.counts_by_state(key))
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
