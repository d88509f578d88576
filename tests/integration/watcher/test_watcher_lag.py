"""The watcher's lag gauge (xorj_watcher_poll_lag_seconds, what XorjWatcherLagging reads) on the real
local chain: a watcher started while its RPC node cannot list signatures has read nothing since it
started, and reports that time as its lag, not 0 (found by the `watcher-killed` chaos experiment: a
watcher restarted into an RPC outage kept the alert silent); once a round completes, the lag is 0."""

from __future__ import annotations

import uuid

import pytest
from solders.keypair import Keypair

from tests.integration.ledger.helpers import on_the_loop
from tests.integration.watcher.helpers import run, strategy_doc, unique_namespace
from xorj.chain.rpc import SolanaRpc
from xorj.traders.history import ChainHistory
from xorj.watcher.follows import StaticFollowBook
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Candidate, Outcome
from xorj.watcher.sources import PollingSource

pytestmark = [pytest.mark.chain]


class SteppedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_watcher_restarted_into_an_rpc_outage_reports_its_lag_from_start(local_chain, ledger) -> None:
    leader = str(Keypair().pubkey())
    book = StaticFollowBook([strategy_doc(unique_namespace(), "s", str(Keypair().pubkey()), [leader])],
                            cash_mints=frozenset({local_chain.mints["USDC"]}))
    node = f"lag-{uuid.uuid4().hex[:8]}"  # this test's own RPC node: the fault hits no other client
    fault = local_chain.set_fault(kind="http_error", method="getSignaturesForAddress", node=node)
    metrics = WatcherMetrics()
    clock = SteppedClock(1_000.0)

    async def nothing(_: Candidate) -> Outcome:  # no round reaches a delivery here
        raise AssertionError("nothing to deliver")

    async def rounds() -> tuple[float, float, float]:
        async with on_the_loop(ledger) as on_loop, \
                SolanaRpc(local_chain.rpc_url.rstrip("/") + f"/nodes/{node}/") as rpc:
            poller = PollingSource(ChainHistory(rpc), on_loop, book, metrics, clock=clock)
            clock.now += 30
            await poller.poll_round(nothing)  # fails: the node answers 503
            failing = metrics.lag_seconds._value.get()
            clock.now += 15
            await poller.poll_round(nothing)
            still = metrics.lag_seconds._value.get()
            local_chain.remove_fault(fault)
            clock.now += 5
            await poller.poll_round(nothing)  # the leader has made no swap: a complete, empty round
            return failing, still, metrics.lag_seconds._value.get()

    try:
        failing, still, recovered = run(rounds())
    finally:
        if fault in {f["id"] for f in local_chain.admin("GET", "/faults")["faults"]}:
            local_chain.remove_fault(fault)
    assert (failing, still) == (30.0, 45.0)
    assert recovered == 0.0
    assert metrics.rpc_errors.labels("getSignaturesForAddress", "RPC_ERROR")._value.get() >= 2
