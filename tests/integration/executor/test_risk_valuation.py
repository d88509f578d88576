"""Risk limits that cannot be talked past: the real executor values each trade from the chain's balances
and the price API (the local market's, Jupiter's price API v3 shape), whatever the CopyTrade states;
a cluster-wide halt in the ledger stops every executor; a trade whose processing keeps raising ends
FAILED (POISON_TRADE) instead of being reclaimed forever. Real Postgres ledger, real LiteSVM chain.
Every test ends with the exactly-once check against the chain."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from decimal import Decimal

import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    executor_env,
    executors,
    rpc,
    wait_terminal,
)
from xorj.domain.trades import ReasonCode, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

USDC = 10**6  # base units of one USDC-like token (6 decimals)


def _env(local_chain, ledger_dsn, scenario, **extra):
    return executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                        swap_api_url=local_chain.swap_api_url, **extra)


def test_a_tiny_stated_notional_does_not_let_a_large_trade_past_the_size_limit(
        local_chain, ledger, ledger_dsn, scenario, chain_before):
    fills_before, balances_before = chain_before
    # 2 000 USDC of real value, stated as 1e-300 USD
    ids = admit(ledger, scenario, 1, 2_000 * USDC, notional_usd=Decimal("1e-300"))
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, max_trade_notional_usd="1000")):
        trades = wait_terminal(ledger, ids, 60)
    trade = trades[0]
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.RISK_LIMIT, trade
    assert trade.detail.startswith("max_trade_notional: 2000.00 USD > limit 1000.00 USD"), trade.detail
    assert "stated notional" in trade.detail and trade.attempts == ()
    assert any(a.kind == "NOTIONAL_MISMATCH" and a.trade_id == trade.trade_id for a in ledger.pending_alerts())
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_a_large_stated_notional_does_not_block_a_small_trade(local_chain, ledger, ledger_dsn, scenario,
                                                             chain_before):
    """The computed notional wins both ways: a 2 USDC trade stated as 1 000 000 USD is within limits."""
    fills_before, balances_before = chain_before
    ids = admit(ledger, scenario, 1, 2 * USDC + 17, notional_usd=Decimal(1_000_000))
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, max_trade_notional_usd="1000")):
        trades = wait_terminal(ledger, ids, 60)
    assert trades[0].state is TradeState.CONFIRMED, trades[0]
    assert Decimal("1.99") < ledger.get_trade(ids[0]).risk_reserved_usd < Decimal("2.01")
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_max_position_share_is_enforced_against_the_vault_value_on_chain(local_chain, ledger, ledger_dsn,
                                                                        scenario, chain_before):
    """The vault holds about 100 000 USDC and 10 SOL: a 6 000 USDC buy of SOL is over 5 % of it, a
    2 USDC one is not. Nobody told the executor the vault's value: it read it from the chain."""
    fills_before, balances_before = chain_before
    big = admit(ledger, scenario, 1, 6_000 * USDC, notional_usd=Decimal(1))[0]
    small = admit(ledger, scenario, 1, 2 * USDC + 31, notional_usd=Decimal(2))[0]
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, max_trade_notional_usd="100000",
                                max_position_share="0.05")):
        trades = wait_terminal(ledger, [big, small], 60)
    refused, done = trades
    assert refused.state is TradeState.FAILED and refused.reason is ReasonCode.RISK_LIMIT, refused
    assert refused.detail.startswith("max_position_share:"), refused.detail
    assert refused.attempts == ()
    assert done.state is TradeState.CONFIRMED, done
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


