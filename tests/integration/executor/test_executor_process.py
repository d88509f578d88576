"""The executor as a real process (`xorj executor`): SIGKILL at every step of the algorithm, many
times, SIGTERM hand-back, /metrics and /healthz, and no secret in its logs or errors."""

from __future__ import annotations

import json
import random
import subprocess
import threading
from decimal import Decimal

import httpx
import pytest
from solders.keypair import Keypair

from tests.integration.executor.conftest import PriceMover
from tests.integration.executor.harness import (
    ExecutorProcess,
    admit,
    assert_chain_matches_ledger,
    executor_env,
    executors,
    kill_randomly,
    logs_of,
    wait_terminal,
)
from xorj.domain.trades import TradeState
from xorj.executor.submission import STEPS

pytestmark = [pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]

AMOUNT = 1_500_000


def _env(local_chain, ledger_dsn, scenario, **extra):
    return executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                        swap_api_url=local_chain.swap_api_url, lease_seconds=3, **extra)


def _admit(ledger, scenario, n, rng):
    ids = []
    for _ in range(n):
        ids += admit(ledger, scenario, 1, AMOUNT + rng.randrange(1, 10**6))
    return ids


def _wait_exit(proc: ExecutorProcess, timeout: float) -> int | None:
    try:
        return proc.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def test_sigkill_after_every_step_many_times_keeps_exactly_once(local_chain, ledger, ledger_dsn, scenario,
                                                                chain_before, price_mover, tmp_path):
    """For each step of the algorithm, executors are killed (SIGKILL, by the test hook) right after
    that step, again and again, while others take over from the ledger. Every trade still ends
    CONFIRMED or FAILED and the fills on the chain are exactly the confirmed trades."""
    fills_before, balances_before = chain_before
    rng = random.Random(7)
    ids: list[int] = []
    kills = {step: 0 for step in STEPS}
    # The price swings 1.5% up and back every 0.2 s while sends are delayed 0.3 s: many attempts at
    # 100 bps fail on chain (slippage), so the "failed" step happens too. The "resolved" step must not
    # depend on that timing (a busy machine can miss every swing): while it runs, the swing pauses and
    # the price moves against each new attempt right after its write-ahead record, before its delayed
    # send executes, so its first attempt surely misses its bound on chain.
    local_chain.set_fault(kind="latency", method="sendTransaction", delay_ms=300)
    stop = threading.Event()
    swing_paused, swing_idle = threading.Event(), threading.Event()

    def swing() -> None:
        while not stop.is_set():
            if swing_paused.is_set():
                swing_idle.set()  # between swings: the price is back where it was
                stop.wait(0.05)
                continue
            swing_idle.clear()
            price_mover.against(150)
            stop.wait(0.2)
            price_mover.restore()
            stop.wait(0.2)

    swinger = threading.Thread(target=swing, daemon=True)
    swinger.start()
    for round_no in range(3):
        for step in STEPS:
            step_ids = _admit(ledger, scenario, 2, rng)
            ids += step_ids
            movers_stop = threading.Event()
            if step == "resolved":
                swing_paused.set()
                assert swing_idle.wait(10), "the price swing did not pause"
                for trade_id in step_ids:
                    PriceMover.on_each_new_attempt(ledger, trade_id, lambda: price_mover.against(150), movers_stop,
                                                   limit=1)
            # and one the risk limits refuse (max notional): the "failed" step happens every round
            # (20 000 USDC: over the default 10 000 USD limit, whatever notional it states)
            ids += admit(ledger, scenario, 1, 20_000 * 10**6 + rng.randrange(1, 10**6), notional_usd=Decimal(1))
            env = _env(local_chain, ledger_dsn, scenario, concurrency=2, slippage_cap_bps=200,
                       max_price_impact="0.05",
                       test_sigkill_after=f"{step}:{1 if step == 'resolved' else rng.randint(1, 2)}")
            proc = ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"victim-{round_no}-{step}"},
                                   tmp_path / f"victim-{round_no}-{step}.log")
            try:
                code = _wait_exit(proc, 30 if step == "resolved" else 15)
                if code == -9:
                    kills[step] += 1
            finally:
                proc.close()
                movers_stop.set()
                if step == "resolved":
                    price_mover.restore()
                    swing_paused.clear()
    stop.set()
    swinger.join()
    local_chain.reset_faults()
    assert all(kills[step] >= 1 for step in STEPS), str(kills)
    # A healthy executor finishes whatever the victims left (after their leases run out).
    with executors(1, _env(local_chain, ledger_dsn, scenario, concurrency=4, slippage_cap_bps=200,
                           max_price_impact="0.05"), tmp_path, "finisher"):
        trades = wait_terminal(ledger, ids, 240)
    assert {t.state for t in trades} <= {TradeState.CONFIRMED, TradeState.FAILED}
    assert sum(t.state is TradeState.CONFIRMED for t in trades) > 0
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)
    print(f"SIGKILLs per step: {kills}; trades {len(trades)}: "
          f"{sum(t.state is TradeState.CONFIRMED for t in trades)} confirmed")


