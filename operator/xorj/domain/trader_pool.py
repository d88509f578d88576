"""Ranking a TraderPool (issue 14 section 2). Pure: candidates and their realized trades in, a ranked
Trust Score board out; the clock is a parameter.

The candidates are the pool's wallets (listed in its spec, or in ConfigMaps it selects by label); their
history is what :mod:`xorj.traders` stored in the ledger, realized FIFO
(:func:`xorj.domain.trader_history.realize_fifo`). A candidate without stored swaps is scored NO_DATA.
The window is ``window_days`` long and ends either now, or at the pool's newest realized trade
(``ends_at_latest_trade``: the Trust Score's own default, so a history that stopped, or one made
backdated, still has its trades in the window).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from solders.pubkey import Pubkey

from xorj.domain.scoring import (
    SECONDS_PER_DAY,
    Normalization,
    ScoreBoard,
    TradeHistory,
    TraderScore,
    score_history,
)
from xorj.domain.trader_history import RealizedTrade

_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True, slots=True)
class PoolRanking:
    """The pool's scores, best first, and the window they were computed over (unix seconds)."""

    ranked: list[TraderScore]
    normalization: Normalization
    window_start: float
    window_end: float

    @property
    def eligible(self) -> int:
        return sum(1 for s in self.ranked if s.eligible)

    @property
    def ineligible(self) -> int:
        return len(self.ranked) - self.eligible


def candidates_from_lists(lists: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Wallets from ConfigMap values (source name -> text: base58 keys one per line, or separated by
    spaces or commas; ``#`` starts a comment). Returns (unique wallets sorted, problems): an entry
    that is not a 32-byte base58 key is left out and named in ``problems``, never guessed at."""
    wallets: set[str] = set()
    problems: list[str] = []
    for source in sorted(lists):
        for line_no, line in enumerate(lists[source].splitlines(), start=1):
            for entry in _SEPARATORS.split(line.split("#", 1)[0].strip()):
                if not entry:
                    continue
                try:
                    Pubkey.from_string(entry)
                except ValueError:
                    problems.append(f"{source} line {line_no}: {entry[:60]!r} is not a base58 32-byte public key")
                    continue
                wallets.add(entry)
    return sorted(wallets), problems


def rank_pool(candidates: Sequence[str], trades: Iterable[RealizedTrade], *, normalization: Normalization,
              window_days: int, ends_at_latest_trade: bool, now: float) -> PoolRanking:
    """Score every candidate from its realized trades (trades of other wallets are ignored).

    With ``ends_at_latest_trade`` the window ends at the newest trade of the pool (at ``now`` when the
    pool has none); otherwise at ``now``. Trades after the window's end are not counted."""
    wallets = tuple(dict.fromkeys(candidates))
    index = {w: i for i, w in enumerate(wallets)}
    rows = [t for t in trades if t.wallet in index]
    history = TradeHistory(
        wallets=wallets,
        wallet_index=np.fromiter((index[t.wallet] for t in rows), dtype=np.int64, count=len(rows)),
        timestamp=np.fromiter((t.timestamp for t in rows), dtype=np.float64, count=len(rows)),
        profit_usd=np.fromiter((float(t.profit_usd) for t in rows), dtype=np.float64, count=len(rows)),
        volume_usd=np.fromiter((float(t.volume_usd) for t in rows), dtype=np.float64, count=len(rows)),
    )
    return rank_history(history, normalization=normalization, window_days=window_days,
                        ends_at_latest_trade=ends_at_latest_trade, now=now)


def rank_history(history: TradeHistory, *, normalization: Normalization, window_days: int,
                 ends_at_latest_trade: bool, now: float) -> PoolRanking:
    """:func:`rank_pool` of realized trades already in the Trust Score's columns (``history.wallets``
    are the candidates)."""
    end = float(now)
    if ends_at_latest_trade and history.timestamp.size:
        end = float(history.timestamp.max())
    board: ScoreBoard = score_history(history, normalization, as_of=end, window_days=window_days)
    return PoolRanking(ranked=board.ranked(), normalization=normalization,
                       window_start=end - window_days * SECONDS_PER_DAY, window_end=end)


__all__ = ["PoolRanking", "candidates_from_lists", "rank_history", "rank_pool"]
