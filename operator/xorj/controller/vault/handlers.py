"""kopf handlers of Vault: thin routing into :mod:`.reconcile` (create, spec change, operator start:
the same reconcile; deletion: its finalizer)."""

from __future__ import annotations

from typing import Any

import kopf

from xorj.controller.common import runtime_of
from xorj.controller.models import GROUP, VERSION
from xorj.controller.vault import reconcile


@kopf.on.resume(GROUP, VERSION, reconcile.VAULTS, id="reconcile-resume")
@kopf.on.create(GROUP, VERSION, reconcile.VAULTS, id="reconcile")
@kopf.on.update(GROUP, VERSION, reconcile.VAULTS, id="reconcile-update", field="spec")
async def vault_changed(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.reconcile_vault(runtime_of(memo), body, logger)


@kopf.on.delete(GROUP, VERSION, reconcile.VAULTS, id="finalize")
async def vault_deleted(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.finalize_vault(runtime_of(memo), body, logger)
