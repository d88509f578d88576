"""Issue 11, confused deputy: an executor never quotes or signs a trade whose vault is not the vault
of its key. Before the CRD made ``spec.vault`` immutable, changing a strategy's vault re-built its
executors with the new key, and they claimed the trades admitted for the old vault (claims go by
strategy) and signed them with the new key. Here that situation is made directly: trades admitted for
vault A, an executor of the same strategy holding vault B's key. Judged from the chain."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    balances,
    executor_env,
    successful_fills,
    wait_terminal,
)
from xorj.domain.trades import ReasonCode, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000


def test_changed_vault_never_signs_old_trades(local_chain, ledger, ledger_dsn, scenario, chain_before):
    old_fills, old_balances = chain_before
    new_vault = local_chain.take_vault()
    assert new_vault != scenario.vault
    new = dataclasses.replace(scenario, vault=new_vault, keypair_file=str(local_chain.vaults[new_vault]))
    new_fills, new_balances = successful_fills(local_chain.rpc_url, new_vault), balances(local_chain.rpc_url, new)
    new_swaps_before = len(local_chain.swaps(new_vault))

    old_trades = admit(ledger, scenario, 1, AMOUNT) + admit(ledger, scenario, 1, AMOUNT + 1_000)
    new_trades = admit(ledger, new, 1, AMOUNT + 2_000)  # the new vault's own trade: it must still work
    env = executor_env(dsn=ledger_dsn, scenario=new, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, vault_pubkey=new_vault)
    with InProcessExecutor(env):
        trades = wait_terminal(ledger, old_trades + new_trades, 90)
    by_id = {t.trade_id: t for t in trades}

    for trade_id in old_trades:
        trade = by_id[trade_id]
        assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.VAULT_MISMATCH, trade
        assert trade.attempts == (), "an attempt was signed for another vault's trade"
        assert scenario.vault in trade.detail and new_vault in trade.detail
    assert by_id[new_trades[0]].state is TradeState.CONFIRMED

    # the chain: the old vault did not move; the new vault filled exactly its own trade, once
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, [by_id[i] for i in old_trades], old_fills,
                                old_balances)
    assert_chain_matches_ledger(local_chain.rpc_url, new, [by_id[i] for i in new_trades], new_fills, new_balances)
    assert len(local_chain.swaps(new_vault)) - new_swaps_before == 1

    # and someone is told: one critical alert per refused trade, written with the failure
    with psycopg.connect(ledger_dsn) as conn:
        rows = conn.execute("SELECT trade_id, kind, severity FROM alerts WHERE trade_id = ANY(%s)",
                            (old_trades,)).fetchall()
    assert sorted(rows) == sorted((i, "VAULT_MISMATCH", "critical") for i in old_trades)
