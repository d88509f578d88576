"""The simulated leaders' decisions (xorj.domain.leaders): deterministic per seed, and the three styles
behave as documented over many ticks, without any I/O."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xorj.domain.leaders import (
    MARKET_MOVE_BPS,
    PROFILES,
    USDC_UNITS,
    LeaderProfile,
    LeaderStyle,
    MarketState,
    decide,
    market_move_bps,
    tick_times,
)
from xorj.errors import InvalidInputError

TICKS = 2_000
FEE_ROUND_TRIP_BPS = 50  # the local pool's 25 bps each way


def _trips(style: LeaderStyle, seed: int = 7):
    out = []
    for tick in range(TICKS):
        move = market_move_bps(seed, tick)
        trip = decide(PROFILES[style], seed, MarketState(tick, 100.0, move))
        if trip is not None:
            out.append((trip, move))
    return out


def _dollars(trips) -> list[float]:
    return [t.usdc_in / USDC_UNITS * n / 10_000 for (t, _), n in zip(trips, _net_bps(trips), strict=True)]


def _net_bps(trips) -> list[int]:
    """What each round trip earns net of fees if the pool follows the market's move (no impact)."""
    return [move - FEE_ROUND_TRIP_BPS for _, move in trips]


@given(seed=st.integers(min_value=0, max_value=2**32), tick=st.integers(min_value=0, max_value=10**6),
       move=st.integers(min_value=-MARKET_MOVE_BPS, max_value=MARKET_MOVE_BPS),
       style=st.sampled_from(list(LeaderStyle)))
def test_a_decision_is_a_function_of_seed_tick_and_market(seed, tick, move, style) -> None:
    state = MarketState(tick, 100.0, move)
    first = decide(PROFILES[style], seed, state)
    assert first == decide(PROFILES[style], seed, state)
    assert market_move_bps(seed, tick) == market_move_bps(seed, tick)
    assert -MARKET_MOVE_BPS <= market_move_bps(seed, tick) <= MARKET_MOVE_BPS
    if first is not None:
        profile = PROFILES[style]
        assert profile.min_usd * USDC_UNITS <= first.usdc_in <= profile.max_usd * USDC_UNITS
        assert first.expected_move_bps >= profile.min_expected_bps and first.style is style


def test_steady_trades_often_small_and_wins_consistently() -> None:
    trips = _trips(LeaderStyle.STEADY)
    net = _net_bps(trips)
    assert len(trips) > 0.25 * TICKS  # often: at least 50 round trips in 200 ticks
    assert sum(n > 0 for n in net) / len(net) > 0.75
    assert statistics.mean(net) > 30
    assert max(t.usdc_in for t, _ in trips) <= 1_500 * USDC_UNITS


def test_careful_trades_rarely_and_small() -> None:
    trips = _trips(LeaderStyle.CAREFUL)
    assert 0 < len(trips) < 0.1 * TICKS
    assert len(trips) < len(_trips(LeaderStyle.STEADY)) / 4
    assert max(t.usdc_in for t, _ in trips) <= 150 * USDC_UNITS


def test_reckless_trades_large_and_loses_on_average_with_wide_swings() -> None:
    trips = _trips(LeaderStyle.RECKLESS)
    net = _net_bps(trips)
    assert len(trips) > 0.4 * TICKS
    assert min(t.usdc_in for t, _ in trips) >= 50_000 * USDC_UNITS
    assert statistics.mean(net) < 0  # no read: the fee is its expected result
    assert statistics.pstdev(net) > 1.5 * statistics.pstdev(_net_bps(_trips(LeaderStyle.STEADY)))
    assert statistics.pstdev(_dollars(trips)) > 100 * statistics.pstdev(_dollars(_trips(LeaderStyle.STEADY)))
    # a run of its dollars: the worst peak-to-trough is many of its (large) trades deep
    cumulative, peak, worst = 0.0, 0.0, 0.0
    for dollars in _dollars(trips):
        cumulative += dollars
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    assert worst > 100_000


def test_seeds_give_different_markets() -> None:
    assert [market_move_bps(1, t) for t in range(50)] != [market_move_bps(2, t) for t in range(50)]


def test_tick_times_cover_the_window_evenly_and_end_at_its_end() -> None:
    times = tick_times(1_000, 1_000 + 92 * 86_400, 200)
    assert times[0] == 1_000 and times[-1] == 1_000 + 92 * 86_400 and len(times) == 200
    assert all(b > a for a, b in zip(times, times[1:]))
    assert tick_times(5, 9, 1) == [9]


@pytest.mark.parametrize(("call", "field"), [
    (lambda: tick_times(0, 10, 0), "ticks"),
    (lambda: tick_times(10, 0, 3), "before its start"),
    (lambda: market_move_bps(1, -1), "tick"),
    (lambda: decide(PROFILES[LeaderStyle.STEADY], "x", MarketState(0, 1.0, 0)), "seed"),  # type: ignore[arg-type]
    (lambda: LeaderProfile(LeaderStyle.STEADY, "", activity=1.5, edge=0.5, min_expected_bps=0, min_usd=1,
                           max_usd=2), "activity"),
    (lambda: LeaderProfile(LeaderStyle.STEADY, "", activity=0.5, edge=0.5, min_expected_bps=0, min_usd=3,
                           max_usd=2), "min_usd"),
])
def test_bad_input_is_refused_naming_the_field(call, field) -> None:
    with pytest.raises(InvalidInputError, match=field):
        call()
