"""kopf handlers of TraderPool: thin routing into :mod:`.reconcile`.

``trader_pool`` ranks the pool from the ledger's stored swaps on create, on a spec change and every
``XORJ_OPERATOR_POOL_SCORE_SECONDS``; ``trader_pool_new_swaps`` rescores it within
``XORJ_OPERATOR_POOL_SWAPS_CHECK_SECONDS`` of new swaps recorded for its candidates (at most once per
check however many arrive); an index fed by the watch is the liveness probe's evidence.
"""

from __future__ import annotations

import time
from typing import Any

import kopf

from xorj.controller.common import POOLS, runtime_of
from xorj.controller.models import GROUP, VERSION
from xorj.controller.runtime import Runtime
from xorj.controller.settings import PoolSettings
from xorj.controller.traderpool import reconcile

# Decorator arguments are fixed at import: the setting is read from the environment then.
_POOL_SCORE = PoolSettings().score_seconds
_SWAPS_CHECK = PoolSettings().swaps_check_seconds


@kopf.on.resume(GROUP, VERSION, POOLS, id="score")
@kopf.on.create(GROUP, VERSION, POOLS, id="score")
@kopf.on.update(GROUP, VERSION, POOLS, id="score", field="spec")
@kopf.timer(GROUP, VERSION, POOLS, id="rescore", interval=_POOL_SCORE, initial_delay=_POOL_SCORE, idle=None)
async def trader_pool(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.score_pool(runtime_of(memo), body, logger)


@kopf.timer(GROUP, VERSION, POOLS, id="rescore-on-swaps", interval=_SWAPS_CHECK, idle=None)
async def trader_pool_new_swaps(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.rescore_on_new_swaps(runtime_of(memo), body, logger)


# async, as every indexer: kopf runs a sync handler on a worker thread, one hop per watch event,
# and what those threads allocate stays in per-thread malloc arenas that grow the RSS for good
@kopf.index(GROUP, VERSION, POOLS, id="pool_freshness")
async def trader_pool_seen(uid: str, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Our status writes to pools are seen back on the watch (the liveness probe's evidence)."""
    rt: Runtime | None = memo.get("runtime")
    if rt is not None:
        rt.freshness.observed(uid, meta.get("resourceVersion"), time.monotonic())
