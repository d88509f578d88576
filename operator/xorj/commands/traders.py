"""``xorj traders backfill WALLET...``: lead traders' swaps from the chain, as the Trust Score's history.

Reads each wallet's transactions from ``--rpc-url`` (getSignaturesForAddress, getTransaction), judges
each swap or not, values the swaps with the price API at ``--price-url`` (Jupiter's price API v3, or the
local market's), and prints the realized trades (FIFO cost basis) as the CSV ``xorj score`` reads:
``wallet,timestamp,profit_usd,volume_usd``. Progress goes to stderr.

With ``XORJ_LEDGER_DSN`` set, the swaps are recorded in the ledger (idempotent per wallet and
signature) with a cursor per wallet, so the next run reads only what is new, and the rows printed are
those of everything recorded. Without it, each run reads the whole history and records nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys

import click


@click.group("traders")
def traders() -> None:
    """Lead traders' on-chain history."""


@traders.command("backfill")
@click.argument("wallets", nargs=-1, required=True)
@click.option("--rpc-url", envvar=["XORJ_TRADERS_RPC_URL", "XORJ_RPC_URL"], required=True,
              help="Solana JSON-RPC endpoint (env XORJ_TRADERS_RPC_URL, else XORJ_RPC_URL).")
@click.option("--price-url", envvar="XORJ_PRICE_API_URL", required=True,
              help="Price API v3 base (Jupiter's, or the local market's; env XORJ_PRICE_API_URL).")
@click.option("--price-api-key-env", default="XORJ_JUPITER_API_KEY", show_default=True,
              help="Environment variable holding the price API's key (sent as x-api-key), if any.")
@click.option("--commitment", type=click.Choice(["confirmed", "finalized"]), default="confirmed", show_default=True)
@click.option("--rpc-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="getTransaction calls in flight per wallet.")
@click.option("--cash-mint", "cash_mints", multiple=True, metavar="MINT",
              help="A USD-stable mint: not a position, its cost is its value (repeatable; default mainnet "
                   "USDC and USDT).")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def backfill(wallets: tuple[str, ...], rpc_url: str, price_url: str, price_api_key_env: str, commitment: str,
             rpc_timeout: float, concurrency: int, cash_mints: tuple[str, ...], quiet: bool) -> None:
    """Backfill (or refresh) WALLETS' swaps and print their realized trades as CSV."""
    from solders.pubkey import Pubkey

    from xorj.domain.trader_history import DEFAULT_CASH_MINTS
    from xorj.errors import XorjError

    for name, keys in (("WALLET", wallets), ("--cash-mint", cash_mints)):
        for key in keys:
            try:
                Pubkey.from_string(key)
            except ValueError:
                raise click.BadParameter(f"{key!r} is not a base58 public key", param_hint=name) from None
    cash = frozenset(cash_mints) or DEFAULT_CASH_MINTS
    try:
        csv_text = asyncio.run(_run(wallets, rpc_url, price_url, os.environ.get(price_api_key_env) or None,
                                    commitment, rpc_timeout, concurrency, cash, quiet))
    except XorjError as exc:
        click.echo(f"xorj traders backfill: error: {exc}", err=True)
        sys.exit(1)
    click.echo(csv_text, nl=False)


async def _run(wallets: tuple[str, ...], rpc_url: str, price_url: str, api_key: str | None, commitment: str,
               rpc_timeout: float, concurrency: int, cash: frozenset[str], quiet: bool) -> str:
    from xorj.chain.prices import JupiterPriceClient
    from xorj.chain.rpc import RpcTimeouts, SolanaRpc
    from xorj.domain.trader_history import RealizedTrade
    from xorj.traders.backfill import history_csv, realized, refresh, stored_entries
    from xorj.traders.history import ChainHistory

    def progress(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    dsn = os.environ.get("XORJ_LEDGER_DSN")
    rows: list[RealizedTrade] = []
    prices = JupiterPriceClient(price_url, timeout=rpc_timeout, api_key=api_key)
    async with SolanaRpc(rpc_url, timeouts=RpcTimeouts(read=rpc_timeout)) as rpc:
        chain = ChainHistory(rpc, commitment=commitment, concurrency=concurrency, timeout=rpc_timeout)
        try:
            if dsn:
                from xorj.ledger.repository import Ledger
                from xorj.ledger.trader_swaps import TraderSwapStore

                with Ledger.connect(dsn) as ledger:
                    store = TraderSwapStore(ledger)
                    for wallet in wallets:
                        result = await refresh(wallet, chain, prices, store, cash_mints=cash, progress=progress)
                        progress(f"{wallet}: {result.read} new transactions ({result.swaps} swaps, "
                                 f"{result.not_swaps} not swaps, {result.failed} failed), {result.recorded} recorded")
                        rows.extend(realized(store.swaps(wallet), cash_mints=cash))
            else:
                for wallet in wallets:
                    history = await chain.history(wallet, None, progress=progress)
                    entries = await stored_entries(history, prices, cash_mints=cash)
                    swaps = sum(1 for e in entries if e.swap.kind.value == "SWAP")
                    progress(f"{wallet}: {len(entries)} transactions, {swaps} swaps")
                    rows.extend(realized(entries, cash_mints=cash))
        finally:
            await prices.close()
    progress(f"{len(rows)} realized trades")
    return history_csv(rows)
