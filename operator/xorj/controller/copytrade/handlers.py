"""kopf handlers of CopyTrade: thin routing into :mod:`.reconcile`.

One daemon per object, ``mirror_copytrade`` (admission, then the status mirror, then the TTL), plus
its finalizer, and an index fed by the watch that is the liveness probe's evidence the watch is alive.
"""

from __future__ import annotations

import time
from typing import Any

import kopf

from xorj.controller.common import COPYTRADES, runtime_of
from xorj.controller.copytrade import reconcile
from xorj.controller.models import GROUP, VERSION
from xorj.controller.runtime import Runtime


@kopf.daemon(GROUP, VERSION, COPYTRADES, id="mirror", cancellation_timeout=1.0, backoff=5.0)
async def copytrade(body: kopf.Body, memo: kopf.Memo, logger: Any, strategy_specs: kopf.Index, **_: Any) -> None:
    def spec_of(namespace: str, name: str) -> dict[str, Any] | None:
        return next(iter(strategy_specs.get((namespace, name), ())), None)

    await reconcile.mirror_copytrade(runtime_of(memo), body, logger, spec_of)


@kopf.on.delete(GROUP, VERSION, COPYTRADES, id="finalize")
async def copytrade_deleted(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await reconcile.finalize_copytrade(runtime_of(memo), body, logger)


# async, as every indexer: kopf runs a sync handler on a worker thread, one hop per watch event,
# and what those threads allocate stays in per-thread malloc arenas that grow the RSS for good
@kopf.index(GROUP, VERSION, COPYTRADES, id="freshness")
async def copytrade_seen(uid: str, meta: kopf.Meta, memo: kopf.Memo, event: Any = None, **_: Any) -> None:
    rt: Runtime | None = memo.get("runtime")
    if rt is not None:
        rt.freshness.observed(uid, meta.get("resourceVersion"), time.monotonic())
