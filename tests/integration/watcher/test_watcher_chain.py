"""The watcher on the real local chain and the real ledger: a simulated lead trader's swap is accepted
once, whichever source reports it first (webhook over HTTP, then polling racing it), gives one trade
per following strategy (a skip with its reason for a strategy whose filters refuse it) that real
executor processes fill, counted ON CHAIN: exactly one fill per strategy. A restart resumes from the
ledger's cursor with neither duplicates nor gaps; hostile webhook deliveries create nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from solders.signature import Signature

from tests.integration.executor.harness import (
    Scenario,
    executor_env,
    executors,
    successful_fills,
    wait_for_finalized,
    wait_terminal,
)
from tests.integration.watcher.helpers import (
    metric_value,
    run,
    strategy_doc,
    wired_watcher,
)
from xorj.domain.trades import IdempotencyKey, TradeState
from xorj.ledger.lead_signals import LeadSignalStore
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Candidate, Outcome
from xorj.watcher.sources import WebhookSource

pytestmark = [pytest.mark.chain]

TOKEN = "hook-token-" + base64.urlsafe_b64encode(os.urandom(18)).decode()


async def _serve_webhook(watcher, book, metrics, seen: list | None = None):
    source = WebhookSource(TOKEN, book, metrics, workers=2)
    app = web.Application()
    source.routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()

    async def deliver(candidate: Candidate) -> Outcome:
        try:
            outcome = await watcher.process(candidate)
        except Exception as exc:
            if seen is not None:
                seen.append((candidate.signature, repr(exc)))
            raise
        if seen is not None:
            seen.append((candidate.signature, outcome))
        return outcome

    worker = asyncio.create_task(source.run(deliver))
    return source, client, worker


def test_a_lead_swap_is_copied_once_per_strategy_and_filled_once_on_chain(local_chain, ledger, ledger_dsn, tmp_path,
                                                                           leader, ns) -> None:
    url = local_chain.rpc_url
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    vaults = [local_chain.take_vault() for _ in range(3)]
    docs = [strategy_doc(ns, "fixed", vaults[0], [leader.pubkey], sizing={"mode": "fixedUsd", "fixedUsd": 25}),
            strategy_doc(ns, "half", vaults[1], [leader.pubkey], sizing={"mode": "proportional", "ratio": 0.5}),
            strategy_doc(ns, "denies", vaults[2], [leader.pubkey], filters={"denyMints": [sol]})]
    fills_before = {v: successful_fills(url, v) for v in vaults}
    metrics = WatcherMetrics()

    async def scenario() -> str:
        async with wired_watcher(local_chain, ledger, docs, metrics=metrics) as (watcher, poller):
            await poller.poll_round(watcher.process)  # the baseline: the leader has made no swap yet
            signature = await leader.swap("USDC", "SOL", 40 * 10**6)  # the leader spends 40 USDC
            source, client, worker = await _serve_webhook(watcher, watcher.book, metrics)
            try:
                delivery = [{"signature": signature, "feePayer": leader.pubkey, "type": "SWAP",
                             "tokenTransfers": [{"tokenAmount": 10**9}]}]  # claims the watcher ignores
                for _ in range(2):  # Helius delivers twice
                    answer = await client.post("/webhook", json=delivery, headers={"Authorization": TOKEN})
                    assert answer.status == 200
                await asyncio.wait_for(source.queue.join(), 30)
                # polling finds the same swap: already accepted, nothing more (and its cursor moves past it)
                await poller.poll_round(watcher.process)
                racing = await asyncio.gather(*(watcher.process(Candidate(leader.pubkey, signature, src))
                                                for src in ("webhook", "websocket", "webhook")))
                assert set(racing) == {Outcome.DUPLICATE}
            finally:
                worker.cancel()
                await client.close()
            return signature

    signature = run(scenario())
    store = LeadSignalStore(ledger)
    [accepted] = store.signals(leader.pubkey)
    assert (accepted.signature, accepted.source, int(accepted.sold_amount)) == (signature, "webhook", 40 * 10**6)
    assert store.cursor(leader.pubkey).cursor_signature == signature
    assert metric_value(metrics.signals, source="webhook", result="accepted") == 1
    assert metric_value(metrics.signals, source="poll", result="duplicate") == 1
    assert metric_value(metrics.webhook_duplicates) == 1
    [skip] = store.skips(strategy=f"{ns}/denies")
    assert skip.reason == "TOKEN_DENIED" and metric_value(metrics.skipped, reason="TOKEN_DENIED") == 1

    trades = {}
    for name, expected in (("fixed", 25 * 10**6), ("half", 20 * 10**6)):
        vault = vaults[0] if name == "fixed" else vaults[1]
        found = ledger.get_trade(IdempotencyKey(f"{ns}/{name}", vault, signature))
        assert (found.state, found.amount, found.input_mint, found.output_mint) == \
            (TradeState.PENDING, expected, usdc, sol)
        assert found.notional_usd == Decimal(expected) / 10**6  # from the price API (USDC at 1 USD)
        trades[name] = found
    assert ledger.find_trade(IdempotencyKey(f"{ns}/denies", vaults[2], signature)) is None

    # real executors fill them; the chain counts exactly one fill per strategy
    for name, vault in (("fixed", vaults[0]), ("half", vaults[1])):
        scenario_ = Scenario(strategy=f"{ns}/{name}", vault=vault, keypair_file=str(local_chain.vaults[vault]),
                             input_mint=usdc, output_mint=sol)
        env = executor_env(dsn=ledger_dsn, scenario=scenario_, rpc_url=url, swap_api_url=local_chain.swap_api_url)
        with executors(1, env, tmp_path, name):
            [done] = wait_terminal(ledger, [trades[name].trade_id], 90)
        assert done.state is TradeState.CONFIRMED, (done.reason, done.detail)
        wait_for_finalized(url, {done.final_signature})
        assert successful_fills(url, vault) - fills_before[vault] == {done.final_signature}
    assert successful_fills(url, vaults[2]) == fills_before[vaults[2]]


def test_a_restart_resumes_from_the_cursor_without_duplicates_or_gaps(local_chain, ledger, leader, ns) -> None:
    vault = local_chain.take_vault()
    docs = [strategy_doc(ns, "s", vault, [leader.pubkey], sizing={"mode": "fixedUsd", "fixedUsd": 5})]
    store = LeadSignalStore(ledger)

    async def first_life() -> str:
        async with wired_watcher(local_chain, ledger, docs) as (watcher, poller):
            signature = await leader.swap("USDC", "SOL", 10 * 10**6)
            await poller.poll_round(watcher.process)
            return signature

    async def outage() -> list[str]:  # the watcher is down: the leader trades on
        return [await leader.swap("SOL", "USDC", 10**6), await leader.swap("USDC", "SOL", 7 * 10**6)]

    async def second_life() -> None:
        async with wired_watcher(local_chain, ledger, docs) as (watcher, poller):
            await poller.poll_round(watcher.process)
            await poller.poll_round(watcher.process)  # nothing new: nothing more

    first = run(first_life())
    assert [s.signature for s in store.signals(leader.pubkey)] == [first]
    missed = run(outage())
    run(second_life())
    signals = store.signals(leader.pubkey)
    assert [s.signature for s in signals] == [first, *missed]  # each once, in chain order: no gap
    assert [s.source for s in signals] == ["poll"] * 3
    assert store.cursor(leader.pubkey).cursor_signature == missed[-1]
    # the sell of a token the vault does not hold is skipped with its reason; the buys are trades
    [skip] = store.skips(strategy=f"{ns}/s")
    assert (skip.signature, skip.reason) == (missed[0], "NOT_HELD")
    counts = ledger.counts_by_state(f"{ns}/s")
    assert sum(counts.values()) == 2


def test_hostile_webhook_deliveries_create_nothing(local_chain, ledger, leader, stranger, ns) -> None:
    docs = [strategy_doc(ns, "s", local_chain.take_vault(), [leader.pubkey])]
    metrics = WatcherMetrics()

    handled: list = []

    async def scenario() -> list[int]:
        # a real swap, but the stranger's: a payload naming the leader as its fee payer lies
        strangers_swap = await stranger.swap("USDC", "SOL", 10**6)
        async with wired_watcher(local_chain, ledger, docs, metrics=metrics) as (watcher, _):
            source, client, worker = await _serve_webhook(watcher, watcher.book, metrics, handled)
            statuses = []
            try:
                unknown = str(Signature.from_bytes(os.urandom(64)))
                for headers, body in [
                    ({}, json.dumps([{"signature": unknown, "feePayer": leader.pubkey}])),
                    ({"Authorization": TOKEN[:-1] + "x"}, json.dumps([{"signature": unknown}])),
                    ({"Authorization": TOKEN}, "{not json"),
                    ({"Authorization": TOKEN}, json.dumps({"signature": unknown})),
                    ({"Authorization": TOKEN}, json.dumps([{"signature": "0OIl" * 20, "feePayer": leader.pubkey}])),
                    ({"Authorization": TOKEN}, json.dumps([{"signature": unknown, "accountData": "x"}])),
                    ({"Authorization": TOKEN}, b"\xff\xfe" * 10),
                    ({"Authorization": TOKEN}, json.dumps([{"signature": unknown, "feePayer": leader.pubkey}])),
                    ({"Authorization": TOKEN}, json.dumps([{"signature": strangers_swap, "feePayer": leader.pubkey,
                                                            "type": "SWAP"}])),
                ]:
                    answer = await client.post("/webhook", data=body, headers=headers)
                    statuses.append(answer.status)
                await asyncio.wait_for(source.queue.join(), 30)
                # still serving
                ok = await client.post("/webhook", json=[], headers={"Authorization": TOKEN})
                statuses.append(ok.status)
            finally:
                worker.cancel()
                await client.close()
            return statuses

    statuses = run(scenario())
    assert statuses == [401, 401, 400, 400, 400, 400, 400, 200, 200, 200]
    assert metric_value(metrics.webhook_rejected, reason="unauthorized") == 2
    assert metric_value(metrics.webhook_rejected, reason="malformed") == 5
    assert sorted(str(outcome) for _, outcome in handled) == ["Outcome.NOT_A_SWAP", "Outcome.NOT_FOUND"], handled
    assert metric_value(metrics.signals, source="webhook", result="not_found") == 1  # the chain does not have it
    assert metric_value(metrics.signals, source="webhook", result="not_a_swap") == 1  # the leader did not sign it
    store = LeadSignalStore(ledger)
    assert store.signals(leader.pubkey) == [] and store.signals(stranger.pubkey) == []
    assert sum(ledger.counts_by_state(f"{ns}/s").values()) == 0


def test_a_websocket_push_is_accepted_once_and_polling_then_finds_it_taken(local_chain, ledger, leader, ns) -> None:
    from xorj.watcher.websocket import WebSocketSource

    docs = [strategy_doc(ns, "s", local_chain.take_vault(), [leader.pubkey], sizing={"mode": "fixedUsd", "fixedUsd": 2})]
    metrics = WatcherMetrics()
    store = LeadSignalStore(ledger)

    async def scenario() -> str:
        async with wired_watcher(local_chain, ledger, docs, metrics=metrics) as (watcher, poller):
            push = WebSocketSource(local_chain.rpc_url.replace("http://", "ws://"), watcher.book, metrics)
            task = asyncio.create_task(push.run(watcher.process))
            try:
                await asyncio.wait_for(push.subscribed.wait(), 30)
                signature = await leader.swap("USDC", "SOL", 2 * 10**6)
                deadline = asyncio.get_running_loop().time() + 30
                while not await asyncio.to_thread(store.signals, leader.pubkey):
                    assert asyncio.get_running_loop().time() < deadline, "the push never arrived"
                    await asyncio.sleep(0.05)
                await poller.poll_round(watcher.process)
            finally:
                task.cancel()
            return signature

    signature = run(scenario())
    [accepted] = store.signals(leader.pubkey)
    assert (accepted.signature, accepted.source) == (signature, "websocket")
    assert metric_value(metrics.signals, source="poll", result="duplicate") == 1
    assert sum(ledger.counts_by_state(f"{ns}/s").values()) == 1


def test_a_lying_rpc_creates_no_trade_the_chain_does_not_show(local_chain, ledger, leader, stranger, ns) -> None:
    """The RPC node answers with what it likes (the chain's answer faults): a real transaction served
    for another signature, and a listing naming a transaction that does not exist. Neither becomes a
    signal or a trade; the polling cursor does not move past what was not read."""
    from tests.integration.executor.harness import rpc

    docs = [strategy_doc(ns, "s", local_chain.take_vault(), [leader.pubkey])]
    store = LeadSignalStore(ledger)
    metrics = WatcherMetrics()
    strangers_swap = run(stranger.swap("USDC", "SOL", 10**6))
    real_answer = rpc(local_chain.rpc_url, "getTransaction", [strangers_swap, {
        "encoding": "base64", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}])
    forged = str(Signature.from_bytes(os.urandom(64)))
    local_chain.reset_faults()
    try:
        async def scenario() -> None:
            async with wired_watcher(local_chain, ledger, docs, metrics=metrics) as (watcher, poller):
                await poller.poll_round(watcher.process)  # baseline (the leader's funding only)
                cursor = await asyncio.to_thread(store.cursor, leader.pubkey)
                # 1. a pushed signature answered with someone else's real transaction
                local_chain.set_fault(kind="answer", method="getTransaction", result=real_answer, count=1)
                with pytest.raises(Exception, match="not a transaction signed with that signature"):
                    await watcher.process(Candidate(leader.pubkey, forged, "webhook"))
                # 2. a listing that names a transaction the node then does not have
                local_chain.set_fault(kind="answer", method="getSignaturesForAddress", count=1, result=[{
                    "signature": forged, "slot": local_chain.state()["slot"], "err": None, "memo": None,
                    "blockTime": int(time.time()), "confirmationStatus": "confirmed"}])
                await poller.poll_round(watcher.process)
                assert await asyncio.to_thread(store.cursor, leader.pubkey) == cursor

        run(scenario())
    finally:
        local_chain.reset_faults()
    assert metric_value(metrics.rpc_errors, method="getTransaction", reason="MALFORMED_RESPONSE") == 1
    assert store.signals(leader.pubkey) == [] and store.signals(stranger.pubkey) == []
    assert sum(ledger.counts_by_state(f"{ns}/s").values()) == 0
