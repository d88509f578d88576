"""The operator's Runtime reaches the real Postgres ledger from kopf's event loop: the trades, the
halt, the trader scores and the trader swaps through the asyncio ledger. It does not depend on the
Kubernetes client's thread pool, which cleanup shuts down
while kopf's timers may still fire: a call then fails as the closed ledger does (LedgerError, the
handlers' ledger-unavailable path), counted per operation, never "cannot schedule new futures"."""

from __future__ import annotations

import asyncio
import logging

import kopf
import pytest
from lightkube import KubeConfig
from lightkube.config.models import Cluster, User

from xorj.controller import metrics
from xorj.controller.freshness import WatchFreshness
from xorj.controller.kube import Kube
from xorj.controller.runtime import Runtime
from xorj.controller.settings import OperatorSettings
from xorj.controller.tradingstrategy.reconcile import enforce_trading_halt
from xorj.domain.trades import TradeState
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger, trader_swaps
from xorj.ledger import transactions as tx
from xorj.ledger.aio import AsyncLedger

pytestmark = pytest.mark.postgres
log = logging.getLogger(__name__)


def _runtime(ledger: Ledger, dsn: str, *, halt: bool) -> Runtime:
    settings = OperatorSettings(ledger_dsn=dsn, trading={"global_halt": halt, "global_halt_reason": "drill"})
    # never reached: nothing here gets as far as a request
    nowhere = KubeConfig.from_one(cluster=Cluster(server="http://127.0.0.1:9"), user=User()).get()
    kube = Kube(nowhere, WatchFreshness(stale_after=60))
    return Runtime(settings=settings, kube=kube, async_ledger=AsyncLedger.for_dsn(dsn, name="xorj-operator-aio"),
                   ledger=ledger, freshness=kube.freshness, identity="test/1")


def test_the_ledger_answers_after_the_kubernetes_pool_shut_down(ledger: Ledger, ledger_dsn: str):
    rt = _runtime(ledger, ledger_dsn, halt=True)

    async def after_the_kube_pool_closed():
        await rt.async_ledger.open()
        try:
            await rt.kube.close()  # what cleanup does first, while a timer may still be running
            enforced = await enforce_trading_halt(rt, log)
            counts = await rt.ledger_run(tx.counts_by_state("alpha"))
            watermark = await rt.ledger_run(trader_swaps.history_watermark(["W1"]))
            return enforced, counts, watermark
        finally:
            await rt.async_ledger.close()

    enforced, counts, watermark = asyncio.run(after_the_kube_pool_closed())
    assert enforced
    halt = ledger.trading_halt()
    assert (halt.halted, halt.reason, halt.set_by) == (True, "drill", "operator/test/1")
    assert counts[TradeState.PENDING] == 0 and watermark is None  # no swaps recorded for W1


def test_a_call_after_cleanup_closed_the_ledgers_is_ledger_unavailable_and_counted(ledger_dsn: str):
    blocking = Ledger.connect(ledger_dsn, apply_migrations=False, name="xorj-operator")
    rt = _runtime(blocking, ledger_dsn, halt=False)

    def errors(operation: str) -> float:
        return metrics.LEDGER_ERRORS.labels(operation)._value.get()

    async def after_cleanup():
        await rt.async_ledger.open()
        assert not (await rt.ledger_run(tx.trading_halt())).halted
        await rt.async_ledger.close()
        await asyncio.to_thread(rt.ledger.close)
        await rt.kube.close()
        before = errors("trading_halt"), errors("history_watermark")
        with pytest.raises(LedgerUnavailableError):
            await rt.ledger_run(tx.trading_halt())
        with pytest.raises(LedgerUnavailableError):
            await rt.ledger_run(trader_swaps.history_watermark(["W1"]))
        assert not await enforce_trading_halt(rt, log)  # the resync's path: a warning, tried again later
        return before, (errors("trading_halt"), errors("history_watermark"))

    before, after = asyncio.run(after_cleanup())
    assert after == (before[0] + 2, before[1] + 1)


def test_a_kubernetes_call_after_cleanup_is_a_retry_not_a_dead_executor(ledger: Ledger, ledger_dsn: str):
    rt = _runtime(ledger, ledger_dsn, halt=False)

    async def a_late_timer():
        await rt.kube.close()
        with pytest.raises(kopf.TemporaryError, match="shutting down"):
            await rt.kube.secret_annotations("default", "xorj-vault")

    asyncio.run(a_late_timer())
