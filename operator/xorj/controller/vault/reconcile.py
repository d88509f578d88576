"""Vault reconciliation: check the vault's keypair Secret is bound to its strategy (the same check as
a strategy's spec.vault, docs/security.md "confused deputy"), then upsert its row in the ledger's
vault registry (:mod:`xorj.ledger.vaults`); on deletion (a finalizer) mark the row removed, which
cancels the vault's PENDING trades, and hold while one of its trades is SUBMITTED. A vault that
fails a check is not in the registry (removed if it was): it gets no trade. Adding or removing a
vault restarts no executor: the registry is read by each admission. The status is built by the pure
:mod:`.status`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from xorj.controller import guard
from xorj.controller.common import STRATEGIES, now, status_model, strategy_key, validation_message
from xorj.controller.kube import API_ERRORS
from xorj.controller.models import ConditionStatus, TradingStrategySpec, VaultSpec, VaultStatus
from xorj.controller.runtime import Runtime
from xorj.controller.vault import status as st
from xorj.errors import LedgerError
from xorj.ledger import vaults

VAULTS = "vaults"


def vault_ref(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


async def _strategy(rt: Runtime, namespace: str, name: str) -> TradingStrategySpec | None:
    obj = await rt.kube.get_cr(namespace, STRATEGIES, name)
    if obj is None:
        return None
    try:
        return TradingStrategySpec.model_validate(dict(obj["spec"]))
    except ValidationError:
        return None  # the strategy's own reconcile says why


async def _outcome(rt: Runtime, namespace: str, name: str, spec: VaultSpec) -> st.VaultOutcome:
    """Check the vault and register it (or take it out of the registry); what its status says."""
    key = strategy_key(namespace, spec.strategy)
    strategy = await _strategy(rt, namespace, spec.strategy)
    refusal: guard.Refusal | None
    if strategy is None:
        refusal = guard.Refusal(st.STRATEGY_NOT_FOUND,
                                f"TradingStrategy {spec.strategy!r} not found in {namespace} (or its spec is invalid)")
    else:
        try:
            annotations = await rt.kube.secret_annotations(namespace, spec.secret_name)
        except API_ERRORS as exc:
            raise kopf.TemporaryError(f"Secret {spec.secret_name!r}: cannot read its metadata "
                                      f"({type(exc).__name__})", delay=10) from exc
        refusal = guard.check_secret_binding(spec.strategy, spec.secret_name, "vault keypair (spec.secretName)",
                                             annotations)
    if refusal is not None:
        # not (or no longer) allowed to trade: out of the registry, its PENDING trades cancelled
        await rt.ledger_run(vaults.remove_vault(key, spec.public_key, vault_object=vault_ref(namespace, name),
                                                detail=f"Vault {namespace}/{name}: {refusal.message}"[:1000],
                                                actor=f"operator/{rt.identity}"))
        return st.VaultOutcome(False, refusal.reason, refusal.message)
    assert strategy is not None
    registration = await rt.ledger_run(vaults.register_vault(
        key, spec.public_key, vault_object=vault_ref(namespace, name),
        limits=spec.limits.to_domain(paused=spec.paused)))
    if registration.conflict is not None:
        return st.VaultOutcome(False, st.KEY_IN_USE, f"spec.publicKey {spec.public_key} already follows "
                                                     f"{spec.strategy} as {registration.conflict}")
    return st.registered_outcome(spec, strategy)


async def reconcile_vault(rt: Runtime, body: Any, logger: Any) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    previous = status_model(VaultStatus, body.get("status"))
    try:
        spec = VaultSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:  # what CEL cannot check (a key that does not decode to 32 bytes)
        outcome = st.VaultOutcome(False, guard.INVALID_SPEC, validation_message(exc))
    else:
        try:
            outcome = await _outcome(rt, namespace, name, spec)
        except LedgerError as exc:
            raise kopf.TemporaryError(f"ledger unavailable ({type(exc).__name__}); retrying", delay=5) from exc
    status = st.vault_status(outcome=outcome, previous=previous, generation=meta.get("generation"), now=now())
    if previous is None or status != previous:
        old = {c.type: (c.status, c.reason) for c in (previous.conditions if previous else [])}
        ready = status.conditions[-1]
        if old.get(st.READY) != (ready.status, ready.reason):
            kopf.event(body, type="Normal" if outcome.registered else "Warning", reason=outcome.reason,
                       message=outcome.message)
        await rt.kube.patch_status(namespace, VAULTS, name, status.to_wire())
        logger.info("vault reconciled", extra={"vault": name, "reason": outcome.reason})
    if outcome.reason == st.STRATEGY_NOT_FOUND:
        raise kopf.TemporaryError("waiting for the strategy", delay=15)


def _registered_now(body: Any) -> bool | None:
    """Whether the Vault's status says it is in the registry for its current generation; None when the
    status is not about this generation (a change is still being reconciled)."""
    status = status_model(VaultStatus, body.get("status"))
    if status is None or status.observed_generation != body["metadata"].get("generation"):
        return None
    registered = next((c for c in status.conditions if c.type == st.REGISTERED), None)
    return None if registered is None else registered.status is ConditionStatus.TRUE


async def recheck_binding(rt: Runtime, body: Any, logger: Any) -> None:
    """The periodic look at a Vault's Secret binding (its Secret changes, the Vault does not): one
    metadata-only GET of the Secret; the full reconcile (out of the registry, its PENDING trades
    cancelled, or back in) only when the binding's verdict differs from what the status says."""
    if body["metadata"].get("deletionTimestamp"):
        return  # the finalizer has it
    try:
        spec = VaultSpec.model_validate(dict(body["spec"]))
    except ValidationError:
        return  # refused for its spec: no Secret to look at
    registered = _registered_now(body)
    if registered is None:
        return  # a change is being reconciled: that reconcile reads the Secret
    try:
        annotations = await rt.kube.secret_annotations(body["metadata"]["namespace"], spec.secret_name)
    except API_ERRORS as exc:
        logger.warning("vault binding re-check: cannot read the Secret's metadata", extra={
            "vault": body["metadata"]["name"], "error": type(exc).__name__})
        return  # the next period looks again
    refusal = guard.check_secret_binding(spec.strategy, spec.secret_name, "vault keypair (spec.secretName)",
                                         annotations)
    if (refusal is None) != registered or (refusal is not None and refusal.reason != _ready_reason(body)):
        logger.info("vault binding changed on its Secret", extra={
            "vault": body["metadata"]["name"], "bound": refusal is None})
        await reconcile_vault(rt, body, logger)


