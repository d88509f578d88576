"""The reference system's failure scenarios, done for real: a real Postgres ledger, the local LiteSVM
chain and its Jupiter-compatible market with fault injection, and the real executor.

Every test ends with the exactly-once check against the CHAIN: the vault's successful swaps since the
test began are exactly the CONFIRMED trades' final signatures, and its token balances moved by exactly
the confirmed amounts (:func:`assert_chain_matches_ledger`).
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import psycopg
import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    executor_env,
    rpc,
    successful_fills,
    vault_transactions,
    wait_terminal,
)
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000  # input base units per trade (small against the pool: negligible price impact)


def _env(local_chain, ledger_dsn, scenario, **extra):
    return executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                        swap_api_url=local_chain.swap_api_url, **extra)


def _distinct_amounts(n: int) -> list[int]:
    return [AMOUNT + 1_000 * i for i in range(n)]


def _admit_distinct(ledger, scenario, n, **kwargs) -> list[int]:
    ids = []
    for amount in _distinct_amounts(n):
        ids += admit(ledger, scenario, 1, amount, **kwargs)
    return ids


def test_trades_execute_exactly_once(local_chain, ledger, ledger_dsn, scenario, chain_before):
    fills_before, balances_before = chain_before
    ids = _admit_distinct(ledger, scenario, 6)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, concurrency=3)):
        trades = wait_terminal(ledger, ids, 120)
    assert [t.state for t in trades] == [TradeState.CONFIRMED] * 6
    for trade in trades:
        assert len(trade.attempts) == 1 and trade.attempts[0].outcome is AttemptOutcome.LANDED
        assert trade.final_signature == trade.attempts[0].signature
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_send_timeouts_are_retried_with_the_same_bytes_never_duplicated(local_chain, ledger, ledger_dsn, scenario,
                                                                        chain_before):
    """sendTransaction hangs past the client's timeout (twice), then works: the executor keeps
    rebroadcasting the SAME signed bytes; each trade lands once."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="timeout", method="sendTransaction", count=2, hang_s=3)
    ids = _admit_distinct(ledger, scenario, 2)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, send_timeout_seconds=1)) as ex:
        trades = wait_terminal(ledger, ids, 120)
        errors = ex.service.metrics.rpc_errors.labels(scenario.strategy, "sendTransaction", "RPC_TIMEOUT")._value.get()
    assert errors >= 2
    assert [t.state for t in trades] == [TradeState.CONFIRMED] * 2
    assert all(len(t.attempts) == 1 for t in trades)  # the timeouts never caused a re-sign
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def _expire_quickly(local_chain, stop: threading.Event) -> threading.Thread:
    """Forced blockhash expiry: produce 200 blocks a second, so an attempt's lastValidBlockHeight is
    passed (at FINALIZED height) within seconds instead of a minute."""
    def run() -> None:
        while not stop.wait(1.0):
            local_chain.advance_blocks(200)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_rpc_that_never_answers_sends_fails_with_rpc_timeout_and_nothing_lands(local_chain, ledger, ledger_dsn,
                                                                              scenario, chain_before):
    """Every send times out (never processed): only once the blockhash is past its last valid height
    (finalized) may the executor re-sign; after max attempts the trade FAILS with RPC_TIMEOUT."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="timeout", method="sendTransaction", hang_s=1.5)
    ids = _admit_distinct(ledger, scenario, 1)
    stop = threading.Event()
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, send_timeout_seconds=0.5,
                                slippage_max_attempts=2)):
        _expire_quickly(local_chain, stop)
        try:
            trades = wait_terminal(ledger, ids, 120)
        finally:
            stop.set()
    trade = trades[0]
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.RPC_TIMEOUT, trade
    assert [a.outcome for a in trade.attempts] == [AttemptOutcome.EXPIRED] * 2
    assert all(a.detail.startswith("RPC_TIMEOUT: never accepted") for a in trade.attempts)
    assert any(a.kind == "RPC_FAILURE" and a.trade_id == trade.trade_id for a in ledger.pending_alerts())
    assert successful_fills(local_chain.rpc_url, scenario.vault) == fills_before
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_expired_attempt_is_resigned_only_after_finalized_expiry(local_chain, ledger, ledger_dsn, scenario,
                                                                 chain_before):
    """The node refuses every send (error answer, nothing processed) until the first attempt has
    expired at finalized height; only then is ONE new attempt signed, and it lands."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="error", method="sendTransaction")
    ids = _admit_distinct(ledger, scenario, 1)
    stop = threading.Event()
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, rebroadcast_interval_seconds=0.3)):
        deadline = time.monotonic() + 30
        while not any(a.outcome is AttemptOutcome.EXPIRED for a in ledger.get_trade(ids[0]).attempts):
            assert time.monotonic() < deadline, "attempt 1 never expired"
            trade = ledger.get_trade(ids[0])
            assert len(trade.attempts) <= 1, "re-signed before expiry"
            local_chain.advance_blocks(40)
            time.sleep(0.2)
        local_chain.reset_faults()
        trades = wait_terminal(ledger, ids, 60)
    stop.set()
    trade = trades[0]
    assert trade.state is TradeState.CONFIRMED, trade
    first, second = trade.attempts
    assert first.outcome is AttemptOutcome.EXPIRED and first.detail.startswith("RPC_ERROR: never accepted")
    assert second.outcome is AttemptOutcome.LANDED and second.slippage_bps == first.slippage_bps
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


