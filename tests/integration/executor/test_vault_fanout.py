"""Many vaults per strategy, end to end below Kubernetes: lead swaps fanned out by the ledger
(xorj.ledger.vaults.admit_fanout, what the operator's and the watcher's admissions run) are filled by
one executor holding the vaults' keys in a keys directory, and each vault's fills are counted on the
real local chain.

- every active vault gets exactly one trade per lead swap, and each CONFIRMED trade is exactly one
  successful swap of that vault on chain (none twice, none missing);
- a paused vault gets no trade and moves nothing;
- a vault whose own limit (Vault spec.limits.maxDailyTrades = 1) is tighter than the strategy's is
  refused its second trade by the executor's risk gate, and its chain shows one fill.
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
from xorj.ledger.vaults import admit_fanout, fanout_counts

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

VAULTS = 10  # the strategy's own vault and 9 Vault objects
AMOUNT = 1_500_000


def test_lead_swaps_fan_out_to_every_vault_and_each_vault_fills_once_per_swap(local_chain, ledger, ledger_dsn,
                                                                               tmp_path):
    local_chain.reset_faults()
    strategy = f"fan-{uuid.uuid4().hex[:10]}"
    scenarios = [Scenario(strategy=strategy, vault=vault, keypair_file=str(local_chain.vaults[vault]),
                          input_mint=local_chain.mints["USDC"], output_mint=local_chain.mints["SOL"])
                 for vault in (local_chain.take_vault() for _ in range(VAULTS + 1))]
    own, *objects, paused = scenarios
    strict = objects[0]
    register_vaults(ledger, strategy, [*objects, paused],
                    lambda s: VaultLimits(max_daily_trades=1 if s is strict else None, paused=s is paused))
    keys = keys_directory(tmp_path / "keys", scenarios)
    url = local_chain.rpc_url
    before = {s.vault: (successful_fills(url, s.vault), balances(url, s)) for s in scenarios}

    leads = [f"lead-{uuid.uuid4().hex}" for _ in range(2)]
    fanned = [ledger.run(admit_fanout(TradeIntent(
        strategy=strategy, vault=own.vault, lead_signature=lead,
        lead_trader="LeadTrader1111111111111111111111111111111111", input_mint=own.input_mint,
        output_mint=own.output_mint, amount=AMOUNT, notional_usd=Decimal(10)), actor="test"))
        for lead in leads]
    env = executor_env(dsn=ledger_dsn, scenario=own, rpc_url=url, swap_api_url=local_chain.swap_api_url,
                       vault_keys_dir=str(keys))
    del env["XORJ_VAULT_KEYPAIR_FILE"]
    ids = {vault: [f.results[vault].trade_id for f in fanned] for vault in fanned[0].results}
    with InProcessExecutor(env):
        trades = wait_terminal(ledger, [i for v in ids.values() for i in v], 180)
    by_id = {t.trade_id: t for t in trades}

    # one trade per lead swap for the own vault and each active Vault; none for the paused one
    assert set(ids) == {s.vault for s in scenarios if s is not paused}
    assert all(set(f.results) == set(ids) for f in fanned)
    assert successful_fills(url, paused.vault) == before[paused.vault][0]
    for scenario in scenarios:
        if scenario is paused:
            continue
        mine = [by_id[i] for i in ids[scenario.vault]]
        if scenario is strict:
            # its own daily limit of 1 trade: the second is refused before any signature
            assert [t.state for t in mine] == [TradeState.CONFIRMED, TradeState.FAILED], mine
            assert mine[1].reason is ReasonCode.RISK_LIMIT and mine[1].attempts == (), mine[1]
        else:
            assert all(t.state is TradeState.CONFIRMED for t in mine), [(t.state, t.reason, t.detail) for t in mine]
        # exactly-once, from the chain: this vault's successful swaps are its CONFIRMED trades
        assert_chain_matches_ledger(url, scenario, mine, *before[scenario.vault])
    counts = [ledger.run(fanout_counts(strategy, lead)) for lead in leads]
    assert [(c.total, c.confirmed, c.failed) for c in counts] == [(VAULTS, VAULTS, 0), (VAULTS, VAULTS - 1, 1)]
