"""A lead swap fanned out to many vaults goes through the executor's batch path: the vaults' trades are
claimed together, share one quote of the lead swap (it does not depend on the vault), and are checked,
recorded and confirmed in batched ledger transactions. What must not be shared is checked per vault:
each vault's swap transaction is its own, and the swap guard judges each.

Here the swap API (the local market, standing in for Jupiter's hosted API) tampers with ONE vault's
swap transaction (a drain). Only that vault's trade fails, SWAP_REJECTED naming the rule, unsigned;
every other vault's trade confirms, and each vault's successful swaps on the real local chain are
exactly its CONFIRMED trades (the tampered vault has none).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    Scenario,
    assert_chain_matches_ledger,
    balances,
    executor_env,
    keys_directory,
    register_vaults,
    successful_fills,
    wait_terminal,
)
from xorj.domain.risk import VaultLimits
from xorj.domain.trades import ReasonCode, TradeState
from xorj.ledger.records import TradeIntent
from xorj.ledger.vaults import admit_fanout

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

VAULTS = 8
AMOUNT = 1_700_000


def _fanout_scenarios(local_chain, strategy: str) -> list[Scenario]:
    """VAULTS fresh vaults of the session chain for one strategy, each buying SOL with its USDC."""
    return [Scenario(strategy=strategy, vault=vault, keypair_file=str(local_chain.vaults[vault]),
                     input_mint=local_chain.mints["USDC"], output_mint=local_chain.mints["SOL"])
            for vault in (local_chain.take_vault() for _ in range(VAULTS))]


def test_one_tampered_swap_fails_only_its_vault_and_the_fanout_shares_one_quote(local_chain, ledger, ledger_dsn,
                                                                                 tmp_path):
    local_chain.reset_faults()
    strategy = f"fanbatch-{uuid.uuid4().hex[:10]}"
    scenarios = _fanout_scenarios(local_chain, strategy)
    own, *others = scenarios
    register_vaults(ledger, strategy, others)
    keys = keys_directory(tmp_path / "keys", scenarios)
    url = local_chain.rpc_url
    before = {s.vault: (successful_fills(url, s.vault), balances(url, s)) for s in scenarios}

    fanned = ledger.run(admit_fanout(TradeIntent(
        strategy=strategy, vault=own.vault, lead_signature=f"lead-{uuid.uuid4().hex}",
        lead_trader="LeadTrader1111111111111111111111111111111111", input_mint=own.input_mint,
        output_mint=own.output_mint, amount=AMOUNT, notional_usd=Decimal(10)), actor="test"))
    ids = {vault: result.trade_id for vault, result in fanned.results.items()}
    assert set(ids) == {s.vault for s in scenarios}
    # the first swap transaction the API builds (whichever vault's it is) moves the vault's funds away
    local_chain.set_fault(kind="hostile", mode="drain", method="swap", count=1)
    quotes_before = local_chain.state()["requests"].get("quote", 0)
    env = executor_env(dsn=ledger_dsn, scenario=own, rpc_url=url, swap_api_url=local_chain.swap_api_url,
                       vault_keys_dir=str(keys), concurrency=2 * VAULTS)
    del env["XORJ_VAULT_KEYPAIR_FILE"]
    with InProcessExecutor(env):
        trades = {t.vault: t for t in wait_terminal(ledger, list(ids.values()), 120)}
    quotes = local_chain.state()["requests"].get("quote", 0) - quotes_before
    local_chain.reset_faults()

    refused = [t for t in trades.values() if t.state is TradeState.FAILED]
    assert len(refused) == 1, [(t.vault, t.state, t.reason, t.detail) for t in trades.values()]
    [bad] = refused
    assert bad.reason is ReasonCode.SWAP_REJECTED and "vault-transfer:" in (bad.detail or ""), bad.detail
    assert bad.attempts == (), "an attempt row means the tampered transaction was signed"
    rejections = [a.trade_id for a in ledger.pending_alerts(limit=100_000)
                  if a.kind == "SWAP_REJECTED" and a.trade_id in ids.values()]
    assert rejections == [bad.trade_id], rejections
    for scenario in scenarios:
        trade = trades[scenario.vault]
        if trade is not bad:
            assert trade.state is TradeState.CONFIRMED, (trade.state, trade.reason, trade.detail)
        # exactly-once, from the chain: this vault's successful swaps are its CONFIRMED trades (none
        # for the tampered vault, whose balances are unchanged)
        assert_chain_matches_ledger(url, scenario, [trade], *before[scenario.vault])
    # the quote does not depend on the vault: the fan-out's trades asked for it once, not once each
    assert quotes == 1, f"{quotes} quote requests for one lead swap fanned out to {VAULTS} vaults"


def test_one_vault_over_its_limit_fails_alone_in_the_batched_reservation(local_chain, ledger, ledger_dsn, tmp_path):
    """The fan-out's daily-limit reservations go to the ledger together (one set-based statement per
    step): a vault whose own limit refuses its trade fails RISK_LIMIT alone, unsent, and every other
    vault's trade confirms, each vault's fills on the chain equal to its CONFIRMED trades."""
    local_chain.reset_faults()
    strategy = f"fanlimit-{uuid.uuid4().hex[:10]}"
    scenarios = _fanout_scenarios(local_chain, strategy)
    own, *others = scenarios
    capped = others[2]
    # 1.7 USDC is worth about 1.7 USD: over this vault's own per-trade limit, within everyone else's
    register_vaults(ledger, strategy, others, limits_of=lambda s: VaultLimits(
        max_trade_notional_usd=Decimal("0.5") if s is capped else None))
    keys = keys_directory(tmp_path / "keys", scenarios)
    url = local_chain.rpc_url
    before = {s.vault: (successful_fills(url, s.vault), balances(url, s)) for s in scenarios}
    fanned = ledger.run(admit_fanout(TradeIntent(
        strategy=strategy, vault=own.vault, lead_signature=f"lead-{uuid.uuid4().hex}",
        lead_trader="LeadTrader1111111111111111111111111111111111", input_mint=own.input_mint,
        output_mint=own.output_mint, amount=AMOUNT, notional_usd=Decimal("1.7")), actor="test"))
    ids = {vault: result.trade_id for vault, result in fanned.results.items()}
    env = executor_env(dsn=ledger_dsn, scenario=own, rpc_url=url, swap_api_url=local_chain.swap_api_url,
                       vault_keys_dir=str(keys), concurrency=2 * VAULTS)
    del env["XORJ_VAULT_KEYPAIR_FILE"]
    with InProcessExecutor(env):
        trades = {t.vault: t for t in wait_terminal(ledger, list(ids.values()), 120)}

    refused = trades[capped.vault]
    assert refused.state is TradeState.FAILED and refused.reason is ReasonCode.RISK_LIMIT, refused
    assert "max_trade_notional" in (refused.detail or "") and refused.attempts == (), refused.detail
    assert refused.risk_reserved_at is None  # refused: counted against nothing
    for scenario in scenarios:
        trade = trades[scenario.vault]
        if scenario is not capped:
            assert trade.state is TradeState.CONFIRMED, (trade.state, trade.reason, trade.detail)
            assert trade.risk_reserved_at is not None
        assert_chain_matches_ledger(url, scenario, [trade], *before[scenario.vault])
