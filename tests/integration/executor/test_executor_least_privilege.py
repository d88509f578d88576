"""The executor as a real process under its namespace's Postgres login (issue 11 item 5): it does its
whole job with only the executor group's privileges, over verified TLS, and a stolen or misconfigured
executor of one namespace cannot touch another namespace's trades."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal

import psycopg
import pytest

from tests.integration.executor.harness import (
    admit,
    assert_chain_matches_ledger,
    executor_env,
    executors,
    logs_of,
    successful_fills,
    wait_terminal,
)
from xorj.domain.trades import ReasonCode, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]

AMOUNT = 1_300_000


def test_an_executor_under_its_namespace_login_trades_exactly_once(local_chain, ledger, executor_login, scenario,
                                                                     chain_before, tmp_path):
    fills_before, balances_before = chain_before
    own = dataclasses.replace(scenario, strategy=f"team-a/{scenario.strategy}")
    login = executor_login("team-a")
    assert "sslmode=verify-full" in login.dsn
    ids = admit(ledger, own, 4, AMOUNT)
    # one the risk limits refuse (20 000 USDC, stated and worth over the 1 000 USD limit): FAILED by the
    # restricted login before any send
    refused = admit(ledger, own, 1, 20_000 * 10**6, notional_usd=Decimal(20000))
    env = executor_env(dsn=login.dsn, scenario=own, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, concurrency=2, max_trade_notional_usd="1000")
    with executors(1, env, tmp_path, "team-a"):
        trades = wait_terminal(ledger, ids + refused, 120)
    assert [t.state for t in trades[:-1]] == [TradeState.CONFIRMED] * 4
    assert (trades[-1].state, trades[-1].reason) == (TradeState.FAILED, ReasonCode.RISK_LIMIT)
    assert_chain_matches_ledger(local_chain.rpc_url, own, trades, fills_before, balances_before)
    assert [e.actor for e in ledger.trade_events(refused[0])][-1] == "team-a-0"
    logs = logs_of(tmp_path)
    assert "permission denied" not in logs and "row-level security" not in logs, logs[-3000:]
    # it woke on its namespace's admissions channel, whose name its login may ask the ledger for
    assert "listening for admissions" in logs and "admission listener lost" not in logs, logs[-3000:]


def test_an_executor_with_another_namespaces_login_cannot_claim_its_trades(local_chain, ledger, ledger_dsn,
                                                                            executor_login, scenario, chain_before,
                                                                            tmp_path):
    """team-a's login, pointed at team-b's strategy (a stolen DSN, a copied Deployment): nothing of
    team-b is claimed, leased or sent."""
    fills_before, _ = chain_before
    victim = dataclasses.replace(scenario, strategy=f"team-b/{scenario.strategy}")
    ids = admit(ledger, victim, 2, AMOUNT)
    thief = executor_login("team-a")
    env = executor_env(dsn=thief.dsn, scenario=victim, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    with executors(1, env, tmp_path, "thief") as (proc,):
        proc.port()  # serving: its claim loop is running
        time.sleep(3)  # many claim rounds (every 0.1 s)
    trades = [ledger.get_trade(i) for i in ids]
    assert [(t.state, t.lease_owner, t.attempts) for t in trades] == [
        (TradeState.PENDING, None, ())] * 2
    assert successful_fills(local_chain.rpc_url, scenario.vault) == fills_before
    with psycopg.connect(ledger_dsn) as conn:  # not even a lease was ever written
        assert conn.execute("SELECT max(claim_count) FROM trades WHERE id = ANY(%s)", (ids,)).fetchone() == (0,)
