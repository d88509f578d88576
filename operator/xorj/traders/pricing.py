"""USD values of swaps through the one :class:`~xorj.chain.prices.PriceSource` interface.

A swap needs ONE reliable price: the swap itself prices its other leg
(:func:`xorj.domain.trader_history.value_swap` picks a USD-stable leg first, then SOL).

Which time the price is of: a source that also implements :class:`HistoricalPriceSource`
(``prices_at(mints, unix_seconds)``) is asked for the price at each swap's block time. Jupiter's price
API v3 (mainnet) and the local market's /price/v3 serve only the CURRENT price, so with them a swap is
valued at the price when it is read: exact for a cash leg (a stablecoin is ~1 USD at any time), close
for a refresh shortly after the swap (the watcher's case), and an approximation for an old backfill
whose only priced leg is SOL or a volatile token. ``priced_at`` records which moment was used, so the
ledger says it (column trader_swaps.priced_at).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from xorj.chain.prices import PriceSource, TokenPrice
from xorj.domain.trader_history import DEFAULT_CASH_MINTS, ParsedSwap, SwapKind, value_swap


@runtime_checkable
class HistoricalPriceSource(Protocol):
    """A price source that can answer as of a past moment (unix seconds)."""

    async def prices_at(self, mints: Sequence[str], at: int) -> dict[str, TokenPrice]: ...


@dataclass(frozen=True, slots=True)
class SwapValue:
    value_usd: Decimal | None  # None: no leg had a price
    priced_at: datetime | None


async def value_swaps(swaps: Sequence[ParsedSwap], source: PriceSource, *,
                      cash_mints: frozenset[str] = DEFAULT_CASH_MINTS,
                      now: datetime | None = None) -> list[SwapValue]:
    """The USD value of each SWAP in ``swaps`` (a non-swap gets ``SwapValue(None, None)``)."""
    out: list[SwapValue] = [SwapValue(None, None)] * len(swaps)
    to_price = [(i, s) for i, s in enumerate(swaps) if s.kind is SwapKind.SWAP]
    if not to_price:
        return out
    if isinstance(source, HistoricalPriceSource):
        for i, swap in to_price:
            if swap.block_time is None:
                continue
            answer = await source.prices_at([swap.sold_mint or "", swap.bought_mint or ""], swap.block_time)
            value = value_swap(swap, _usd(answer, swap), cash_mints=cash_mints)
            out[i] = SwapValue(value, datetime.fromtimestamp(swap.block_time, UTC) if value is not None else None)
        return out
    mints = sorted({m for _, s in to_price for m in (s.sold_mint, s.bought_mint) if m})
    answer = await source.prices(mints)
    at = now or datetime.now(UTC)
    for i, swap in to_price:
        value = value_swap(swap, _usd(answer, swap), cash_mints=cash_mints)
        out[i] = SwapValue(value, at if value is not None else None)
    return out


def _usd(answer: dict[str, TokenPrice], swap: ParsedSwap) -> dict[str, Decimal]:
    """USD per whole token for the swap's legs; a price whose stated decimals are not the mint's
    decimals on chain is about some other token (or wrong) and is not used."""
    decimals = {swap.sold_mint: swap.sold_decimals, swap.bought_mint: swap.bought_decimals}
    return {mint: price.usd_price for mint, price in answer.items()
            if mint in decimals and (price.decimals is None or price.decimals == decimals[mint])}
