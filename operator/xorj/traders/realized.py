"""Realized trades of many wallets, kept between rescorings.

A pool is rescored on a schedule and after new swaps; between two rescorings most wallets recorded
nothing new. Realizing a wallet's swaps (FIFO, :func:`xorj.domain.trader_history.realize_fifo`) is the
expensive part of scoring, so :class:`RealizedHistories` keeps each wallet's realized trades as float
columns, with the version of the history they came from (:meth:`~xorj.ledger.trader_swaps.
TraderSwapStore.versions`: the wallet's history cursor, which moves in the transaction that records
new swaps; one read by primary key for every candidate). A rescoring then reads and realizes only the
wallets whose version changed, and every wallet without a cursor (nothing recorded through
:meth:`~xorj.ledger.trader_swaps.TraderSwapStore.record`; read each time, never kept).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from xorj.domain.scoring import TradeHistory
from xorj.domain.trader_history import DEFAULT_CASH_MINTS, PricedSwap, realize_fifo
from xorj.ledger.trader_swaps import TraderSwapStore

FloatArray = npt.NDArray[np.float64]
_EMPTY = np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Realized:
    version: tuple[str, int, datetime] | None  # None: no cursor, not kept
    timestamp: FloatArray
    profit_usd: FloatArray
    volume_usd: FloatArray


class RealizedHistories:
    """wallet -> its realized trades, per set of cash mints (they decide what is a position). Safe to
    use from several threads (pools are scored off the event loop)."""

    def __init__(self, *, max_wallets: int = 200_000) -> None:
        self._by_cash: dict[frozenset[str], dict[str, _Realized]] = {}
        self._lock = threading.Lock()
        self.max_wallets = max_wallets  # a bound on memory: past it the cache starts over
        self.realized_last = 0  # wallets realized by the last call (the rest were reused): for tests and the bench

    def history(self, store: TraderSwapStore, candidates: Sequence[str], *,
                cash_mints: frozenset[str] = DEFAULT_CASH_MINTS) -> TradeHistory:
        """The candidates' realized trades as the Trust Score's columns (wallets without any: NO_DATA),
        read through the blocking ``store`` (the bench, the tests). On an event loop, the same steps:
        :func:`~xorj.ledger.trader_swaps.versions`, :meth:`stale`, :func:`~xorj.ledger.trader_swaps.
        priced_of` of those, then :meth:`assemble` (CPU)."""
        wallets = tuple(dict.fromkeys(candidates))
        versions = store.versions(wallets)
        stale = self.stale(wallets, versions, cash_mints=cash_mints)
        return self.assemble(wallets, versions, store.priced_of(stale) if stale else {}, cash_mints=cash_mints)

    def stale(self, wallets: Sequence[str], versions: dict[str, tuple[str, int, datetime]], *,
              cash_mints: frozenset[str] = DEFAULT_CASH_MINTS) -> list[str]:
        """The wallets whose realized trades must be read again: no cursor, not kept, or a new version."""
        with self._lock:
            known = self._by_cash.setdefault(frozenset(cash_mints), {})
            return [w for w in wallets if w not in versions or w not in known or known[w].version != versions[w]]

    def assemble(self, wallets: Sequence[str], versions: dict[str, tuple[str, int, datetime]],
                 priced: dict[str, list[PricedSwap]], *,
                 cash_mints: frozenset[str] = DEFAULT_CASH_MINTS) -> TradeHistory:
        """Realize ``priced`` (the :meth:`stale` wallets' priced swaps: CPU, no I/O), keep what has a
        version, and build the columns of ``wallets`` (each either in ``priced`` or kept)."""
        wallets = tuple(dict.fromkeys(wallets))
        fresh = _realize(priced, versions, cash_mints)
        with self._lock:
            known = self._by_cash.setdefault(frozenset(cash_mints), {})
            rows = [(i, fresh.get(w) or known[w]) for i, w in enumerate(wallets)]
            if sum(len(k) for k in self._by_cash.values()) + len(fresh) > self.max_wallets:
                known.clear()
            known.update((w, r) for w, r in fresh.items() if r.version is not None)
        self.realized_last = len(fresh)
        sizes = [r.timestamp.size for _, r in rows]
        return TradeHistory(
            wallets=wallets,
            wallet_index=np.repeat(np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows)), sizes),
            timestamp=np.concatenate([r.timestamp for _, r in rows]) if rows else _EMPTY,
            profit_usd=np.concatenate([r.profit_usd for _, r in rows]) if rows else _EMPTY,
            volume_usd=np.concatenate([r.volume_usd for _, r in rows]) if rows else _EMPTY)


def _realize(priced: dict[str, list[PricedSwap]], versions: dict[str, tuple[str, int, datetime]],
             cash_mints: frozenset[str]) -> dict[str, _Realized]:
    out = {}
    for wallet, swaps in priced.items():
        trades = realize_fifo(swaps, cash_mints=cash_mints)
        out[wallet] = _Realized(
            versions.get(wallet),
            np.fromiter((t.timestamp for t in trades), dtype=np.float64, count=len(trades)),
            np.fromiter((float(t.profit_usd) for t in trades), dtype=np.float64, count=len(trades)),
            np.fromiter((float(t.volume_usd) for t in trades), dtype=np.float64, count=len(trades)))
    return out