@dataclass(frozen=True)
class BindingCheck:
    """What the periodic re-check needs of one Vault (the ``vault_bindings`` index keeps this, not the
    Vault's body): its Secret, and whether its status says it is registered, and why (Ready's reason)."""

    name: str
    uid: str
    secret_name: str
    registered: bool
    ready_reason: str | None


def binding_check(body: Any) -> BindingCheck | None:
    """A Vault's :class:`BindingCheck`; None when there is nothing to re-check: being deleted (the
    finalizer has it), no Secret named, or its status not about its current generation (a change is
    being reconciled, and that reconcile reads the Secret)."""
    meta = body["metadata"]
    secret_name = (body.get("spec") or {}).get("secretName")
    registered = _registered_now(body)
    if meta.get("deletionTimestamp") or not isinstance(secret_name, str) or registered is None:
        return None
    return BindingCheck(meta["name"], meta["uid"], secret_name, registered, _ready_reason(body))


async def recheck_bindings(rt: Runtime, namespace: str, strategy: str, checks: Iterable[BindingCheck],
                           logger: Any) -> None:
    """The periodic look at the Secret bindings of one strategy's Vaults (a binding revoked or granted
    on the Secret changes no Vault, so no event comes for it): one metadata-only GET per distinct
    Secret per pass, and for a Vault whose binding's verdict differs from what its status says, a GET
    of the Vault and :func:`recheck_binding` of it (the full reconcile: out of the registry, its
    PENDING trades cancelled, or back in). One pass for all the strategy's Vaults, not a kopf timer
    per Vault: kopf keeps the whole body of every object with a timer for the life of the process."""
    secrets: dict[str, dict[str, str] | None] = {}
    failed: Exception | None = None
    for check in list(checks):
        if check.secret_name not in secrets:
            try:
                secrets[check.secret_name] = await rt.kube.secret_annotations(namespace, check.secret_name)
            except API_ERRORS as exc:
                logger.warning("vault binding re-check: cannot read the Secret's metadata", extra={
                    "vault": check.name, "error": type(exc).__name__})
                continue  # the next period looks again
        refusal = guard.check_secret_binding(strategy, check.secret_name, "vault keypair (spec.secretName)",
                                             secrets[check.secret_name])
        if (refusal is None) == check.registered and (refusal is None or refusal.reason == check.ready_reason):
            continue
        try:
            body = await rt.kube.get_cr(namespace, VAULTS, check.name)
            if body is not None and body["metadata"].get("uid") == check.uid:
                await recheck_binding(rt, body, logger)
        except (kopf.TemporaryError, *API_ERRORS) as exc:
            failed = failed or exc  # the other Vaults are still looked at; then the pass is retried
    if failed is not None:
        raise kopf.TemporaryError(f"vault binding re-check: {type(failed).__name__}; retrying", delay=5) from failed


def _ready_reason(body: Any) -> str | None:
    status = status_model(VaultStatus, body.get("status"))
    ready = next((c for c in (status.conditions if status else []) if c.type == st.READY), None)
    return ready.reason if ready else None


async def finalize_vault(rt: Runtime, body: Any, logger: Any) -> None:
    """Let a Vault go once it is out of the registry and none of its trades is SUBMITTED (a
    transaction may be out for it: its executor finishes it). If the strategy is gone there is
    nobody to finish it: go with a Warning (the ledger keeps the trade)."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = VaultSpec.model_validate(dict(body["spec"]))
    except ValidationError:
        return  # never registered
    try:
        removal = await rt.ledger_run(vaults.remove_vault(
            strategy_key(namespace, spec.strategy), spec.public_key, vault_object=vault_ref(namespace, name),
            detail=f"Vault {namespace}/{name} deleted: vault removed before any send", actor=f"operator/{rt.identity}"))
    except LedgerError as exc:
        raise kopf.TemporaryError(f"ledger unavailable ({type(exc).__name__}); retrying", delay=5) from exc
    if removal.cancelled:
        kopf.event(body, type="Normal", reason="TradesCancelled",
                   message=f"{len(removal.cancelled)} PENDING trade(s) cancelled: the vault is removed")
        logger.info("vault removed", extra={"vault": name, "cancelled": len(removal.cancelled)})
    if removal.submitted == 0:
        return
    if await rt.kube.get_cr(namespace, STRATEGIES, spec.strategy) is None:
        kopf.event(body, type="Warning", reason="StrategyGone",
                   message=f"{removal.submitted} trade(s) SUBMITTED and the strategy is gone; released, "
                           "the ledger keeps them")
        return
    raise kopf.TemporaryError(f"{removal.submitted} trade(s) of this vault SUBMITTED: waiting until they are "
                              "terminal", delay=2)
