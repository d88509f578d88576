"""Risk limits, kill switches and the circuit breaker (example-based)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from xorj.domain.risk import (
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    DailyUsage,
    KillSwitch,
    RiskLimits,
    RiskRule,
    TradeRisk,
    check_trade,
    daily_usage,
    utc_day_start,
)
from xorj.domain.trades import ReasonCode
from xorj.errors import InvalidInputError

D = Decimal
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = RiskLimits(
    max_trade_notional_usd=D("1000"),
    max_daily_volume_usd=D("5000"),
    max_daily_trades=10,
    max_position_share=D("0.5"),
    max_price_impact=D("0.01"),
)


def small(**overrides: object) -> TradeRisk:
    fields: dict[str, object] = dict(notional_usd=D("100"), vault_value_usd=D("100000"), price_impact=D("0.001"))
    fields.update(overrides)
    return TradeRisk(**fields)  # type: ignore[arg-type]


def test_defaults_match_the_issue() -> None:
    limits = RiskLimits()
    assert limits.max_position_share == D("0.5") and limits.max_price_impact == D("0.01")
    breaker = CircuitBreaker()
    assert (breaker.failures_in_window, breaker.window, breaker.failures_in_a_row, breaker.open_for) == (
        5, timedelta(minutes=10), 3, timedelta(minutes=30))


def test_a_trade_within_every_limit_is_allowed() -> None:
    decision = check_trade(LIMITS, small(), DailyUsage(D("100"), 2))
    assert decision.allowed and decision.rule is None and decision.reason is None


@pytest.mark.parametrize(
    ("trade", "usage", "rule", "message"),
    [
        (small(notional_usd=D("1500")), DailyUsage(), RiskRule.MAX_TRADE_NOTIONAL,
         "max_trade_notional: 1500.00 USD > limit 1000.00 USD"),
        (small(), DailyUsage(D("0"), 10), RiskRule.MAX_DAILY_TRADES, "max_daily_trades: 11 trades today > limit 10"),
        (small(notional_usd=D("600")), DailyUsage(D("4500"), 3), RiskRule.MAX_DAILY_VOLUME,
         "max_daily_volume: 5100.00 USD today (4500.00 USD + 600.00 USD) > limit 5000.00 USD"),
        (small(notional_usd=D("600"), vault_value_usd=D("2000"), output_position_usd=D("500")), DailyUsage(),
         RiskRule.MAX_POSITION_SHARE, "max_position_share: 55.00% of the vault (1100.00 USD of 2000.00 USD) > limit 50.00%"),
        (small(price_impact=D("0.015")), DailyUsage(), RiskRule.MAX_PRICE_IMPACT, "max_price_impact: 1.50% > limit 1.00%"),
        (small(price_impact=D("-0.02")), DailyUsage(), RiskRule.MAX_PRICE_IMPACT, "max_price_impact: 2.00% > limit 1.00%"),
    ],
)
def test_each_limit_refuses_naming_its_rule(trade: TradeRisk, usage: DailyUsage, rule: RiskRule, message: str) -> None:
    decision = check_trade(LIMITS, trade, usage)
    assert not decision.allowed
    assert decision.rule is rule and decision.message == message
    assert decision.reason is ReasonCode.RISK_LIMIT


def test_limits_are_inclusive_at_the_boundary() -> None:
    trade = small(notional_usd=D("1000"), vault_value_usd=D("2000"), output_position_usd=D("0"), price_impact=D("0.01"))
    assert check_trade(LIMITS, trade, DailyUsage(D("4000"), 9)).allowed
    assert not check_trade(LIMITS, small(notional_usd=D("1000.01")), DailyUsage()).allowed


def test_position_share_does_not_apply_to_the_cash_asset() -> None:
    trade = small(notional_usd=D("900"), vault_value_usd=D("1000"), output_position_usd=None)
    assert check_trade(LIMITS, trade).allowed
    empty_vault = small(vault_value_usd=D("0"))
    decision = check_trade(LIMITS, empty_vault)
    assert decision.rule is RiskRule.MAX_POSITION_SHARE and "vault value is 0 USD" in decision.message


def test_kill_switches_and_breaker_come_first() -> None:
    too_big = small(notional_usd=D("5000"))
    assert check_trade(LIMITS, too_big, kill_switch=KillSwitch(global_halt=True)).rule is RiskRule.GLOBAL_KILL_SWITCH
    paused = check_trade(LIMITS, small(), kill_switch=KillSwitch(strategy_paused=True))
    assert paused.rule is RiskRule.STRATEGY_PAUSED and paused.message == "kill_switch.strategy_paused: the strategy is paused"
    events = [BreakerEvent(T0 + timedelta(seconds=i), False) for i in range(3)]
    status = CircuitBreaker().status(events, T0 + timedelta(minutes=1))
    decision = check_trade(LIMITS, small(), breaker=status)
    assert decision.rule is RiskRule.CIRCUIT_BREAKER
    assert "3 failures in a row" in decision.message and "until 2026-03-01T12:30:02+00:00" in decision.message
    half_open = CircuitBreaker().status(events, T0 + timedelta(minutes=31))
    assert check_trade(LIMITS, small(), breaker=half_open).allowed  # the probe trade goes through


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_trade_notional_usd": 1000.0}, "risk.max_trade_notional_usd: must be a Decimal, an int or a decimal string, not float"),
        ({"max_trade_notional_usd": D("0")}, "risk.max_trade_notional_usd: must be positive"),
        ({"max_daily_volume_usd": "abc"}, "risk.max_daily_volume_usd: not a decimal number"),
        ({"max_daily_volume_usd": D("NaN")}, "risk.max_daily_volume_usd: must be a finite number"),
        ({"max_daily_trades": 0}, "risk.max_daily_trades: must be a positive integer"),
        ({"max_position_share": D("1.5")}, "risk.max_position_share: must be a fraction in \\(0, 1\\]"),
        ({"max_price_impact": D("0")}, "risk.max_price_impact: must be a fraction in \\(0, 1\\]"),
    ],
)
def test_bad_limits_name_the_field_and_rule(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        RiskLimits(**fields)  # type: ignore[arg-type]


def test_limits_accept_strings_and_ints_as_in_a_spec() -> None:
    limits = RiskLimits(max_trade_notional_usd="250.50", max_daily_volume_usd=3000)  # type: ignore[arg-type]
    assert limits.max_trade_notional_usd == D("250.50") and limits.max_daily_volume_usd == D(3000)
    with pytest.raises(InvalidInputError, match="trade.notional_usd: must be a Decimal"):
        TradeRisk(notional_usd=0.1, vault_value_usd=D(1))  # type: ignore[arg-type]


def test_daily_usage_counts_the_utc_day_up_to_now() -> None:
    now = datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=5)))  # 20:00 UTC the day before
    assert utc_day_start(now) == datetime(2026, 2, 28, tzinfo=UTC)
    trades = [
        (datetime(2026, 2, 27, 23, 59, 59, tzinfo=UTC), D("1")),  # yesterday
        (datetime(2026, 2, 28, 0, 0, tzinfo=UTC), D("10")),
        (datetime(2026, 2, 28, 19, 59, tzinfo=UTC), D("20.5")),
        (datetime(2026, 2, 28, 20, 1, tzinfo=UTC), D("100")),  # after now
    ]
    assert daily_usage(trades, now) == DailyUsage(D("30.5"), 2)
    with pytest.raises(InvalidInputError, match="now: must be timezone-aware"):
        utc_day_start(datetime(2026, 1, 1))


# --- circuit breaker examples --------------------------------------------------------------------


def events(*spec: tuple[float, bool]) -> list[BreakerEvent]:
    """(minutes after T0, success) pairs."""
    return [BreakerEvent(T0 + timedelta(minutes=m), ok) for m, ok in spec]


def test_three_failures_in_a_row_open_the_breaker_for_thirty_minutes() -> None:
    breaker = CircuitBreaker()
    history = events((0, False), (1, False), (2, False))
    assert breaker.status(history[:2], T0 + timedelta(minutes=3)).state is BreakerState.CLOSED
    status = breaker.status(history, T0 + timedelta(minutes=3))
    assert status.state is BreakerState.OPEN and status.trip == "3 failures in a row"
    assert status.opened_at == T0 + timedelta(minutes=2) and status.reopens_at == T0 + timedelta(minutes=32)
    assert breaker.status(history, T0 + timedelta(minutes=31, seconds=59)).state is BreakerState.OPEN
    assert breaker.status(history, T0 + timedelta(minutes=32)).state is BreakerState.HALF_OPEN


def test_five_failures_in_ten_minutes_open_it_even_with_successes_between() -> None:
    breaker = CircuitBreaker()
    history = events((0, False), (1, True), (2, False), (3, False), (4, True), (5, False), (9, True), (9.5, False))
    status = breaker.status(history, T0 + timedelta(minutes=10))
    assert status.state is BreakerState.OPEN and status.trip == "5 failures within 10 min"


def test_failures_spread_beyond_the_window_do_not_open_it() -> None:
    history = events((0, False), (1, True), (4, False), (5, True), (8, False), (9, True), (11, False), (12, True), (15, False))
    assert CircuitBreaker().status(history, T0 + timedelta(minutes=16)).state is BreakerState.CLOSED


def test_the_window_is_half_open_a_failure_exactly_one_window_old_has_left_it() -> None:
    breaker = CircuitBreaker(failures_in_window=2, window=timedelta(minutes=10), failures_in_a_row=9)
    assert breaker.status(events((0, False), (5, True), (10, False)), T0 + timedelta(minutes=11)).state is BreakerState.CLOSED
    assert breaker.status(events((0, False), (5, True), (9.99, False)), T0 + timedelta(minutes=11)).state is BreakerState.OPEN


def test_half_open_success_closes_and_counting_starts_afresh() -> None:
    breaker = CircuitBreaker()
    history = events((0, False), (1, False), (2, False), (40, True))
    assert breaker.status(history, T0 + timedelta(minutes=41)).state is BreakerState.CLOSED
    # two more failures: a fresh count, not 5 in a row
    more = history + events((41, False), (42, False))
    assert breaker.status(more, T0 + timedelta(minutes=43)).state is BreakerState.CLOSED


def test_half_open_failure_reopens_for_another_period() -> None:
    history = events((0, False), (1, False), (2, False), (40, False))
    status = CircuitBreaker().status(history, T0 + timedelta(minutes=41))
    assert status.state is BreakerState.OPEN and status.opened_at == T0 + timedelta(minutes=40)
    assert status.trip == "failure while half-open"


def test_outcomes_while_open_change_nothing_and_future_events_are_unseen() -> None:
    breaker = CircuitBreaker()
    history = events((0, False), (1, False), (2, False), (5, True), (6, True))
    assert breaker.status(history, T0 + timedelta(minutes=7)).state is BreakerState.OPEN
    future = events((0, False), (1, False), (2, False))
    assert breaker.status(future, T0 + timedelta(minutes=1, seconds=30)).state is BreakerState.CLOSED


def test_events_may_be_plain_pairs_and_unsorted() -> None:
    pairs = [(T0 + timedelta(minutes=2), False), (T0, False), (T0 + timedelta(minutes=1), False)]
    assert CircuitBreaker().status(pairs, T0 + timedelta(minutes=3)).state is BreakerState.OPEN


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"failures_in_window": 0}, "breaker.failures_in_window: must be a positive integer"),
        ({"failures_in_a_row": True}, "breaker.failures_in_a_row: must be a positive integer"),
        ({"window": timedelta(0)}, "breaker.window: must be a positive duration"),
        ({"open_for": 1800}, "breaker.open_for: must be a positive duration"),
    ],
)
def test_bad_breaker_settings_name_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        CircuitBreaker(**fields)  # type: ignore[arg-type]
