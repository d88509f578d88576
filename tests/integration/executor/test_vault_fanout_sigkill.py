"""Exactly-once with many vaults per strategy under SIGKILL (issue 15, section 4): a strategy with 100
vaults (its own and 99 registered Vaults), lead swaps fanned out by the ledger
(xorj.ledger.vaults.admit_fanout) into one trade per vault, filled by two real `xorj executor`
processes signing from one keys directory, racing each other while the test SIGKILLs them again and
again and starts new ones.

Judged from the local chain, per vault:
- every vault gets exactly one trade per lead swap;
- every trade ends terminal, and each vault's successful swaps on chain are exactly its CONFIRMED
  trades' final signatures (none twice, none missing) and its balances moved by exactly their amounts;
- a few vaults carry their own tight limit (maxDailyTrades = 1): each has at most one fill on chain
  and its other trades are refused RISK_LIMIT before any signature, although both executors race
  over them;
- the strategy's own daily limit (= the number of lead swaps) is per vault: no other vault is refused.
"""

from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal

import pytest

from tests.integration.executor.harness import (
    ExecutorProcess,
    Scenario,
    assert_chain_matches_ledger,
    balances,
    executor_env,
    executors,
    keys_directory,
    kill_randomly,
    register_vaults,
    successful_fills,
    wait_terminal,
)
from xorj.domain.risk import VaultLimits
from xorj.domain.trades import ReasonCode, TradeState
from xorj.ledger.records import TradeIntent
from xorj.ledger.vaults import admit_fanout

pytestmark = [pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]

VAULTS = 100  # the strategy's own vault and 99 Vault objects
STRICT = 4  # of those Vaults, this many have their own maxDailyTrades = 1
LEADS = 3  # lead swaps: VAULTS * LEADS follower trades
AMOUNT = 1_500_000


def test_sigkills_with_racing_executors_over_100_vaults_keep_each_vault_exactly_once(local_chain, ledger,
                                                                                      ledger_dsn, tmp_path):
    local_chain.reset_faults()
    rng = random.Random(15)
    strategy = f"killfan-{uuid.uuid4().hex[:10]}"
    scenarios = [Scenario(strategy=strategy, vault=vault, keypair_file=str(local_chain.vaults[vault]),
                          input_mint=local_chain.mints["USDC"], output_mint=local_chain.mints["SOL"])
                 for vault in (local_chain.take_vault() for _ in range(VAULTS))]
    own, *objects = scenarios
    strict = {s.vault for s in objects[:STRICT]}
    register_vaults(ledger, strategy, objects,
                    lambda s: VaultLimits(max_daily_trades=1 if s.vault in strict else None))
    keys = keys_directory(tmp_path / "keys", scenarios)
    url = local_chain.rpc_url
    before = {s.vault: (successful_fills(url, s.vault), balances(url, s)) for s in scenarios}

    fanned = [ledger.run(admit_fanout(TradeIntent(
        strategy=strategy, vault=own.vault, lead_signature=f"lead-{uuid.uuid4().hex}",
        lead_trader="LeadTrader1111111111111111111111111111111111", input_mint=own.input_mint,
        output_mint=own.output_mint, amount=AMOUNT + rng.randrange(1, 10**6), notional_usd=Decimal(10)),
        actor="test")) for _ in range(LEADS)]
    ids = {vault: [f.results[vault].trade_id for f in fanned] for vault in fanned[0].results}
    # one trade per lead swap for every vault, no more, no less
    assert set(ids) == {s.vault for s in scenarios}
    assert all(set(f.results) == set(ids) for f in fanned)
    all_ids = [i for v in ids.values() for i in v]
    assert len(set(all_ids)) == VAULTS * LEADS

    # The strategy's limit of LEADS trades a day is per vault: were it counted per strategy (or the
    # fan-out's trades charged to the own vault), the other vaults' trades would be refused.
    env = executor_env(dsn=ledger_dsn, scenario=own, rpc_url=url, swap_api_url=local_chain.swap_api_url,
                       vault_keys_dir=str(keys), lease_seconds=3, concurrency=8, max_daily_trades=LEADS)
    del env["XORJ_VAULT_KEYPAIR_FILE"]
    started = time.monotonic()
    procs = [ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"racer-{i}"}, tmp_path / f"racer-{i}.log")
             for i in range(2)]
    try:
        kills = kill_randomly(procs, env, tmp_path, rng, seconds=60, pause=(0.5, 2.0), name="racer",
                              done=lambda: all(ledger.get_trade(i).state.is_terminal for i in all_ids))
    finally:
        for p in procs:
            p.close()
    # whatever the victims left (after their leases run out), two healthy racers finish
    with executors(2, env, tmp_path, "finisher"):
        trades = wait_terminal(ledger, all_ids, 180)
    by_id = {t.trade_id: t for t in trades}
    print(f"{VAULTS} vaults x {LEADS} lead swaps: {kills} SIGKILLs, terminal after "
          f"{time.monotonic() - started:.1f}s; "
          f"{sum(t.state is TradeState.CONFIRMED for t in trades)} confirmed")

    assert kills >= 3
    assert all(t.state.is_terminal for t in trades)
    for scenario in scenarios:
        mine = [by_id[i] for i in ids[scenario.vault]]
        confirmed = [t for t in mine if t.state is TradeState.CONFIRMED]
        refused = [t for t in mine if t.reason is ReasonCode.RISK_LIMIT]
        if scenario.vault in strict:
            # its own daily limit of 1 trade holds although two executors race over its trades
            assert len(confirmed) <= 1, [(t.trade_id, t.final_signature) for t in confirmed]
            assert len(refused) >= LEADS - 1, [(t.state, t.reason, t.detail) for t in mine]
            assert all(t.state is TradeState.FAILED and t.attempts == () for t in refused), refused
        else:
            assert not refused, [(t.state, t.reason, t.detail) for t in refused]
        # exactly-once, from the chain: this vault's successful swaps are its CONFIRMED trades
        assert_chain_matches_ledger(url, scenario, mine, *before[scenario.vault])
        if scenario.vault in strict:
            assert len(successful_fills(url, scenario.vault) - before[scenario.vault][0]) <= 1
