"""Ranking a TraderPool from stored swaps (pure)."""

from __future__ import annotations

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, VAULT
from tests.unit.controller.histories import DAY, losing, reckless, round_trips, steady
from xorj.domain.scoring import EligibilityStatus, Normalization
from xorj.domain.trader_pool import candidates_from_lists, rank_pool
from xorj.traders.backfill import realized

NOW = 1_790_000_000


def _trades(*histories):
    return realized([s for h in histories for s in h])


def test_steady_trader_ranks_first_and_counts_add_up() -> None:
    trades = _trades(round_trips(PUBKEY_A, steady(), first=NOW - 119 * DAY, last=NOW - DAY),
                     round_trips(PUBKEY_B, reckless(), first=NOW - 119 * DAY, last=NOW - DAY),
                     round_trips(VAULT, losing(), first=NOW - 119 * DAY, last=NOW - DAY),
                     round_trips(PUBKEY_C, steady(10), first=NOW - 119 * DAY, last=NOW - DAY))
    outsider = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    trades += _trades(round_trips(outsider, steady(), first=NOW - 119 * DAY, last=NOW - DAY))
    nobody = "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R"
    ranking = rank_pool([PUBKEY_A, PUBKEY_B, VAULT, PUBKEY_C, nobody], trades, normalization=Normalization.FIXED,
                        window_days=90, ends_at_latest_trade=False, now=NOW)
    by_wallet = {s.wallet: s for s in ranking.ranked}
    assert ranking.ranked[0].wallet == PUBKEY_A
    assert by_wallet[PUBKEY_A].status is EligibilityStatus.ELIGIBLE
    assert by_wallet[PUBKEY_A].score > by_wallet[PUBKEY_B].score >= by_wallet[VAULT].score
    assert by_wallet[PUBKEY_C].status is EligibilityStatus.INSUFFICIENT_TRADES
    assert by_wallet[nobody].status is EligibilityStatus.NO_DATA
    assert outsider not in by_wallet  # trades of wallets outside the pool are ignored
    assert (ranking.eligible, ranking.ineligible) == (3, 2)
    assert ranking.window_end - ranking.window_start == 90 * DAY


def test_window_end_now_or_latest_trade() -> None:
    old = _trades(round_trips(PUBKEY_A, steady(), first=NOW - 400 * DAY, last=NOW - 281 * DAY))
    now_ranked = rank_pool([PUBKEY_A], old, normalization=Normalization.FIXED, window_days=90,
                           ends_at_latest_trade=False, now=NOW)
    assert now_ranked.ranked[0].status is EligibilityStatus.NO_DATA  # went quiet: aged out
    latest = rank_pool([PUBKEY_A], old, normalization=Normalization.FIXED, window_days=90,
                       ends_at_latest_trade=True, now=NOW)
    assert latest.ranked[0].status is EligibilityStatus.ELIGIBLE
    assert latest.window_end < NOW - 280 * DAY
    short = rank_pool([PUBKEY_A], old, normalization=Normalization.FIXED, window_days=30,
                      ends_at_latest_trade=True, now=NOW)
    assert short.ranked[0].trades < latest.ranked[0].trades  # a shorter window counts fewer trades


def test_candidates_from_configmap_lists() -> None:
    wallets, problems = candidates_from_lists({
        "cm-a": f"{PUBKEY_A}\n{PUBKEY_B}, {PUBKEY_A}  # the steady one\n\n",
        "cm-b": f"{VAULT} not-a-key {'1' * 44}",
    })
    assert wallets == sorted({PUBKEY_A, PUBKEY_B, VAULT})
    assert len(problems) == 2
    assert "cm-b line 1: 'not-a-key' is not a base58 32-byte public key" in problems[0]
