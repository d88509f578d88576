"""The signer boundary (``xorj signer``, a separate process holding the vault keys) with the real
ledger and the real local chain.

1. An executor with no key of its own (``XORJ_SIGNER_SOCKET``) fills the trades of three vaults of one
   strategy through one signer; each vault's fills on chain are exactly its CONFIRMED trades. A trade
   of a vault the signer does not hold fails VAULT_MISMATCH unsigned; once that vault's keypair file
   is added to the signer's directory (a Secret update), its next trade fills, with nothing restarted.
2. A compromised executor calls the signer directly: a drain transaction for a real PENDING trade, a
   valid swap of another amount for it, and valid transactions for a trade that does not exist, a
   CONFIRMED trade, and a trade of a vault the signer does not hold. Each is refused with its code, nothing is signed, and no vault moves on chain.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from solders.pubkey import Pubkey

from tests.integration.executor.harness import (
    InProcessExecutor,
    Scenario,
    admit,
    assert_chain_matches_ledger,
    balances,
    executor_env,
    rpc,
    successful_fills,
    wait_terminal,
)
from tests.integration.signer.harness import SignerProcess
from xorj.chain.jupiter import JupiterClient
from xorj.domain.signing import SigningRefusal
from xorj.domain.trades import ReasonCode, TradeState
from xorj.executor.signing import RefusalAnswer, SignAnswer
from xorj.ledger.roles import ensure_signer_login

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000


def _scenarios(local_chain, n: int) -> list[Scenario]:
    strategy = f"s-{uuid.uuid4().hex[:10]}"
    return [Scenario(strategy=strategy, vault=vault, keypair_file=str(local_chain.vaults[vault]),
                     input_mint=local_chain.mints["USDC"], output_mint=local_chain.mints["SOL"])
            for vault in (local_chain.take_vault() for _ in range(n))]


@pytest.fixture
def signer_dsn(ledger_owner_dsn):
    """The DSN of a signer-only ledger login (migration 0014) for a namespace: the signer reads with it."""
    return lambda namespace: ensure_signer_login(ledger_owner_dsn, namespace, f"pw-{uuid.uuid4().hex}").dsn


def _remote_signer_env(ledger_dsn: str, local_chain, scenario: Scenario, signer: SignerProcess) -> dict[str, str]:
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, signer_socket=str(signer.socket))
    del env["XORJ_VAULT_KEYPAIR_FILE"]  # the executor holds no key
    return env


def _vault_state(local_chain, scenario: Scenario) -> dict[str, Any]:
    """Everything of the vault a transaction could change, and its landed swaps."""
    url = local_chain.rpc_url
    account = rpc(url, "getAccountInfo", [scenario.vault, {"encoding": "base64", "commitment": "processed"}])["value"]
    return {"lamports": account["lamports"], "owner": account["owner"], "tokens": balances(url, scenario),
            "landed": len(local_chain.swaps(scenario.vault))}


def test_executor_signs_through_the_signer_for_three_vaults(local_chain, ledger, ledger_dsn, signer_dsn, tmp_path):
    local_chain.reset_faults()
    *held, late = _scenarios(local_chain, 4)
    url = local_chain.rpc_url
    before = {s.vault: (successful_fills(url, s.vault), balances(url, s)) for s in (*held, late)}
    with SignerProcess(ledger_dsn=signer_dsn(late.strategy), rpc_url=url, key_files=[s.keypair_file for s in held],
                       log_path=tmp_path / "signer.log") as signer:
        ids = {s.vault: admit(ledger, s, 2, AMOUNT) for s in held}
        refused = admit(ledger, late, 1, AMOUNT)
        with InProcessExecutor(_remote_signer_env(ledger_dsn, local_chain, held[0], signer)) as executor:
            assert executor.settings.vault_keypair_file is None and executor.settings.vault_keys_dir is None
            trades = wait_terminal(ledger, [i for v in ids.values() for i in v] + refused, 120)
            # the late vault's key arrives in the signer's directory: no restart of anything
            signer.add_key(late.keypair_file)
            added = admit(ledger, late, 1, AMOUNT + 1_000)
            added_trades = wait_terminal(ledger, added, 60)
        log = signer.log()
    by_id = {t.trade_id: t for t in trades}

    for scenario in held:
        mine = [by_id[i] for i in ids[scenario.vault]]
        assert all(t.state is TradeState.CONFIRMED for t in mine), [(t.state, t.reason, t.detail) for t in mine]
        # the vault's fills on chain are exactly its CONFIRMED trades (and its balances moved by them)
        assert_chain_matches_ledger(url, scenario, mine, *before[scenario.vault])

    [mismatch] = [by_id[i] for i in refused]
    assert mismatch.state is TradeState.FAILED and mismatch.reason is ReasonCode.VAULT_MISMATCH, mismatch
    assert mismatch.attempts == () and late.vault in (mismatch.detail or "")
    assert [t.state for t in added_trades] == [TradeState.CONFIRMED], added_trades
    assert_chain_matches_ledger(url, late, [mismatch, *added_trades], *before[late.vault])

    # the signer signed every attempt (and told nobody a key): the keypair files' bytes are not logged
    signed = [json.loads(line) for line in log.splitlines() if '"signed"' in line]
    assert {line["trade_id"] for line in signed} == {a.trade_id for t in (*trades, *added_trades) for a in t.attempts}
    for scenario in (*held, late):
        secret = json.loads(open(scenario.keypair_file).read())
        assert str(secret[:8])[1:-1] not in log and str(secret[32:40])[1:-1] not in log


async def _swap(local_chain, scenario: Scenario, hostile: str | None = None, amount: int = AMOUNT) -> dict[str, Any]:
    """A quote and its swap transaction for ``scenario``'s vault, from the local swap API (hostile when
    asked): what a compromised executor would forward to the signer."""
    api = JupiterClient(local_chain.swap_api_url)
    try:
        if hostile:
            local_chain.set_fault(kind="hostile", mode=hostile, method="swap")
        quote = await api.quote(input_mint=scenario.input_mint, output_mint=scenario.output_mint, amount=amount,
                                slippage_bps=50)
        answer = await api.swap_transaction(quote, Pubkey.from_string(scenario.vault))
    finally:
        local_chain.reset_faults()
        await api.close()
    return {"swap": answer.model_dump(by_alias=True, exclude_none=True), "quote": quote.raw}


def test_compromised_executor_gets_no_signature(local_chain, ledger, ledger_dsn, signer_dsn, tmp_path):
    local_chain.reset_faults()
    vault_a, vault_b, not_held = _scenarios(local_chain, 3)
    url = local_chain.rpc_url
    with SignerProcess(ledger_dsn=signer_dsn(vault_a.strategy), rpc_url=url,
                       key_files=[vault_a.keypair_file, vault_b.keypair_file],
                       log_path=tmp_path / "signer.log") as signer:
        # a CONFIRMED trade of vault b, filled through the signer by an honest executor
        [confirmed] = admit(ledger, vault_b, 1, AMOUNT)
        with InProcessExecutor(_remote_signer_env(ledger_dsn, local_chain, vault_b, signer)):
            assert [t.state for t in wait_terminal(ledger, [confirmed], 90)] == [TradeState.CONFIRMED]

        # from here on no executor runs: whoever reaches the socket asks
        [pending] = admit(ledger, vault_a, 1, AMOUNT)
        [foreign] = admit(ledger, not_held, 1, AMOUNT)
        scenarios = (vault_a, vault_b, not_held)
        state_before = {s.vault: _vault_state(local_chain, s) for s in scenarios}
        cases = [
            ("drain for a real PENDING trade", pending, asyncio.run(_swap(local_chain, vault_a, "drain")),
             SigningRefusal.SWAP_REJECTED, "vault-transfer"),
            ("a valid swap of twice the PENDING trade's amount", pending,
             asyncio.run(_swap(local_chain, vault_a, amount=2 * AMOUNT)), SigningRefusal.QUOTE_MISMATCH, None),
            ("a trade id the ledger does not hold", 987_654_321, asyncio.run(_swap(local_chain, vault_a)),
             SigningRefusal.TRADE_UNKNOWN, None),
            ("a CONFIRMED trade", confirmed, asyncio.run(_swap(local_chain, vault_b)),
             SigningRefusal.TRADE_STATE, None),
            ("a trade of a vault the signer does not hold", foreign, asyncio.run(_swap(local_chain, not_held)),
             SigningRefusal.VAULT_NOT_HELD, None),
        ]
        with signer.client() as http:
            for what, trade_id, body, code, rule in cases:
                resp = http.post("/v1/sign", json={"trade_id": trade_id, **body})
                assert resp.status_code != 200, f"{what}: signed"
                refusal = RefusalAnswer.model_validate(resp.json())
                assert (refusal.refused, refusal.rule) == (code, rule), (what, refusal)
            oversized = http.post("/v1/sign", content=b"{" + b" " * 200_000 + b"}",
                                  headers={"content-type": "application/json"})
            assert oversized.status_code == 413
            assert RefusalAnswer.model_validate(oversized.json()).refused is SigningRefusal.TOO_LARGE

            # nothing signed, nothing moved
            assert {s.vault: _vault_state(local_chain, s) for s in scenarios} == state_before
            assert ledger.get_trade(pending).state is TradeState.PENDING and ledger.get_trade(pending).attempts == ()

            # the one signature a valid request gets is the only live one for that attempt: asked again
            # before the ledger records it, the signer refuses (two live transactions could both land)
            first = http.post("/v1/sign", json={"trade_id": pending, **asyncio.run(_swap(local_chain, vault_a))})
            assert first.status_code == 200, first.text
            SignAnswer.model_validate(first.json())
            again = http.post("/v1/sign", json={"trade_id": pending, **asyncio.run(_swap(local_chain, vault_a))})
            assert RefusalAnswer.model_validate(again.json()).refused is SigningRefusal.SIGNED_NOT_RECORDED
        log = signer.log()
    refused_lines = [json.loads(line) for line in log.splitlines() if '"signing refused"' in line]
    assert {line["refused"] for line in refused_lines} >= {c[3].value for c in cases} | {"too-large",
                                                                                          "signed-not-recorded"}
    for scenario in scenarios:
        secret = json.loads(open(scenario.keypair_file).read())
        assert str(secret[:8])[1:-1] not in log
