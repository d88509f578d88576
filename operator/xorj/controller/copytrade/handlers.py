"""kopf handlers of CopyTrade: thin routing into :mod:`.mirrors` (every event: start, or stop, the
object's mirror) and :mod:`.reconcile` (its finalizer), and an index fed by the watch that is the
liveness probe's evidence the watch is alive.
"""

from __future__ import annotations

import time
from typing import Any

import kopf

from xorj.controller.common import COPYTRADES, runtime_of
from xorj.controller.copytrade import reconcile
from xorj.controller.copytrade.mirrors import CopyTradeMirrors
from xorj.controller.models import GROUP, VERSION
from xorj.controller.runtime import Runtime

MIRRORS = "copytrade_mirrors"  # the memo key of the operator's CopyTradeMirrors


def mirrors_of(memo: kopf.Memo) -> CopyTradeMirrors:
    return memo[MIRRORS]


@kopf.on.event(GROUP, VERSION, COPYTRADES, id="mirror")
async def copytrade(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, strategy_specs: kopf.Index,
                    **_: Any) -> None:
    def spec_of(namespace: str, name: str) -> dict[str, Any] | None:
        return next(iter(strategy_specs.get((namespace, name), ())), None)

    mirrors_of(memo).seen(event.get("type"), body, spec_of)


@kopf.on.delete(GROUP, VERSION, COPYTRADES, id="finalize")
async def copytrade_deleted(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    mirrors_of(memo).stop(body["metadata"]["uid"])
    await reconcile.finalize_copytrade(runtime_of(memo), body, logger)


# async, as every indexer: kopf runs a sync handler on a worker thread, one hop per watch event,
# and what those threads allocate stays in per-thread malloc arenas that grow the RSS for good
@kopf.index(GROUP, VERSION, COPYTRADES, id="freshness")
async def copytrade_seen(uid: str, meta: kopf.Meta, memo: kopf.Memo, event: Any = None, **_: Any) -> None:
    rt: Runtime | None = memo.get("runtime")
    if rt is not None:
        rt.freshness.observed(uid, meta.get("resourceVersion"), time.monotonic())
