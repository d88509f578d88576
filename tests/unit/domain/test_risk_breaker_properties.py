"""The circuit breaker under random event sequences.

Checked against a deliberately naive reference (re-scanning the history at every failure) and against
structural properties that hold whatever the implementation.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from xorj.domain.risk import BreakerEvent, BreakerState, CircuitBreaker

T0 = datetime(2026, 5, 1, tzinfo=UTC)

breakers = st.builds(
    CircuitBreaker,
    failures_in_window=st.integers(min_value=1, max_value=7),
    window=st.integers(min_value=1, max_value=15).map(lambda m: timedelta(minutes=m)),
    failures_in_a_row=st.integers(min_value=1, max_value=5),
    open_for=st.integers(min_value=1, max_value=40).map(lambda m: timedelta(minutes=m)),
)
# Whole minutes, so repeats (several outcomes in one minute) and exact window boundaries both occur.
histories = st.lists(
    st.tuples(st.integers(min_value=0, max_value=90), st.booleans()), max_size=40
).map(lambda pairs: [BreakerEvent(T0 + timedelta(minutes=m), ok) for m, ok in pairs])
nows = st.integers(min_value=0, max_value=120).map(lambda m: T0 + timedelta(minutes=m))


def reference(breaker: CircuitBreaker, events: list[BreakerEvent], now: datetime) -> tuple[BreakerState, datetime | None]:
    seen = sorted((e for e in events if e.at <= now), key=lambda e: e.at)
    state, opened, counted_from = "closed", None, 0
    for i, event in enumerate(seen):
        if state == "open":
            assert opened is not None
            if event.at < opened + breaker.open_for:
                continue
            state = "half"
        if state == "half":
            if event.success:
                state, counted_from = "closed", i + 1
            else:
                state, opened, counted_from = "open", event.at, i + 1
            continue
        if event.success:
            continue
        counted = seen[counted_from : i + 1]
        row = 0
        for e in reversed(counted):
            if e.success:
                break
            row += 1
        in_window = sum(1 for e in counted if not e.success and e.at > event.at - breaker.window)
        if row >= breaker.failures_in_a_row or in_window >= breaker.failures_in_window:
            state, opened, counted_from = "open", event.at, i + 1
    if state == "open":
        assert opened is not None
        state = "open" if now < opened + breaker.open_for else "half"
    return {"closed": BreakerState.CLOSED, "open": BreakerState.OPEN, "half": BreakerState.HALF_OPEN}[state], opened


@settings(max_examples=1000, deadline=None)
@given(breaker=breakers, events=histories, now=nows)
def test_breaker_agrees_with_the_naive_reference(breaker: CircuitBreaker, events: list[BreakerEvent], now: datetime) -> None:
    status = breaker.status(events, now)
    state, opened = reference(breaker, events, now)
    assert status.state is state
    if state is not BreakerState.CLOSED:
        assert status.opened_at == opened


@settings(max_examples=500, deadline=None)
@given(breaker=breakers, events=histories, now=nows)
def test_breaker_structural_properties(breaker: CircuitBreaker, events: list[BreakerEvent], now: datetime) -> None:
    status = breaker.status(events, now)
    failure_times = {e.at for e in events if not e.success and e.at <= now}
    if not failure_times:
        assert status.state is BreakerState.CLOSED  # only failures open it
    if status.state is BreakerState.OPEN:
        assert status.opened_at in failure_times  # opened by a failure that was seen
        assert status.opened_at is not None and status.reopens_at == status.opened_at + breaker.open_for
        assert status.opened_at <= now < status.reopens_at
        assert not status.allows_trades
    else:
        assert status.allows_trades and status.reopens_at is None
    # events after now are not seen
    assert breaker.status([e for e in events if e.at <= now], now) == status
    # the order events arrive in does not matter when their times differ
    by_time = {e.at: e for e in events}
    distinct = list(by_time.values())
    shuffled = distinct[:]
    random.Random(len(distinct)).shuffle(shuffled)
    assert breaker.status(shuffled, now) == breaker.status(distinct, now)


@settings(max_examples=300, deadline=None)
@given(breaker=breakers, events=histories, now=nows)
def test_a_success_now_never_leaves_a_non_open_breaker_open(breaker: CircuitBreaker, events: list[BreakerEvent], now: datetime) -> None:
    latest = max((e.at for e in events), default=now)
    now = max(now, latest)
    before = breaker.status(events, now)
    after = breaker.status([*events, BreakerEvent(now, True)], now)
    if before.state is BreakerState.CLOSED:
        assert after.state is BreakerState.CLOSED
    if before.state is BreakerState.HALF_OPEN:
        assert after.state is BreakerState.CLOSED
    if before.state is BreakerState.OPEN:
        assert after == before


@settings(max_examples=300, deadline=None)
@given(breaker=breakers, events=histories, now=nows)
def test_enough_failures_in_a_row_always_open_a_non_open_breaker(breaker: CircuitBreaker, events: list[BreakerEvent], now: datetime) -> None:
    latest = max((e.at for e in events), default=now)
    now = max(now, latest)
    if breaker.status(events, now).state is BreakerState.OPEN:
        return
    burst = [BreakerEvent(now, False) for _ in range(breaker.failures_in_a_row)]
    assert breaker.status([*events, *burst], now).state is BreakerState.OPEN
