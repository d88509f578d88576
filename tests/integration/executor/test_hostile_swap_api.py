"""A hostile swap API, served by the local market (``hostile`` faults), against the real executor, the
real ledger and the real chain. For every attack: nothing is signed or sent (the vault has no new
transaction on chain and the trade no attempt), the vault's balances are unchanged, the trade is
FAILED with SWAP_REJECTED / QUOTE_REJECTED naming the rule, an alert is in the outbox and the
rejection is counted in the executor's metrics."""

from __future__ import annotations

import time

import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    balances,
    executor_env,
    rpc,
    vault_transactions,
    wait_terminal,
)
from xorj.domain.trades import ReasonCode, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000

# mode -> (reason, the rule the refusal names)
ATTACKS = {
    "drain": (ReasonCode.SWAP_REJECTED, "vault-transfer"),
    "approve": (ReasonCode.SWAP_REJECTED, "token-approve"),
    "authority": (ReasonCode.SWAP_REJECTED, "token-setauthority"),
    "assign": (ReasonCode.SWAP_REJECTED, "system"),
    "wrong_mint": (ReasonCode.SWAP_REJECTED, "wrong-mint"),
    "wrong_amount": (ReasonCode.SWAP_REJECTED, "wrong-amount"),
    "excess_priority_fee": (ReasonCode.SWAP_REJECTED, "priority-fee"),
    "lowball_validity": (ReasonCode.SWAP_REJECTED, "validity"),
    "extra_signer": (ReasonCode.SWAP_REJECTED, "extra-signer"),
    "nan_price_impact": (ReasonCode.QUOTE_REJECTED, "non-finite"),
    "inf_price_impact": (ReasonCode.QUOTE_REJECTED, "non-finite"),
}


def _vault_state(local_chain, scenario) -> dict:
    """Everything of the vault a transaction could have touched, read at processed commitment."""
    url = local_chain.rpc_url
    lamports = rpc(url, "getBalance", [scenario.vault, {"commitment": "processed"}])["value"]
    owner = rpc(url, "getAccountInfo", [scenario.vault, {"encoding": "base64", "commitment": "processed"}])
    return {"lamports": lamports, "owner": owner["value"]["owner"], "tokens": balances(url, scenario),
            "landed": len(local_chain.swaps(scenario.vault))}


@pytest.mark.parametrize("mode", sorted(ATTACKS))
def test_hostile_swap_answer_is_never_signed(mode, local_chain, ledger, ledger_dsn, scenario, chain_before):
    reason, rule = ATTACKS[mode]
    signatures_before = {tx["signature"] for tx in vault_transactions(local_chain.rpc_url, scenario.vault)}
    state_before = _vault_state(local_chain, scenario)
    local_chain.set_fault(kind="hostile", mode=mode, method="jupiter")
    ids = admit(ledger, scenario, 1, AMOUNT)
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    with InProcessExecutor(env) as executor:
        trade = wait_terminal(ledger, ids, 60)[0]
        assert executor.service is not None
        metrics = executor.service.metrics
    # the chain: give a (wrongly) sent transaction time to be seen at confirmed commitment
    time.sleep(3 * local_chain.slot_ms / 1000 + 0.3)
    signatures_after = {tx["signature"] for tx in vault_transactions(local_chain.rpc_url, scenario.vault)}
    assert signatures_after == signatures_before, "the vault signed a transaction that reached the chain"
    assert _vault_state(local_chain, scenario) == state_before
    assert len(trade.attempts) == 0, "an attempt row means a transaction was signed"
    assert trade.state is TradeState.FAILED and trade.reason is reason, (trade.reason, trade.detail)
    assert f"{rule}:" in (trade.detail or ""), trade.detail
    alerts = [a for a in ledger.pending_alerts(limit=100_000)
              if a.trade_id == trade.trade_id and a.kind == reason.value]
    assert len(alerts) == 1 and rule in alerts[0].message, alerts
    assert metrics.swaps_rejected.labels(scenario.strategy, reason.value, rule)._value.get() == 1


def test_the_honest_api_still_trades_after_a_refusal(local_chain, ledger, ledger_dsn, scenario, chain_before):
    """One hostile answer fails one trade; the next (honest) answer is checked, simulated and signed."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="hostile", mode="drain", method="jupiter", count=1)
    hostile = admit(ledger, scenario, 1, AMOUNT)
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    with InProcessExecutor(env):
        first = wait_terminal(ledger, hostile, 60)[0]
        honest = admit(ledger, scenario, 1, AMOUNT + 1_000)
        second = wait_terminal(ledger, honest, 60)[0]
    assert first.state is TradeState.FAILED and first.reason is ReasonCode.SWAP_REJECTED
    assert second.state is TradeState.CONFIRMED, (second.reason, second.detail)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, [first, second], fills_before, balances_before)


def test_a_price_move_seen_in_simulation_is_slippage_not_an_attack(local_chain, ledger, ledger_dsn, scenario,
                                                                   chain_before, price_mover):
    """The price moves between the swap answer and its simulation: the simulation fails with the
    aggregator's slippage error, which is SLIPPAGE_EXCEEDED (a new quote is asked for), never
    SWAP_REJECTED; nothing was signed for the stale answer and the trade fills on the next one."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="latency", method="simulateTransaction", delay_ms=1500, count=1)
    ids = admit(ledger, scenario, 1, AMOUNT)
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    seen = local_chain.state()["requests"].get("simulateTransaction", 0)
    with InProcessExecutor(env) as executor:
        deadline = time.monotonic() + 30
        while local_chain.state()["requests"].get("simulateTransaction", 0) == seen:
            assert time.monotonic() < deadline, "the executor never simulated"
            time.sleep(0.02)
        price_mover.against(500)  # lands while the first simulation is held
        trade = wait_terminal(ledger, ids, 60)[0]
        assert executor.service is not None
        metrics = executor.service.metrics
    assert trade.state is TradeState.CONFIRMED and len(trade.attempts) == 1, (trade.reason, trade.detail)
    assert metrics.rpc_errors.labels(scenario.strategy, "simulateTransaction", "SLIPPAGE_EXCEEDED")._value.get() == 1
    assert not [a for a in ledger.pending_alerts(limit=100_000)
                if a.trade_id == trade.trade_id and a.kind == ReasonCode.SWAP_REJECTED.value]
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, [trade], fills_before, balances_before)


def test_the_checks_wait_for_an_rpc_that_is_away(local_chain, ledger, ledger_dsn, scenario, chain_before):
    """The guard's own RPC calls fail for a while (HTTP 503 on simulateTransaction, five times: more
    than the swap API's three tries): nothing is signed meanwhile, and the trade fills once it answers."""
    fills_before, balances_before = chain_before
    local_chain.set_fault(kind="http_error", method="simulateTransaction", count=5)
    ids = admit(ledger, scenario, 1, AMOUNT)
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    with InProcessExecutor(env) as executor:
        trade = wait_terminal(ledger, ids, 90)[0]
        assert executor.service is not None
        metrics = executor.service.metrics
    assert trade.state is TradeState.CONFIRMED and len(trade.attempts) == 1, (trade.reason, trade.detail)
    assert metrics.rpc_errors.labels(scenario.strategy, "simulateTransaction", "RPC_ERROR")._value.get() == 5
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, [trade], fills_before, balances_before)