@pytest.mark.parametrize(("answer", "reason"), [
    # a non-finite price (Python's JSON parser accepts NaN; the client must not)
    ("NaN", ReasonCode.MALFORMED_RESPONSE),
    ("absent", ReasonCode.RISK_LIMIT),  # no price for the input: cannot be valued, never passes
    ("garbage", ReasonCode.MALFORMED_RESPONSE),
])
def test_a_hostile_or_silent_price_source_never_lets_a_trade_pass(local_chain, ledger, ledger_dsn, scenario,
                                                                  chain_before, answer, reason):
    fills_before, balances_before = chain_before
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    body = {
        "NaN": '{"%s": {"usdPrice": NaN, "decimals": 6}, "%s": {"usdPrice": 100.0, "decimals": 9}}' % (usdc, sol),
        "absent": json.dumps({sol: {"usdPrice": 100.0, "decimals": 9}}),
        "garbage": '{"usdPrice": [1, 2',
    }[answer]
    local_chain.set_price_answer(body)
    ids = admit(ledger, scenario, 1, 2 * USDC + 43, notional_usd=Decimal(2))
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario)):
        trades = wait_terminal(ledger, ids, 60)
    trade = trades[0]
    assert trade.state is TradeState.FAILED and trade.reason is reason, trade
    assert trade.attempts == ()
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_the_ledger_halt_stops_every_executor(local_chain, ledger, ledger_dsn, scenario, chain_before, tmp_path):
    fills_before, balances_before = chain_before
    ledger.set_trading_halt(True, reason="test halt", actor="test")
    try:
        ids = [i for n in range(4) for i in admit(ledger, scenario, 1, 2 * USDC + 100 + n, notional_usd=Decimal(2))]
        with executors(2, _env(local_chain, ledger_dsn, scenario, concurrency=2), tmp_path) as running:
            trades = wait_terminal(ledger, ids, 90)
            # what the dashboard's halt, saturation and pool panels read, from the executors that saw the halt
            pages = [urllib.request.urlopen(f"http://127.0.0.1:{p.port()}/metrics", timeout=5).read().decode()
                     for p in running]
    finally:
        ledger.set_trading_halt(False, reason=None, actor="test")
    assert any(re.search(r'^xorj_executor_trading_halted\{strategy="[^"]+"\} 1\.0$', page, re.M) for page in pages)
    for page in pages:
        assert re.search(r'^xorj_executor_concurrency_limit\{strategy="[^"]+"\} 2\.0$', page, re.M), page
        assert re.search(r'^xorj_executor_ledger_pool_max_connections [1-9]', page, re.M), page
        assert 'xorj_executor_ledger_pool_connections{state="open"}' in page
    for trade in trades:
        assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.RISK_LIMIT, trade
        assert trade.detail == "kill_switch.global: all trading is halted (test halt)"
        assert trade.attempts == ()
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_a_trade_that_keeps_crashing_the_executor_is_failed_as_poison(local_chain, ledger, ledger_dsn, scenario,
                                                                     chain_before):
    fills_before, balances_before = chain_before
    ids = admit(ledger, scenario, 1, 2 * USDC + 200, notional_usd=Decimal(2))
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, test_raise_after="quoted",
                                poison_after_crashes=3)):
        trades = wait_terminal(ledger, ids, 60)
    trade = trades[0]
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.POISON_TRADE, trade
    assert trade.crash_count == 3 and "RuntimeError" in trade.detail
    assert trade.attempts == ()
    assert any(a.kind == "POISON_TRADE" and a.trade_id == trade.trade_id for a in ledger.pending_alerts())
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def test_confirmation_depth_follows_the_computed_notional_not_the_stated_one(
        local_chain, ledger, ledger_dsn, scenario, chain_before):
    """1 500 USDC stated as 1 USD: with XORJ_FINALIZED_FROM_USD=1000 the trade is CONFIRMED only once
    its swap is finalized on chain (a stated notional cannot lower the depth a large trade waits for)."""
    fills_before, balances_before = chain_before
    trade_id = admit(ledger, scenario, 1, 1_500 * USDC + 300, notional_usd=Decimal(1))[0]
    seen = None
    with InProcessExecutor(_env(local_chain, ledger_dsn, scenario, finalized_from_usd="1000",
                                max_trade_notional_usd="100000")):
        deadline = time.monotonic() + 60
        while seen is None and time.monotonic() < deadline:
            trade = ledger.get_trade(trade_id)
            if trade.state is TradeState.CONFIRMED:
                seen = rpc(local_chain.rpc_url, "getSignatureStatuses",
                           [[trade.final_signature], {"searchTransactionHistory": True}])["value"][0]
            time.sleep(0.01)
        trades = wait_terminal(ledger, [trade_id], 60)
    assert trades[0].state is TradeState.CONFIRMED, trades[0]
    assert seen is not None and seen["confirmationStatus"] == "finalized", seen
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)
