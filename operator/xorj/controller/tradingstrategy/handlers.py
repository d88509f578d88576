"""kopf handlers of TradingStrategy: thin routing into :mod:`.reconcile`.

ONE reconcile function for create/update/resume and the periodic resync timer (kopf issue 1178:
several handlers per kind have lost events under load; sub-handlers break consistency, issue 641):
level-triggered, it always converges to the spec, whatever woke it. Plus its finalizer, and an
index of the strategies' specs fed by the watch (admission reads a strategy's vault, followed
traders and sizing from it, with no GET per CopyTrade).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import kopf

from xorj.controller.common import STRATEGIES, runtime_of
from xorj.controller.models import GROUP, VERSION
from xorj.controller.runtime import Runtime
from xorj.controller.settings import TimingSettings
from xorj.controller.tradingstrategy import reconcile

# Decorator arguments are fixed at import: the setting is read from the environment then.
_STRATEGY_RESYNC = TimingSettings().strategy_resync_seconds


@kopf.on.resume(GROUP, VERSION, STRATEGIES, id="reconcile")
@kopf.on.create(GROUP, VERSION, STRATEGIES, id="reconcile")
@kopf.on.update(GROUP, VERSION, STRATEGIES, id="reconcile", field="spec")
@kopf.timer(GROUP, VERSION, STRATEGIES, id="resync", interval=_STRATEGY_RESYNC, initial_delay=_STRATEGY_RESYNC,
            idle=None)
async def strategy(body: kopf.Body, memo: kopf.Memo, logger: Any, namespace: str, name: str,
                   vault_keys: kopf.Index, **_: Any) -> None:
    await reconcile.reconcile_strategy(runtime_of(memo), body, logger, vault_keys.get((namespace, name), ()))


@kopf.on.delete(GROUP, VERSION, STRATEGIES, id="finalize")
async def strategy_deleted(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.finalize_strategy(runtime_of(memo), body, logger)


# async, as every indexer: kopf runs a sync handler on a worker thread, one hop per watch event,
# and what those threads allocate stays in per-thread malloc arenas that grow the RSS for good
@kopf.index(GROUP, VERSION, STRATEGIES, id="strategy_specs")
async def strategy_specs(uid: str, meta: kopf.Meta, spec: kopf.Spec, namespace: str, name: str,
                         memo: kopf.Memo, **_: Any) -> dict[tuple[str, str], dict[str, Any]] | None:
    """Fed by the watch: each strategy's spec (admission needs its vault, followed traders and sizing:
    no GET per CopyTrade), and the freshness tracker's evidence that the watch is alive."""
    rt: Runtime | None = memo.get("runtime")
    if rt is not None:
        rt.freshness.observed(uid, meta.get("resourceVersion"), time.monotonic())
    return {(namespace, name): copy.deepcopy(dict(spec))} if spec else None
