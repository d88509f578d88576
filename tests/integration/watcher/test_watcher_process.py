"""`xorj watcher` as a real process on the local chain and the real ledger: it copies a simulated
leader's swaps; SIGKILLed mid-stream and started again, it misses no lead swap made while it was dead
and duplicates none (the cursor lives in the ledger); it serves /metrics with the watcher's series,
and no secret reaches its log."""

from __future__ import annotations

import os
import time

import httpx
import pytest
import yaml

from tests.fixtures.promtool import metric_lint_problems
from tests.integration.watcher.helpers import (
    WatcherProcess,
    run,
    strategy_doc,
)
from tests.polling import wait_for
from xorj.chain.prices import price_api_url_for
from xorj.ledger.lead_signals import LeadSignalStore

pytestmark = [pytest.mark.chain]

TOKEN = "process-hook-token-" + os.urandom(8).hex()


def test_sigkilled_watcher_resumes_without_missing_or_duplicating(local_chain, ledger, ledger_dsn, tmp_path, leader,
                                                                  ns) -> None:
    vault = local_chain.take_vault()
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text(yaml.safe_dump_all([strategy_doc(ns, "s", vault, [leader.pubkey],
                                                           sizing={"mode": "fixedUsd", "fixedUsd": 3})]))
    env = {"XORJ_LEDGER_DSN": ledger_dsn, "XORJ_RPC_URL": local_chain.rpc_url,
           "XORJ_PRICE_API_URL": price_api_url_for(local_chain.swap_api_url),
           "XORJ_WATCHER_STRATEGIES_FILE": str(strategies), "XORJ_WATCHER_HTTP_HOST": "127.0.0.1",
           "XORJ_WATCHER_HTTP_PORT": "0", "XORJ_WATCHER_POLL_INTERVAL_SECONDS": "0.2",
           "XORJ_WATCHER_WEBHOOK_TOKEN": TOKEN, "XORJ_WATCHER_CASH_MINTS": f'["{local_chain.mints["USDC"]}"]'}
    store = LeadSignalStore(ledger)
    signatures: list[str] = []
    first = WatcherProcess(env, tmp_path / "watcher-1.log")
    try:
        first.port()
        signatures.append(run(leader.swap("USDC", "SOL", 4 * 10**6)))
        wait_for(lambda: len(store.signals(leader.pubkey)) == 1, 30, "the first swap accepted", interval=0.1)
        signatures.append(run(leader.swap("USDC", "SOL", 5 * 10**6)))
    finally:
        first.kill()  # mid-stream: the second swap may or may not have been taken
    signatures += [run(leader.swap("USDC", "SOL", 6 * 10**6)), run(leader.swap("USDC", "SOL", 7 * 10**6))]

    second = WatcherProcess(env, tmp_path / "watcher-2.log")
    try:
        port = second.port()
        wait_for(lambda: len(store.signals(leader.pubkey)) == 4, 60, "every swap accepted after the restart", interval=0.1)
        time.sleep(1.0)  # a few more polling rounds: still nothing twice
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "xorj_watcher_trades_admitted_total" in metrics and "xorj_watcher_detection_seconds_bucket" in metrics
        assert metric_lint_problems(metrics) == ""  # promtool's conventions, on the live process
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        second.kill()
    accepted = store.signals(leader.pubkey)
    assert sorted(s.signature for s in accepted) == sorted(signatures)
    assert sum(ledger.counts_by_state(f"{ns}/s").values()) == 4  # one trade per lead swap
    for log_path in (first.log_path, second.log_path):
        text = log_path.read_text()
        assert TOKEN not in text and ledger_dsn not in text and "Traceback" not in text
