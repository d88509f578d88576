"""kopf handlers of Vault: thin routing into :mod:`.reconcile` (create, spec change, operator start:
the same reconcile; deletion: its finalizer), and the ``vault_keys`` index: where the keys of each
strategy's active Vaults are, from which its executor Deployment mounts their Secrets (a Vault event
re-renders the strategy when that changes)."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from pydantic import ValidationError

from xorj.controller.common import STRATEGIES, runtime_of
from xorj.controller.models import GROUP, VERSION, VaultSpec
from xorj.controller.settings import TimingSettings
from xorj.controller.tradingstrategy import desired
from xorj.controller.tradingstrategy import reconcile as strategy_reconcile
from xorj.controller.vault import reconcile
from xorj.controller.vault import status as st


@kopf.on.resume(GROUP, VERSION, reconcile.VAULTS, id="reconcile-resume")
@kopf.on.create(GROUP, VERSION, reconcile.VAULTS, id="reconcile")
@kopf.on.update(GROUP, VERSION, reconcile.VAULTS, id="reconcile-update", field="spec")
async def vault_changed(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.reconcile_vault(runtime_of(memo), body, logger)


# Decorator arguments are fixed at import: the setting is read from the environment then.
_VAULT_RECHECK = TimingSettings().vault_recheck_seconds


@kopf.timer(GROUP, VERSION, STRATEGIES, id="recheck-vault-bindings", interval=_VAULT_RECHECK,
            initial_delay=_VAULT_RECHECK, idle=None)
async def vault_recheck(memo: kopf.Memo, logger: Any, namespace: str, name: str, vault_bindings: kopf.Index,
                        **_: Any) -> None:
    """A binding revoked (or granted) on the Secret changes no Vault, so no event comes for it: each
    strategy looks again at its Vaults' Secrets every ``vault_recheck_seconds`` (one timer per strategy,
    not per Vault; paused with the strategy's other handlers when a peer takes over)."""
    await reconcile.recheck_bindings(runtime_of(memo), namespace, name, vault_bindings.get((namespace, name), ()),
                                     logger)


@kopf.index(GROUP, VERSION, reconcile.VAULTS, id="vault_bindings")
async def vault_bindings(body: kopf.Body, namespace: str, spec: kopf.Spec,
                         **_: Any) -> dict[tuple[str, str], reconcile.BindingCheck] | None:
    """By (namespace, strategy): what the periodic re-check needs of each Vault, not its body."""
    check = reconcile.binding_check(body)
    strategy = spec.get("strategy")
    return {(namespace, strategy): check} if check is not None and isinstance(strategy, str) else None


@kopf.on.delete(GROUP, VERSION, reconcile.VAULTS, id="finalize")
async def vault_deleted(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.finalize_vault(runtime_of(memo), body, logger)


# async, as every indexer: kopf runs a sync handler on a worker thread, one hop per watch event,
# and what those threads allocate stays in per-thread malloc arenas that grow the RSS for good
@kopf.index(GROUP, VERSION, reconcile.VAULTS, id="vault_keys")
async def vault_keys(meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, namespace: str, name: str,
                     **_: Any) -> dict[tuple[str, str], desired.VaultKeyRef] | None:
    """An active Vault's key location, by (namespace, strategy): not being deleted, and Registered (its
    Secret's binding checked) for its current generation."""
    if meta.get("deletionTimestamp"):
        return None
    registered = next((c for c in status.get("conditions") or () if c.get("type") == st.REGISTERED), None)
    if (registered is None or registered.get("status") != "True"
            or status.get("observedGeneration") != meta.get("generation")):
        return None
    try:
        vault = VaultSpec.model_validate(dict(spec))
    except ValidationError:
        return None
    return {(namespace, vault.strategy): desired.VaultKeyRef(vault.secret_name, vault.secret_key, name)}


# Vault events of one strategy within this many seconds are one look at its keys directory: a bulk
# create of thousands of Vaults costs a few O(vaults) looks, not one per event.
_COALESCE_SECONDS = 0.5


@kopf.on.event(GROUP, VERSION, reconcile.VAULTS, id="strategy-keys")
async def vault_event(spec: kopf.Spec, namespace: str, memo: kopf.Memo, logger: Any, vault_keys: kopf.Index,
                      strategy_specs: kopf.Index, **_: Any) -> None:
    """Re-render the Vault's strategy when its keys directory changes (the index already has this event)."""
    strategy = spec.get("strategy")
    rt = runtime_of(memo)
    target = (namespace, strategy)
    if not isinstance(strategy, str) or target in rt.key_rerenders_pending:
        return  # a look at this strategy is already scheduled, and reads the index after this event
    rt.key_rerenders_pending.add(target)
    try:
        await asyncio.sleep(_COALESCE_SECONDS)
    finally:
        rt.key_rerenders_pending.discard(target)
    strategy_spec = next(iter(strategy_specs.get(target, ())), None)
    await strategy_reconcile.rerender_for_vaults(rt, namespace, strategy, strategy_spec,
                                                 vault_keys.get(target, ()), logger)