@pytest.mark.parametrize("answer", ["timeout", "close", "error", "http_error"])
def test_answer_lost_after_processing_gives_no_second_transaction(local_chain, ledger, ledger_dsn, scenario,
                                                                 chain_before, answer):
    """The dangerous case: the node processes the transaction and the answer is lost (hangs, the
    connection drops, or an error comes back). The executor must find it by signature, never sign
    a new one."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="drop_after_process", method="sendTransaction", answer=answer, hang_s=3, count=3)
    ids = _admit_distinct(ledger, scenario, 3)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, send_timeout_seconds=1)):
        trades = wait_terminal(ledger, ids, 120)
    assert [t.state for t in trades] == [TradeState.CONFIRMED] * 3
    assert all(len(t.attempts) == 1 for t in trades)
    vault_sigs = [tx["signature"] for tx in vault_transactions(local_chain.rpc_url, scenario.vault)]
    assert all(vault_sigs.count(t.final_signature) == 1 for t in trades)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_flaky_status_polling_and_block_height_still_exactly_once(local_chain, ledger, ledger_dsn, scenario,
                                                                  chain_before):
    """Half the status/height reads fail or hang: the executor backs off and keeps following the
    same attempts; nothing is re-signed on a read error."""
    fills_before, balances_before = chain_before
    # the first two status reads fail for certain (a batched read serves every trade waiting: with
    # only random failures, a fast run could see none), then half of them and a third of heights
    local_chain.set_fault(kind="error", method="getSignatureStatuses", count=2)
    local_chain.set_fault(kind="error", method="getSignatureStatuses", probability=0.5)
    local_chain.set_fault(kind="timeout", method="getBlockHeight", probability=0.3, hang_s=2.5)
    ids = _admit_distinct(ledger, scenario, 4)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, concurrency=4)) as ex:
        trades = wait_terminal(ledger, ids, 120)
        errors = sum(s.value for m in ex.service.metrics.rpc_errors.collect() for s in m.samples
                     if s.name.endswith("_total"))
    local_chain.reset_faults()  # the assertions below read the chain through the same RPC
    assert errors >= 2
    assert [t.state for t in trades] == [TradeState.CONFIRMED] * 4
    assert all(len(t.attempts) == 1 for t in trades)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_malformed_swap_api_answer_fails_the_trade_without_sending(local_chain, ledger, ledger_dsn, scenario,
                                                                    chain_before):
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="malformed", method="quote")
    ids = _admit_distinct(ledger, scenario, 1)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario)):
        trades = wait_terminal(ledger, ids, 60)
    trade = trades[0]
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.MALFORMED_RESPONSE, trade
    assert trade.attempts == ()
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


SLIPPAGE_ENV = {"slippage_initial_bps": 100, "slippage_step_bps": 50, "slippage_cap_bps": 200,
                "slippage_max_attempts": 3, "max_price_impact": "0.05"}


def test_slippage_failure_is_retried_with_raised_slippage_and_confirmed(local_chain, ledger, ledger_dsn, scenario,
                                                                       chain_before, price_mover):
    """The price moves 1.2% against us between quote and execution, once: attempt 1 (100 bps) fails ON
    CHAIN with Jupiter's 6001; attempt 2, freshly quoted at 150 bps, lands."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="latency", method="sendTransaction", delay_ms=600, count=1)
    ids = _admit_distinct(ledger, scenario, 1)
    stop = threading.Event()
    price_mover.on_each_new_attempt(ledger, ids[0], lambda: price_mover.against(120), stop, limit=1)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, **SLIPPAGE_ENV)):
        trades = wait_terminal(ledger, ids, 120)
    stop.set()
    trade = trades[0]
    assert trade.state is TradeState.CONFIRMED, trade
    first, second = trade.attempts
    assert (first.outcome, first.reason, first.slippage_bps) == (AttemptOutcome.FAILED_ON_CHAIN,
                                                                 ReasonCode.SLIPPAGE_EXCEEDED, 100)
    assert (second.outcome, second.slippage_bps) == (AttemptOutcome.LANDED, 150)
    failed = {tx["signature"]: tx for tx in vault_transactions(local_chain.rpc_url, scenario.vault)}[first.signature]
    assert failed["err"] == {"InstructionError": [1, {"Custom": 6001}]}  # landed, failed, on the chain
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_slippage_failures_past_the_cap_fail_the_trade(local_chain, ledger, ledger_dsn, scenario, chain_before,
                                                       price_mover):
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="latency", method="sendTransaction", delay_ms=600, count=3)
    ids = _admit_distinct(ledger, scenario, 1)
    stop = threading.Event()
    price_mover.on_each_new_attempt(ledger, ids[0], lambda: price_mover.against(400), stop, limit=3)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, **SLIPPAGE_ENV)):
        trades = wait_terminal(ledger, ids, 120)
    stop.set()
    trade = trades[0]
    assert (trade.state, trade.reason) == (TradeState.FAILED, ReasonCode.SLIPPAGE_EXCEEDED), (
        trade.detail, [(a.slippage_bps, a.outcome, a.reason, a.detail) for a in trade.attempts])
    assert [a.slippage_bps for a in trade.attempts] == [100, 150, 200]
    assert all(a.outcome is AttemptOutcome.FAILED_ON_CHAIN for a in trade.attempts)
    assert any(a.kind == "ONCHAIN_FAILURE" and a.trade_id == trade.trade_id for a in ledger.pending_alerts())
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_risk_limit_refuses_before_any_send(local_chain, ledger, ledger_dsn, scenario, chain_before):
    fills_before, balances_before = chain_before
    ids = _admit_distinct(ledger, scenario, 1)
    # the trade is worth 2 USD (computed from its amount and the price; its stated 10 USD is not used)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, max_trade_notional_usd="1")):
        trades = wait_terminal(ledger, ids, 60)
    trade = trades[0]
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.RISK_LIMIT
    assert trade.detail.startswith("max_trade_notional") and trade.attempts == ()
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def _terminate_executor_backends(dsn: str, stop: threading.Event, every: float) -> None:
    """Kill the executor's ledger connections again and again (pg_terminate_backend)."""
    while not stop.wait(every):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                 WHERE application_name LIKE 'xorj-executor%' AND pid <> pg_backend_pid()""")
        except psycopg.Error:
            pass


def test_ledger_connections_killed_mid_trade_leave_no_orphan_and_no_duplicate(local_chain, ledger, ledger_dsn,
                                                                              scenario, chain_before):
    fills_before, balances_before = chain_before
    ids = _admit_distinct(ledger, scenario, 8)
    stop = threading.Event()
    killer = threading.Thread(target=_terminate_executor_backends, args=(ledger_dsn, stop, 0.15), daemon=True)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, concurrency=4)) as ex:
        def ledger_errors() -> float:
            return sum(s.value for m in ex.service.metrics.ledger_errors.collect() for s in m.samples
                       if s.name.endswith("_total"))

        killer.start()
        time.sleep(4)
        # Only a connection killed while in use is an error the executor sees (the pool checks an
        # idle one before lending it); on a busy machine 4 s of killing may miss every transaction
        # on the event loop, which are short: keep killing, for a bounded time, until one is hit.
        deadline = time.monotonic() + 20
        while ledger_errors() == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        killer.join()
        trades = wait_terminal(ledger, ids, 120)
        errors_seen = ledger_errors()
    assert errors_seen > 0, "the killer never hit the executor: the test proved nothing"
    assert any(a.kind == "LEDGER_UNAVAILABLE" for a in ledger.pending_alerts())
    assert all(t.state.is_terminal for t in trades)
    assert all(t.lease_owner is None for t in trades)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_ledger_server_restart_mid_trade(local_chain, disposable_postgres_server, scenario, chain_before):
    from xorj.ledger import Ledger, migrate

    fills_before, balances_before = chain_before
    dsn = disposable_postgres_server.create_database("ledger_restart")
    migrate(dsn)
    with Ledger.connect(dsn) as ledger:
        ids = _admit_distinct(ledger, scenario, 6)
        with InProcessExecutor(_env(local_chain, dsn, scenario, concurrency=3, poll_interval_seconds=0.5)) as ex:
            deadline = time.monotonic() + 30
            while not any(ledger.get_trade(i).state is TradeState.SUBMITTED for i in ids):
                assert time.monotonic() < deadline, "no trade was ever SUBMITTED"
                time.sleep(0.02)
            disposable_postgres_server.kill()  # crash, not a clean shutdown: mid-trade
            time.sleep(6)  # longer than the pool's acquire timeout (5 s) and the lease (4 s)
            disposable_postgres_server.start()
            trades = wait_terminal(ledger, ids, 180)
            felt = sum(s.value for c in (ex.service.metrics.ledger_errors, ex.service.metrics.leases_lost)
                       for m in c.collect() for s in m.samples if s.name.endswith("_total"))
    assert felt > 0, "the executor never noticed the outage: the test proved nothing"
    assert all(t.state.is_terminal for t in trades)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_confirmation_depth_scales_with_trade_size(local_chain, ledger, ledger_dsn, scenario, chain_before):
    """Trades at or above XORJ_FINALIZED_FROM_USD are CONFIRMED only once their swap is finalized on
    chain; smaller ones at confirmed depth (1 slot here, finality 32 slots)."""
    fills_before, balances_before = chain_before
    small = admit(ledger, scenario, 1, AMOUNT + 11, notional_usd=Decimal(10))[0]
    large = admit(ledger, scenario, 1, AMOUNT + 22, notional_usd=Decimal(5000))[0]
    seen: dict[int, str] = {}
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, finalized_from_usd="1000")):
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            for trade_id in (small, large):
                trade = ledger.get_trade(trade_id)
                if trade_id not in seen and trade.state is TradeState.CONFIRMED:
                    status = rpc(local_chain.rpc_url, "getSignatureStatuses",
                                 [[trade.final_signature], {"searchTransactionHistory": True}])["value"][0]
                    seen[trade_id] = status["confirmationStatus"]
            time.sleep(0.01)
        trades = wait_terminal(ledger, [small, large], 60)
    assert seen[large] == "finalized"
    by_id = {t.trade_id: t for t in trades}

    def latency(trade_id: int) -> float:
        trade = by_id[trade_id]
        return (trade.finished_at - trade.attempts[-1].created_at).total_seconds()

    finality = 32 * local_chain.slot_ms / 1000  # the local chain finalizes 32 slots back
    assert latency(large) >= finality * 0.9
    # the small one did not wait for finality (read from the chain when the test was quick enough)
    assert seen[small] == "confirmed" or latency(small) < finality
    assert latency(small) < latency(large)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_circuit_breaker_opens_on_repeated_failures_and_refuses_new_trades(local_chain, ledger, ledger_dsn, scenario,
                                                                         chain_before):
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="http_error", method="quote", status=503)
    failing = _admit_distinct(ledger, scenario, 2)
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, breaker_failures_in_a_row=2, concurrency=1)) as ex:
        failed = wait_terminal(ledger, failing, 60)
        local_chain.reset_faults()
        time.sleep(1.2)  # the breaker's state is cached for a second
        refused = wait_terminal(ledger, admit(ledger, scenario, 1, AMOUNT + 77), 60)[0]
        breaker_open = ex.service.metrics.breaker_state.labels(scenario.strategy, "OPEN")._value.get()
    assert [t.reason for t in failed] == [ReasonCode.RPC_ERROR] * 2
    assert refused.state is TradeState.FAILED and refused.reason is ReasonCode.RISK_LIMIT
    assert refused.detail.startswith("circuit_breaker") and refused.attempts == ()
    assert breaker_open == 1
    assert any(a.kind == "BREAKER_OPEN" for a in ledger.pending_alerts())
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, failed + [refused], fills_before, balances_before)
