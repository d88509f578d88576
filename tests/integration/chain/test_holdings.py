"""The batched balance read the watcher sizes each vault's trade from (xorj.chain.holdings.
read_balances) against the real local chain: many vaults in getMultipleAccounts calls of at most 100
accounts (not one call per vault), each vault's balance as the chain's own getTokenAccountBalance
says, 0 for a vault without the token account, and a node's answer that is not the vault's token
account refused with MALFORMED_RESPONSE."""

from __future__ import annotations

import asyncio

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from tests.integration.executor.harness import rpc, token_balance
from xorj.chain.errors import MalformedAnswerError
from xorj.chain.holdings import MAX_ACCOUNTS_PER_CALL, read_balances
from xorj.chain.rpc import SolanaRpc

pytestmark = [pytest.mark.chain]


class CountingRpc:
    """The real client, counting its getMultipleAccounts calls and their sizes."""

    def __init__(self, inner: SolanaRpc) -> None:
        self.inner = inner
        self.calls: list[int] = []

    async def accounts(self, pubkeys, commitment="processed", *, timeout=None):
        self.calls.append(len(pubkeys))
        return await self.inner.accounts(pubkeys, commitment, timeout=timeout)


def test_many_vaults_balances_in_batches_of_at_most_100_accounts(local_chain) -> None:
    url = local_chain.rpc_url
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    funded = [local_chain.take_vault() for _ in range(2)]
    for n, vault in enumerate(funded):
        local_chain.admin("POST", "/fund", {"pubkey": vault, "lamports": 10**9,
                                            "tokens": {"SOL": (n + 1) * 123_456_789, "USDC": 7 + n}})
    strangers = [str(Keypair().pubkey()) for _ in range(120)]  # no accounts at all
    vaults = [*funded, *strangers]

    async def read() -> tuple[dict[str, dict[str, int]], list[int]]:
        async with SolanaRpc(url) as solana:
            counting = CountingRpc(solana)
            return await read_balances(counting, vaults, [sol, usdc]), counting.calls

    balances, calls = asyncio.run(read())
    assert sum(calls) == 2 * len(vaults) and max(calls) <= MAX_ACCOUNTS_PER_CALL and len(calls) == 3
    for vault in funded:
        assert balances[vault] == {sol: token_balance(url, vault, sol), usdc: token_balance(url, vault, usdc)}
    assert balances[funded[1]][sol] == 2 * 123_456_789
    assert all(balances[v] == {sol: 0, usdc: 0} for v in strangers)


def test_a_token_account_of_another_owner_in_the_answer_is_refused(local_chain) -> None:
    url = local_chain.rpc_url
    sol = local_chain.mints["SOL"]
    mine, other = local_chain.take_vault(), local_chain.take_vault()
    lie = rpc(url, "getMultipleAccounts", [[str(get_associated_token_address(Pubkey.from_string(other),
                                                                             Pubkey.from_string(sol)))],
                                           {"encoding": "base64", "commitment": "confirmed"}])
    local_chain.reset_faults()
    try:
        local_chain.set_fault(kind="answer", method="getMultipleAccounts", result=lie, count=1)

        async def read() -> None:
            async with SolanaRpc(url) as solana:
                await read_balances(solana, [mine], [sol])

        with pytest.raises(MalformedAnswerError, match="is not the vault's token account") as refused:
            asyncio.run(read())
        assert refused.value.reason.value == "MALFORMED_RESPONSE"
    finally:
        local_chain.reset_faults()
