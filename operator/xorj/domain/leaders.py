"""Simulated lead traders for the local market (``xorj dev leaders``): what each does next. Pure, no I/O.

The simulation runs in ticks. In each tick:

1. every leader decides from ``(seed, tick, market)`` whether to open a round trip and how much USDC to
   put in (:func:`decide`);
2. the leaders that decided buy the SOL-like token with that USDC;
3. the rest of the market moves the price by :func:`market_move_bps` (the "other traders");
4. the leaders sell exactly what they bought back to USDC.

Skill is modelled as an edge: before buying, a leader *reads* the coming move; with probability
``edge`` the reading is right, otherwise it is a fresh random draw from the same distribution. It buys
when its reading is at least ``min_expected_bps`` (enough to cover the pool's fee both ways), with
probability ``activity``. The three styles differ only in these numbers:

* STEADY: a good read (0.85), trades most ticks it expects a gain, small sizes: many small,
  consistent wins.
* CAREFUL: trades rarely (activity 0.2) and small, with a middling read: few trades; too few, over a
  short history, for the Trust Score's 50-trade rule.
* RECKLESS: no read at all (edge 0), buys every other tick whatever it expects, and sizes of 0.5-3 %
  of the pool: its own price impact costs it on every round trip, and a bad tick costs a lot
  (volatile, deep drawdowns).

Everything is a function of the seed, so a run can be replayed; the chain, not this module, says what
the trades actually earned.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from xorj.errors import InvalidInputError

BPS = 10_000
MARKET_MOVE_BPS = 250  # the rest of the market moves the price uniformly within +/- this per tick
USDC_UNITS = 10**6


class LeaderStyle(str, enum.Enum):
    STEADY = "steady"
    CAREFUL = "careful"
    RECKLESS = "reckless"


@dataclass(frozen=True, slots=True)
class LeaderProfile:
    style: LeaderStyle
    description: str
    activity: float  # probability of acting on a tick when its reading allows
    edge: float  # probability its reading of the next move is right
    min_expected_bps: int  # the move it must expect before buying; -BPS: buys whatever it expects
    min_usd: int  # round-trip size, whole USDC, drawn uniformly in min..max
    max_usd: int

    def __post_init__(self) -> None:
        for name in ("activity", "edge"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"field '{name}' of leader {self.style.value} must be within 0..1, got {value}")
        if not 0 < self.min_usd <= self.max_usd:
            raise InvalidInputError(f"leader {self.style.value}: sizes must satisfy 0 < min_usd <= max_usd, "
                                    f"got {self.min_usd}..{self.max_usd}")


PROFILES: dict[LeaderStyle, LeaderProfile] = {
    LeaderStyle.STEADY: LeaderProfile(LeaderStyle.STEADY, "small consistent wins: good read, small size, often",
                                      activity=0.95, edge=0.85, min_expected_bps=80, min_usd=500, max_usd=1_500),
    LeaderStyle.CAREFUL: LeaderProfile(LeaderStyle.CAREFUL, "few, small trades: trades rarely, only on a big "
                                       "expected move", activity=0.2, edge=0.6, min_expected_bps=150,
                                       min_usd=50, max_usd=150),
    LeaderStyle.RECKLESS: LeaderProfile(LeaderStyle.RECKLESS, "large, volatile: no read, trades big every other "
                                        "tick, pays its own price impact", activity=0.5, edge=0.0,
                                        min_expected_bps=-BPS, min_usd=50_000, max_usd=300_000),
}


@dataclass(frozen=True, slots=True)
class MarketState:
    tick: int
    price_usd: float  # of the SOL-like token, from the pool
    next_move_bps: int  # what the rest of the market will do after this tick's buys


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """Buy the SOL-like token with ``usdc_in`` (base units) now, sell all of it after the move."""

    style: LeaderStyle
    tick: int
    usdc_in: int
    expected_move_bps: int


def _rng(seed: int, *parts: object) -> random.Random:
    # a string seed is hashed the same way in every process (unlike hash() of a tuple)
    return random.Random("/".join(str(p) for p in (seed, *parts)))


def _check_tick(seed: int, tick: int) -> None:
    if tick < 0:
        raise InvalidInputError(f"field 'tick' must be >= 0, got {tick}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"field 'seed' must be an integer, got {seed!r}")


def market_move_bps(seed: int, tick: int) -> int:
    """The move of the rest of the market after tick ``tick``'s buys (basis points, uniform, mean 0)."""
    _check_tick(seed, tick)
    return _rng(seed, "market", tick).randint(-MARKET_MOVE_BPS, MARKET_MOVE_BPS)


def decide(profile: LeaderProfile, seed: int, market: MarketState) -> RoundTrip | None:
    """What the leader does on this tick: a round trip, or nothing (None)."""
    _check_tick(seed, market.tick)
    rng = _rng(seed, profile.style.value, market.tick)
    reads_right = rng.random() < profile.edge
    guess = rng.randint(-MARKET_MOVE_BPS, MARKET_MOVE_BPS)  # drawn always: the stream stays aligned
    expected = market.next_move_bps if reads_right else guess
    acts = rng.random() < profile.activity
    size_usd = rng.randint(profile.min_usd, profile.max_usd)
    if not acts or expected < profile.min_expected_bps:
        return None
    return RoundTrip(profile.style, market.tick, size_usd * USDC_UNITS, expected)


def tick_times(start: int, end: int, ticks: int) -> list[int]:
    """Block times (unix seconds) of ``ticks`` ticks spread evenly over ``start..end`` inclusive: the
    backdated history phase's clock."""
    if ticks < 1:
        raise InvalidInputError(f"field 'ticks' must be >= 1, got {ticks}")
    if end < start:
        raise InvalidInputError(f"history end {end} is before its start {start}")
    if ticks == 1:
        return [end]
    step = (end - start) / (ticks - 1)
    return [start + round(i * step) for i in range(ticks)]
