"""Lead traders' recorded history (migration 0010): per (wallet, signature) one judged transaction, and
per wallet the cursor of the newest recorded one. Used by :mod:`xorj.traders`.

Recording is idempotent: a transaction already recorded for the wallet is left as it is (ON CONFLICT
DO NOTHING on the primary key), so a re-run, an overlapping refresh or two processes racing write each
row once. The entries and the cursor move in ONE transaction: the cursor never passes a transaction
that is not recorded.

Each operation is a transaction body (:mod:`xorj.ledger.statements`), written once, run by the
blocking :class:`TraderSwapStore` or on the operator's :class:`~xorj.ledger.aio.AsyncLedger`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from xorj.domain.trader_history import ParsedSwap, PricedSwap, SwapKind
from xorj.ledger import statements
from xorj.ledger.repository import Ledger
from xorj.ledger.statements import Step, rowcount

# ANY(%b): a list of thousands of wallets is sent in binary (a quarter of the text format's CPU)
_COLUMNS = ("wallet, signature, slot, slot_index, block_time, kind, reason, sold_mint, sold_amount, sold_decimals, "
            "bought_mint, bought_amount, bought_decimals, sol_overhead_lamports, fee_lamports, value_usd, priced_at")


@dataclass(frozen=True)
class TraderCursor:
    wallet: str
    signature: str
    slot: int


@dataclass(frozen=True)
class StoredSwap:
    swap: ParsedSwap
    slot_index: int
    value_usd: Decimal | None
    priced_at: datetime | None


class TraderSwapStore:
    """The blocking ledger's way to these bodies (the ``xorj traders`` commands, the backfill, the
    rescoring's reads on its thread, the tests); the operator's event loop runs them on its
    :class:`~xorj.ledger.aio.AsyncLedger`."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def cursor(self, wallet: str) -> TraderCursor | None:
        return self._ledger.run(cursor(wallet))

    def record(self, wallet: str, entries: Sequence[StoredSwap], new_cursor: TraderCursor | None) -> int:
        return self._ledger.run(record(wallet, entries, new_cursor))

    def swaps(self, wallet: str) -> list[StoredSwap]:
        return self._ledger.run(swaps(wallet))

    def swaps_of(self, wallets: Sequence[str]) -> dict[str, list[StoredSwap]]:
        return self._ledger.run(swaps_of(wallets))

    def versions(self, wallets: Sequence[str]) -> dict[str, tuple[str, int, datetime]]:
        return self._ledger.run(versions(wallets))

    def history_watermark(self, wallets: Sequence[str]) -> str | None:
        return self._ledger.run(history_watermark(wallets))

    def priced_of(self, wallets: Sequence[str]) -> dict[str, list[PricedSwap]]:
        return self._ledger.run(priced_of(wallets))

    def wallets(self) -> list[str]:
        return self._ledger.run(wallets())


# -- transaction bodies (xorj.ledger.statements): each runs on the blocking or the asyncio ledger ------


def cursor(wallet: str) -> Step[TraderCursor | None]:
    return (yield from statements.record(TraderCursor, "SELECT wallet, cursor_signature AS signature, "
                                                       "cursor_slot AS slot FROM trader_history_cursors "
                                                       "WHERE wallet = %s", (wallet,)))


def record(wallet: str, entries: Sequence[StoredSwap], new_cursor: TraderCursor | None) -> Step[int]:
    """Store ``entries`` and move the wallet's cursor to ``new_cursor`` (never backwards), in one
    transaction. Returns how many rows were new."""
    rows = []
    for entry in entries:
        s = entry.swap
        if s.wallet != wallet:
            raise ValueError(f"entry {s.signature} is of wallet {s.wallet}, not {wallet}")
        rows.append((wallet, s.signature, s.slot, entry.slot_index,
                     None if s.block_time is None else datetime.fromtimestamp(s.block_time, UTC),
                     s.kind.value, s.reason, s.sold_mint, s.sold_amount or None, s.sold_decimals,
                     s.bought_mint, s.bought_amount or None, s.bought_decimals, s.sol_overhead_lamports,
                     s.fee_lamports, entry.value_usd, entry.priced_at))
    inserted = 0
    for row in rows:
        inserted += yield from rowcount(f"INSERT INTO trader_swaps ({_COLUMNS}) VALUES ({', '.join(['%s'] * 17)}) "
                                        "ON CONFLICT (wallet, signature) DO NOTHING", row)
    # updated_at changes whenever rows are added, even where the cursor does not move: it is the
    # version of the wallet's history that rescoring compares (versions, history_watermark)
    if new_cursor is not None:
        yield from rowcount(
            """INSERT INTO trader_history_cursors (wallet, cursor_signature, cursor_slot)
               VALUES (%s, %s, %s)
               ON CONFLICT (wallet) DO UPDATE SET
                   cursor_signature = CASE WHEN trader_history_cursors.cursor_slot <= EXCLUDED.cursor_slot
                                           THEN EXCLUDED.cursor_signature
                                           ELSE trader_history_cursors.cursor_signature END,
                   cursor_slot = greatest(trader_history_cursors.cursor_slot, EXCLUDED.cursor_slot),
                   updated_at = clock_timestamp()
               WHERE (trader_history_cursors.cursor_slot <= EXCLUDED.cursor_slot
                      AND trader_history_cursors.cursor_signature <> EXCLUDED.cursor_signature) OR %s""",
            (wallet, new_cursor.signature, new_cursor.slot, inserted > 0))
    elif inserted:
        yield from rowcount("UPDATE trader_history_cursors SET updated_at = clock_timestamp() WHERE wallet = %s",
                            (wallet,))
    return inserted


