"""Realized trades kept between rescorings (real Postgres): the kept histories rank a pool exactly as
realizing every stored swap again does; a rescoring with nothing new realizes nothing; a wallet that
recorded new swaps (its cursor moved, or rows added without moving it) is read again; a wallet without a
cursor is read every time."""

from __future__ import annotations

import time

import numpy as np
import pytest
from solders.keypair import Keypair

from tests.unit.controller.histories import DAY, reckless, round_trips, steady
from xorj.domain.scoring import Normalization
from xorj.domain.trader_pool import rank_history, rank_pool
from xorj.ledger.trader_swaps import TraderCursor, TraderSwapStore
from xorj.traders.backfill import realized
from xorj.traders.realized import RealizedHistories

pytestmark = [pytest.mark.postgres]

NOW = int(time.time())


def _wallet() -> str:
    return str(Keypair().pubkey())


def _record(store: TraderSwapStore, wallet: str, swaps: list, *, with_cursor: bool = True) -> None:
    newest = swaps[-1].swap
    store.record(wallet, swaps, TraderCursor(wallet, newest.signature, newest.slot) if with_cursor else None)


def _ranking(history) -> list[tuple[str, float, str]]:
    ranking = rank_history(history, normalization=Normalization.FIXED, window_days=90, ends_at_latest_trade=True,
                           now=NOW)
    return [(s.wallet, s.score, s.status.value) for s in ranking.ranked]


def test_kept_histories_rank_as_realizing_everything_again_and_only_changed_wallets_are_read(ledger) -> None:
    store = TraderSwapStore(ledger)
    a, b, c, no_cursor, nothing = (_wallet() for _ in range(5))
    _record(store, a, round_trips(a, steady(), first=NOW - 119 * DAY, last=NOW - 2 * DAY))
    _record(store, b, round_trips(b, reckless(), first=NOW - 119 * DAY, last=NOW - 2 * DAY))
    _record(store, c, round_trips(c, steady(10), first=NOW - 20 * DAY, last=NOW - 2 * DAY))
    _record(store, no_cursor, round_trips(no_cursor, steady(60), first=NOW - 100 * DAY, last=NOW - DAY),
            with_cursor=False)
    candidates = [a, b, c, no_cursor, nothing]
    histories = RealizedHistories()

    def everything_again() -> list[tuple[str, float, str]]:
        stored = store.swaps_of(candidates)
        trades = realized([s for w in candidates for s in stored[w]])
        ranking = rank_pool(candidates, trades, normalization=Normalization.FIXED, window_days=90,
                            ends_at_latest_trade=True, now=NOW)
        return [(s.wallet, s.score, s.status.value) for s in ranking.ranked]

    first = histories.history(store, candidates)
    assert histories.realized_last == 5  # nothing kept yet (the wallet with nothing stored is read too)
    assert _ranking(first) == everything_again()
    assert first.wallet_index.size == len(realized([s for w in candidates for s in store.swaps(w)]))

    again = histories.history(store, candidates)
    assert histories.realized_last == 2  # only the wallets without a cursor: nothing else changed
    assert np.array_equal(again.profit_usd, first.profit_usd) and _ranking(again) == _ranking(first)

    # c records a longer history (its cursor moves); b records older rows without moving its cursor
    _record(store, c, round_trips(c, [0.04] * 80, first=NOW - 119 * DAY, last=NOW - 21 * DAY))
    store.record(b, round_trips(b, [0.5], first=NOW - 118 * DAY, last=NOW - 118 * DAY), None)
    after = histories.history(store, candidates)
    assert histories.realized_last == 4  # b, c and the two without a cursor
    assert _ranking(after) == everything_again() != _ranking(first)


def test_the_history_watermark_moves_with_any_recorded_swap_and_only_then(ledger) -> None:
    store = TraderSwapStore(ledger)
    a, b = _wallet(), _wallet()
    assert store.history_watermark([a, b]) is None
    _record(store, a, round_trips(a, steady(5), first=NOW - 10 * DAY, last=NOW - DAY))
    marks = [store.history_watermark([a, b])]
    _record(store, a, round_trips(a, steady(5), first=NOW - 10 * DAY, last=NOW - DAY))  # the same rows again
    marks.append(store.history_watermark([a, b]))
    assert marks[1] == marks[0]
    _record(store, b, round_trips(b, steady(5), first=NOW - 10 * DAY, last=NOW - DAY))
    marks.append(store.history_watermark([a, b]))
    store.record(a, round_trips(a, [0.1], first=NOW - 30 * DAY, last=NOW - 30 * DAY), None)  # older, cursor kept
    marks.append(store.history_watermark([a, b]))
    assert len(set(marks[1:])) == 3
    assert store.cursor(a).signature == round_trips(a, steady(5), first=NOW - 10 * DAY, last=NOW - DAY)[-1].swap.signature