def test_random_external_sigkills_with_concurrent_executors(local_chain, ledger, ledger_dsn, scenario, chain_before,
                                                            tmp_path):
    fills_before, balances_before = chain_before
    rng = random.Random(11)
    ids = _admit(ledger, scenario, 16, rng)
    env = _env(local_chain, ledger_dsn, scenario, concurrency=3)
    procs = [ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"pool-{i}"}, tmp_path / f"pool-{i}.log") for i in range(2)]
    try:
        kills = kill_randomly(procs, env, tmp_path, rng, seconds=40, pause=(0.3, 1.5), name="pool",
                              done=lambda: all(ledger.get_trade(i).state.is_terminal for i in ids))
        trades = wait_terminal(ledger, ids, 180)
    finally:
        for p in procs:
            p.close()
    assert kills >= 3
    assert all(t.state.is_terminal for t in trades)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_sigterm_finishes_or_hands_back_and_metrics_health_serve(local_chain, ledger, ledger_dsn, scenario,
                                                                 chain_before, tmp_path):
    fills_before, balances_before = chain_before
    rng = random.Random(3)
    ids = _admit(ledger, scenario, 4, rng)
    env = _env(local_chain, ledger_dsn, scenario, concurrency=2, shutdown_grace_seconds=10)
    with executors(1, env, tmp_path, "termed") as (proc,):
        port = proc.port()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["ok"] is True
        wait_terminal(ledger, ids[:1], 60)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for name in ("xorj_executor_trades_finished_total", "xorj_executor_attempt_seconds_bucket",
                     "xorj_executor_rpc_errors", "xorj_executor_breaker_state", "xorj_executor_ledger_trades",
                     "xorj_executor_claim_to_first_send_seconds_bucket"):
            assert name in metrics, name
        assert f'xorj_executor_breaker_state{{state="CLOSED",strategy="{scenario.strategy}"}} 1.0' in metrics
        assert proc.sigterm(30) == 0
    # whatever was not finished was handed back: a new executor finishes it
    leftovers = [i for i in ids if not ledger.get_trade(i).state.is_terminal]
    for i in leftovers:
        trade = ledger.get_trade(i)
        assert trade.lease_owner is None or trade.lease_expires_at is not None
    with executors(1, env, tmp_path, "after"):
        trades = wait_terminal(ledger, ids, 120)
    assert all(t.state is TradeState.CONFIRMED for t in trades)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_vault_secret_never_in_logs_or_errors(local_chain, ledger, ledger_dsn, scenario, chain_before, tmp_path):
    secret = json.loads(open(scenario.keypair_file).read())
    kp = Keypair.from_bytes(bytes(secret))
    forbidden = [json.dumps(secret), ", ".join(map(str, secret[:16])), ",".join(map(str, secret[:16])),
                 str(kp), bytes(secret[:32]).hex(), bytes(secret).hex()]
    rng = random.Random(5)
    ids = _admit(ledger, scenario, 2, rng)
    env = _env(local_chain, ledger_dsn, scenario, log_level="DEBUG")
    with executors(1, env, tmp_path, "logged") as (proc,):
        wait_terminal(ledger, ids, 60)
        proc.sigterm(30)
    # a broken keypair file: the error names the field, not the content
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(secret[:63]))
    broken = ExecutorProcess({**env, "XORJ_VAULT_KEYPAIR_FILE": str(bad)}, tmp_path / "broken.log")
    assert broken.proc.wait(30) != 0
    broken.close()
    text = logs_of(tmp_path)
    assert "vault_keypair_file" in (tmp_path / "broken.log").read_text()
    assert "executor started" in text and "trade confirmed" in text
    for needle in forbidden:
        assert needle not in text
    password = ledger_dsn.split("@")[0].split(":")[-1] if ledger_dsn.count(":") > 2 else None
    if password:
        assert password not in text
