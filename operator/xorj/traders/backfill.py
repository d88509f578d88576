"""Backfill and refresh of lead traders' history, and the Trust Score rows from it.

``refresh(wallet)``: read what is new since the wallet's cursor (:class:`~xorj.traders.history.ChainHistory`),
value the swaps (:func:`~xorj.traders.pricing.value_swaps`), record them with the new cursor in one
ledger transaction (:class:`~xorj.ledger.trader_swaps.TraderSwapStore`). Run twice, it records nothing
the second time. ``history_rows(wallet)``: the realized trades of everything recorded, FIFO per
(wallet, mint) (:func:`~xorj.domain.trader_history.realize_fifo`), as ``wallet,timestamp,profit_usd,
volume_usd`` rows (:data:`xorj.scoring_io.HISTORY_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from xorj.chain.prices import PriceSource
from xorj.domain.trader_history import DEFAULT_CASH_MINTS, RealizedTrade, SwapKind, realize_fifo
from xorj.ledger.trader_swaps import StoredSwap, TraderCursor, TraderSwapStore, priced_swaps
from xorj.scoring_io import HISTORY_COLUMNS
from xorj.traders.history import ChainHistory, History
from xorj.traders.pricing import value_swaps

USD_PLACES = Decimal("1e-9")  # in the CSV: a billionth of a dollar is below any trade's noise


@dataclass(frozen=True)
class RefreshResult:
    wallet: str
    read: int  # transactions read from the chain
    recorded: int  # of them new in the ledger
    swaps: int
    not_swaps: int
    failed: int
    cursor: str | None


async def stored_entries(history: History, prices: PriceSource, *,
                         cash_mints: frozenset[str] = DEFAULT_CASH_MINTS) -> list[StoredSwap]:
    values = await value_swaps([e.swap for e in history.entries], prices, cash_mints=cash_mints)
    return [StoredSwap(e.swap, e.slot_index, v.value_usd, v.priced_at)
            for e, v in zip(history.entries, values, strict=True)]


def _counts(wallet: str, entries: Sequence[StoredSwap], recorded: int, cursor: str | None) -> RefreshResult:
    kinds = [e.swap.kind for e in entries]
    return RefreshResult(wallet, len(entries), recorded, kinds.count(SwapKind.SWAP), kinds.count(SwapKind.NOT_A_SWAP),
                         kinds.count(SwapKind.FAILED), cursor)


async def refresh(wallet: str, chain: ChainHistory, prices: PriceSource, store: TraderSwapStore, *,
                  cash_mints: frozenset[str] = DEFAULT_CASH_MINTS,
                  progress: Callable[[str], None] | None = None) -> RefreshResult:
    """Record what ``wallet`` did since its cursor (its whole history the first time)."""
    cursor = store.cursor(wallet)
    history = await chain.history(wallet, None if cursor is None else cursor.signature, progress=progress)
    entries = await stored_entries(history, prices, cash_mints=cash_mints)
    new_cursor = None
    if history.newest_signature is not None and history.newest_slot is not None:
        new_cursor = TraderCursor(wallet, history.newest_signature, history.newest_slot)
    recorded = store.record(wallet, entries, new_cursor)
    return _counts(wallet, entries, recorded, history.newest_signature or (cursor.signature if cursor else None))


def realized(stored: Sequence[StoredSwap], *, cash_mints: frozenset[str] = DEFAULT_CASH_MINTS) -> list[RealizedTrade]:
    return realize_fifo(priced_swaps(stored), cash_mints=cash_mints)


def history_csv(rows: Iterable[RealizedTrade]) -> str:
    """The rows as the CSV ``xorj score`` reads (header wallet,timestamp,profit_usd,volume_usd)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for r in rows:
        writer.writerow([r.wallet, r.timestamp, _plain(r.profit_usd), _plain(r.volume_usd)])
    return out.getvalue()


def _plain(value: Decimal) -> str:
    text = format(value.quantize(USD_PLACES), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"
