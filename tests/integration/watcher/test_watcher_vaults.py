"""A strategy with many vaults on the real local chain and the real ledger: a lead trader's SELL is
copied by each vault as its OWN share of its OWN position (the watcher sizes each vault's trade from
that vault's balance, read for every vault in one batched getMultipleAccounts), judged on chain: each
vault's balance of the sold token drops by exactly its share and nothing else moves. A vault holding
none of the token, or a share below the minimum notional, gets no trade. An RPC answer that lies about
a vault's token account fails the round with MALFORMED_RESPONSE and admits nothing."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from tests.integration.executor.harness import (
    InProcessExecutor,
    Scenario,
    executor_env,
    keys_directory,
    register_vaults,
    rpc,
    successful_fills,
    token_balance,
    wait_for_finalized,
    wait_terminal,
)
from tests.integration.watcher.helpers import metric_value, run, strategy_doc, wired_watcher
from xorj.chain.errors import MalformedAnswerError
from xorj.domain.trades import TradeState
from xorj.ledger.lead_signals import LeadSignalStore
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Candidate, Outcome

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

SOL = 10**9  # base units of one whole local SOL-like token (9 decimals, about 100 USD)
LEADER_HOLDS, LEADER_SELLS = 40 * SOL, 10 * SOL  # the leader sells a quarter of its position
HOLDINGS = {"own": 2 * SOL, "big": 8 * SOL, "none": 0, "odd": 3_333_333_333, "dust": SOL // 50}


def test_each_vault_sells_its_own_share_of_its_own_position_on_chain(local_chain, ledger, ledger_dsn, tmp_path,
                                                                      leader, ns) -> None:
    url = local_chain.rpc_url
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    strategy = f"{ns}/s"
    vaults = {name: local_chain.take_vault() for name in HOLDINGS}
    for name, vault in vaults.items():  # each vault's own position of the token the leader will sell
        local_chain.admin("POST", "/fund", {"pubkey": vault, "lamports": SOL, "tokens": {"SOL": HOLDINGS[name],
                                                                                          "USDC": 0}})
    local_chain.admin("POST", "/fund", {"pubkey": leader.pubkey, "lamports": SOL,
                                        "tokens": {"SOL": LEADER_HOLDS, "USDC": 0}})
    scenarios = {name: Scenario(strategy=strategy, vault=vault, keypair_file=str(local_chain.vaults[vault]),
                                input_mint=sol, output_mint=usdc) for name, vault in vaults.items()}
    register_vaults(ledger, strategy, [s for name, s in scenarios.items() if name != "own"])
    docs = [strategy_doc(ns, "s", vaults["own"], [leader.pubkey], sizing={"mode": "proportional", "ratio": 1})]
    metrics = WatcherMetrics()
    # a lying node's answer for the watcher's batched read: another vault's token account, five times
    lie = rpc(url, "getMultipleAccounts", [[str(get_associated_token_address(Pubkey.from_string(vaults["big"]),
                                                                             Pubkey.from_string(sol)))] * 5,
                                           {"encoding": "base64", "commitment": "confirmed"}])
    before = {name: (token_balance(url, v, sol), token_balance(url, v, usdc), successful_fills(url, v))
              for name, v in vaults.items()}

    async def scenario() -> str:
        async with wired_watcher(local_chain, ledger, docs, metrics=metrics) as (watcher, _):
            signature = await leader.swap("SOL", "USDC", LEADER_SELLS)
            local_chain.reset_faults()
            try:
                local_chain.set_fault(kind="answer", method="getMultipleAccounts", result=lie, count=1)
                with pytest.raises(MalformedAnswerError, match="is not the vault's token account") as refused:
                    await watcher.process(Candidate(leader.pubkey, signature, "webhook"))
                assert refused.value.reason.value == "MALFORMED_RESPONSE"
            finally:
                local_chain.reset_faults()
            assert await watcher.process(Candidate(leader.pubkey, signature, "webhook")) is Outcome.ACCEPTED
            return signature

    signature = run(scenario())
    [accepted] = LeadSignalStore(ledger).signals(leader.pubkey)
    assert (int(accepted.sold_amount), int(accepted.sold_balance_before)) == (LEADER_SELLS, LEADER_HOLDS)
    trades = {t.vault: t for t in (ledger.get_trade(i) for i in _trade_ids(ledger_dsn, strategy, signature))}
    share = {name: held * LEADER_SELLS // LEADER_HOLDS for name, held in HOLDINGS.items()}
    # each vault's own share; none for the vault without the token, nor for the 0.5 USD share (min 1 USD)
    assert {v: t.amount for v, t in trades.items()} == {vaults[n]: share[n] for n in ("own", "big", "odd")}
    assert metric_value(metrics.vault_skips, reason="NOT_HELD") == 1
    assert metric_value(metrics.vault_skips, reason="BELOW_MIN_NOTIONAL") == 1

    own = scenarios["own"]
    env = executor_env(dsn=ledger_dsn, scenario=own, rpc_url=url, swap_api_url=local_chain.swap_api_url,
                       vault_keys_dir=str(keys_directory(tmp_path / "keys", list(scenarios.values()))))
    del env["XORJ_VAULT_KEYPAIR_FILE"]
    with InProcessExecutor(env):
        done = wait_terminal(ledger, [t.trade_id for t in trades.values()], 120)
    assert {t.state for t in done} == {TradeState.CONFIRMED}, [(t.state, t.reason, t.detail) for t in done]
    wait_for_finalized(url, {t.final_signature for t in done if t.final_signature})

    # judged on chain: each vault sold exactly its own share, once; the others moved nothing
    by_vault = {t.vault: t for t in done}
    for name, vault in vaults.items():
        sol_before, usdc_before, fills_before = before[name]
        fills = successful_fills(url, vault) - fills_before
        if vault in by_vault:
            assert fills == {by_vault[vault].final_signature}, name
            assert sol_before - token_balance(url, vault, sol) == share[name], name
            assert token_balance(url, vault, usdc) > usdc_before, name
        else:
            assert fills == set() and token_balance(url, vault, sol) == sol_before, name


def _trade_ids(dsn: str, strategy: str, lead_signature: str) -> list[int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM trades WHERE strategy = %s AND lead_signature = %s",
                                           (strategy, lead_signature)).fetchall()]
