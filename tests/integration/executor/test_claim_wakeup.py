"""An executor claims a trade when it is admitted, not on its next poll: the ledger's NOTIFY at the
admission's commit wakes its claim loop. The claim interval here is 30 s, so a claim within a few
seconds is the wake-up's doing. A lost listener session reconnects and wakes it again. Real Postgres
ledger, real LiteSVM chain; the test ends with the exactly-once check against the chain."""

from __future__ import annotations

import time
from decimal import Decimal

import psycopg
import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    executor_env,
    wait_terminal,
)
from tests.polling import wait_for
from xorj.domain.trades import TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

USDC = 10**6
CLAIM_INTERVAL = 30.0
WOKEN_WITHIN = 5.0  # far below the claim interval, far above a claim's round trip


def _claimed_within(ledger, scenario, amount: int) -> tuple[int, float]:
    trade_id = admit(ledger, scenario, 1, amount, notional_usd=Decimal(2))[0]
    started = time.monotonic()
    wait_for(lambda: ledger.get_trade(trade_id).lease_owner is not None
             or ledger.get_trade(trade_id).state is not TradeState.PENDING,
             WOKEN_WITHIN, f"trade {trade_id} claimed", interval=0.05)
    return trade_id, time.monotonic() - started


def test_an_admitted_trade_wakes_the_idle_executor_and_a_lost_listener_comes_back(
        local_chain, ledger, ledger_dsn, scenario, chain_before):
    fills_before, balances_before = chain_before
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, claim_interval_seconds=CLAIM_INTERVAL)
    with InProcessExecutor(env) as running:
        service = running.service
        assert service is not None
        wait_for(lambda: service.listening, 15, "the executor's admission listener")
        time.sleep(0.5)  # its first claims found nothing: the claim loop now sleeps on its interval
        first, _ = _claimed_within(ledger, scenario, 2 * USDC + 301)

        # the listener's session is ended under it: it reconnects, and admissions wake the loop again
        with psycopg.connect(ledger_dsn, autocommit=True) as conn:
            ended = conn.execute("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                    WHERE application_name = 'xorj-executor-listener'""").fetchone()[0]
        assert ended == 1
        wait_for(lambda: not service.listening, 5, "the lost listener noticed", interval=0.05)
        wait_for(lambda: service.listening, 15, "the listener back")
        wait_terminal(ledger, [first], 60)
        time.sleep(0.5)
        second, _ = _claimed_within(ledger, scenario, 2 * USDC + 302)
        trades = wait_terminal(ledger, [first, second], 60)
    assert [t.state for t in trades] == [TradeState.CONFIRMED] * 2, trades
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)
