"""The local market's price API v3 (what stands in for Jupiter's hosted one) read by the executor's
client, and the vault's holdings and mint decimals read from the chain."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from xorj.chain.errors import MalformedAnswerError
from xorj.chain.holdings import NATIVE_SOL_MINT, read_mints, read_vault
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc

pytestmark = pytest.mark.chain


def _prices(local_chain, mints):
    async def go():
        client = JupiterPriceClient(price_api_url_for(local_chain.swap_api_url))
        try:
            return await client.prices(mints)
        finally:
            await client.close()
    return asyncio.run(go())


def test_prices_come_from_the_pool_and_follow_it(local_chain, chain_faults_reset):
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    unknown = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"
    prices = _prices(local_chain, [usdc, sol, NATIVE_SOL_MINT, unknown])
    assert prices[usdc].usd_price == Decimal(1) and prices[usdc].decimals == 6
    pool_price = Decimal(str(local_chain.state()["price"]))
    assert abs(prices[sol].usd_price - pool_price) < Decimal("1e-6") and prices[sol].decimals == 9
    assert prices[NATIVE_SOL_MINT].usd_price == prices[sol].usd_price
    assert unknown not in prices  # the market cannot price it: left out, as Jupiter does
    local_chain.move_price(100)
    try:
        assert _prices(local_chain, [sol])[sol].usd_price > prices[sol].usd_price
    finally:
        local_chain.move_price(round((10_000 / 10_100 - 1) * 10_000))


def test_a_hostile_price_answer_is_refused(local_chain, chain_faults_reset):
    sol = local_chain.mints["SOL"]
    local_chain.set_price_answer('{"%s": {"usdPrice": Infinity, "decimals": 9}}' % sol)
    with pytest.raises(MalformedAnswerError):
        _prices(local_chain, [sol])


def test_vault_holdings_and_mint_decimals_from_the_chain(local_chain):
    vault = next(iter(sorted(local_chain.vaults)))
    usdc = local_chain.mints["USDC"]

    async def go():
        rpc = SolanaRpc(local_chain.rpc_url)
        try:
            mints = await read_mints(rpc, [usdc, local_chain.mints["SOL"]])
            return mints, await read_vault(rpc, vault, mints.values())
        finally:
            await rpc.close()

    mints, holdings = asyncio.run(go())
    assert mints[usdc].decimals == 6 and mints[local_chain.mints["SOL"]].decimals == 9
    assert holdings.lamports > 0 and holdings.balances[usdc] > 0