def swaps(wallet: str) -> Step[list[StoredSwap]]:
    """The wallet's recorded transactions in chain order (oldest first)."""
    found = yield from statements.rows(f"SELECT {_COLUMNS} FROM trader_swaps WHERE wallet = %s "
                                       "ORDER BY slot, slot_index, signature", (wallet,))
    return [_stored_swap(r) for r in found]


def swaps_of(wallets: Sequence[str]) -> Step[dict[str, list[StoredSwap]]]:
    """The recorded transactions of many wallets in one query: wallet -> chain order (oldest first).
    A wallet with nothing recorded maps to an empty list."""
    out: dict[str, list[StoredSwap]] = {w: [] for w in wallets}
    if not out:
        return out
    found = yield from statements.rows(f"SELECT {_COLUMNS} FROM trader_swaps WHERE wallet = ANY(%b) "
                                       "ORDER BY wallet, slot, slot_index, signature", (list(out),))
    for r in found:
        out[r["wallet"]].append(_stored_swap(r))
    return out


def versions(wallets: Sequence[str]) -> Step[dict[str, tuple[str, int, datetime]]]:
    """Per wallet with a cursor, a version of its recorded history: its cursor and when the cursor
    was last written, read by primary key. :func:`record` writes the cursor in the transaction that
    adds the rows, and rows are never changed or removed, so an unchanged version is an unchanged
    history (what a rescoring may reuse)."""
    if not wallets:
        return {}
    found = yield from statements.rows("SELECT wallet, cursor_signature, cursor_slot, updated_at "
                                       "FROM trader_history_cursors WHERE wallet = ANY(%b)", (list(wallets),))
    return {r["wallet"]: (r["cursor_signature"], int(r["cursor_slot"]), r["updated_at"]) for r in found}


def history_watermark(wallets: Sequence[str]) -> Step[str | None]:
    """One digest of the candidates' history versions (:func:`versions`): it changes when any of
    them records anything. None: none has a cursor."""
    if not wallets:
        return None
    row = yield from statements.one("SELECT md5(string_agg(wallet || ':' || cursor_signature || ':' || "
                                    "updated_at::text, ',' ORDER BY wallet)) AS digest "
                                    "FROM trader_history_cursors WHERE wallet = ANY(%b)", (list(wallets),))
    return None if row is None or row["digest"] is None else str(row["digest"])


def priced_of(wallets: Sequence[str]) -> Step[dict[str, list[PricedSwap]]]:
    """The priced SWAPs of many wallets in chain order, one query (what :func:`priced_swaps` keeps
    of :func:`swaps_of`, read without building the other kinds' rows)."""
    out: dict[str, list[PricedSwap]] = {w: [] for w in wallets}
    if not out:
        return out
    found = yield from statements.rows(
        "SELECT wallet, signature, extract(epoch FROM block_time)::bigint AS at, sold_mint, sold_amount, "
        "bought_mint, bought_amount, value_usd FROM trader_swaps WHERE wallet = ANY(%b) AND kind = 'SWAP' "
        "AND value_usd IS NOT NULL AND block_time IS NOT NULL ORDER BY wallet, slot, slot_index, signature",
        (list(out),))
    for r in found:
        out[r["wallet"]].append(PricedSwap(r["wallet"], r["signature"], int(r["at"]), r["sold_mint"],
                                           int(r["sold_amount"]), r["bought_mint"], int(r["bought_amount"]),
                                           r["value_usd"]))
    return out


def wallets() -> Step[list[str]]:
    return [r["wallet"] for r in (yield from statements.rows("SELECT wallet FROM trader_history_cursors "
                                                             "ORDER BY wallet"))]


def _stored_swap(r: Any) -> StoredSwap:
    swap = ParsedSwap(wallet=r["wallet"], signature=r["signature"], slot=r["slot"],
                      block_time=None if r["block_time"] is None else int(r["block_time"].timestamp()),
                      kind=SwapKind(r["kind"]), reason=r["reason"], sold_mint=r["sold_mint"],
                      sold_amount=int(r["sold_amount"] or 0), sold_decimals=r["sold_decimals"] or 0,
                      bought_mint=r["bought_mint"], bought_amount=int(r["bought_amount"] or 0),
                      bought_decimals=r["bought_decimals"] or 0,
                      sol_overhead_lamports=r["sol_overhead_lamports"], fee_lamports=r["fee_lamports"])
    return StoredSwap(swap, r["slot_index"], r["value_usd"], r["priced_at"])


def priced_swaps(stored: Sequence[StoredSwap]) -> list[PricedSwap]:
    """The SWAPs with a value and a block time, for :func:`xorj.domain.trader_history.realize_fifo`."""
    return [PricedSwap(s.swap.wallet, s.swap.signature, s.swap.block_time, s.swap.sold_mint or "",
                       s.swap.sold_amount, s.swap.bought_mint or "", s.swap.bought_amount, s.value_usd)
            for s in stored
            if s.swap.kind is SwapKind.SWAP and s.value_usd is not None and s.swap.block_time is not None]
