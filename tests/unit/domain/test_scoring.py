"""Trust Score V1: formulas, eligibility, reference profiles and degenerate input (docs/design.md)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from xorj.domain.scoring import (
    COHORT_RANGE_FLOOR,
    EligibilityStatus,
    Normalization,
    TradeHistory,
    TraderSummaries,
    metrics_from_history,
    metrics_from_summaries,
    score_components,
    score_history,
    score_summaries,
    sharpe_proxy,
)
from xorj.errors import InvalidInputError

DAY = 86_400.0
AS_OF = 1_700_000_000.0  # 2023-11-14T22:13:20Z

E = EligibilityStatus

# docs/design.md's reference profiles: (wallet, trades, roi %, max drawdown %)
REFERENCE = [("Pro", 100, 90.0, 10.0), ("Safe Bet", 200, 20.0, 2.0), ("Gambler", 20, 300.0, 70.0)]


def summaries(rows: list[tuple[str, int, float, float]]) -> TraderSummaries:
    return TraderSummaries(
        wallets=tuple(r[0] for r in rows),
        trades=np.array([r[1] for r in rows], dtype=np.int64),
        roi_pct=np.array([r[2] for r in rows], dtype=np.float64),
        max_drawdown_pct=np.array([r[3] for r in rows], dtype=np.float64),
    )


def history(
    trades: list[tuple[str, float, float, float]], extra_wallets: tuple[str, ...] = ()
) -> TradeHistory:
    """trades: (wallet, unix seconds, profit, volume)."""
    names: dict[str, int] = {}
    for wallet, *_ in trades:
        names.setdefault(wallet, len(names))
    for wallet in extra_wallets:
        names.setdefault(wallet, len(names))
    return TradeHistory(
        wallets=tuple(names),
        wallet_index=np.array([names[t[0]] for t in trades], dtype=np.int64),
        timestamp=np.array([t[1] for t in trades], dtype=np.float64),
        profit_usd=np.array([t[2] for t in trades], dtype=np.float64),
        volume_usd=np.array([t[3] for t in trades], dtype=np.float64),
    )


def steady(wallet: str, n: int, days: float, profit: float = 1.0, volume: float = 100.0, end: float = AS_OF):
    """n trades spread evenly over the `days` before `end`, alternating profit and a smaller loss."""
    times = np.linspace(end - days * DAY, end, n)
    return [(wallet, float(t), profit if i % 2 == 0 else -profit / 2, volume) for i, t in enumerate(times)]


def by_wallet(board) -> dict[str, float]:
    return dict(zip(board.metrics.wallets, board.score.tolist()))


# --- reference profiles ----------------------------------------------------------------------------


def test_reference_profiles_rank_pro_then_safe_bet_then_gambler_in_fixed_normalisation():
    board = score_summaries(summaries(REFERENCE), Normalization.FIXED)
    ranked = board.ranked()
    assert [t.wallet for t in ranked] == ["Pro", "Safe Bet", "Gambler"]
    assert [t.rank for t in ranked] == [1, 2, 3]
    scores = by_wallet(board)
    assert scores["Pro"] > scores["Safe Bet"] > scores["Gambler"]
    # Gambler has 20 trades: ineligible under the trades rule, score 0 with its status.
    assert ranked[2].status is E.INSUFFICIENT_TRADES and ranked[2].score == 0.0


def test_reference_profiles_keep_their_order_on_raw_fixed_scores_even_without_the_trades_rule():
    """Scored as if all three were eligible (Gambler with 50 trades less would still be 20): the
    formula alone, not just eligibility, puts Gambler last."""
    metrics = metrics_from_summaries(summaries(REFERENCE))
    from xorj.domain.scoring import combine, normalize_fixed

    raw = dict(zip(metrics.wallets, combine(*normalize_fixed(metrics)).tolist()))
    assert raw["Pro"] > raw["Safe Bet"] > raw["Gambler"] > 0
    # Hand computation: Sharpe proxies 0.9/sqrt(.1), 0.1/sqrt(.02), 15/sqrt(.7).
    pro = 0.40 * ((0.9 / math.sqrt(0.1) + 2) / 5) + 0.15 * (90 / 500) - 0.45 * 0.10
    safe = 0.40 * ((0.1 / math.sqrt(0.02) + 2) / 5) + 0.15 * (20 / 500) - 0.45 * 0.02
    gambler = 0.40 * 1.0 + 0.15 * (300 / 500) - 0.45 * 0.70
    assert raw["Pro"] == pytest.approx(pro * 100)
    assert raw["Safe Bet"] == pytest.approx(safe * 100)
    assert raw["Gambler"] == pytest.approx(gambler * 100)


def test_reference_profiles_rank_in_cohort_normalisation():
    board = score_summaries(summaries(REFERENCE), Normalization.COHORT)
    ranked = board.ranked()
    assert [t.wallet for t in ranked] == ["Pro", "Safe Bet", "Gambler"]
    scores = by_wallet(board)
    # Cohort = {Pro, Safe Bet}: Pro tops every metric, so 0.40 + 0.15 - 0.45 = 0.10; Safe Bet is the
    # cohort minimum everywhere (0); Gambler is excluded from the cohort and scores 0.
    assert scores == {"Pro": 10.0, "Safe Bet": 0.0, "Gambler": 0.0}
    assert ranked[1].status is E.ELIGIBLE and ranked[2].status is E.INSUFFICIENT_TRADES


def test_reference_profiles_rank_strictly_in_a_wider_cohort():
    others = [("A", 60, 5.0, 30.0), ("B", 150, -10.0, 25.0), ("C", 90, 40.0, 45.0)]
    board = score_summaries(summaries(REFERENCE + others), Normalization.COHORT)
    scores = by_wallet(board)
    assert scores["Pro"] > scores["Safe Bet"] > scores["Gambler"] == 0.0


# --- formulas --------------------------------------------------------------------------------------


def test_fixed_normalisation_clips_each_metric():
    rows = [("hi", 100, 10_000.0, 0.0), ("lo", 100, -10_000.0, 100.0)]
    metrics = metrics_from_summaries(summaries(rows))
    from xorj.domain.scoring import normalize_fixed

    n_s, n_r, n_d = normalize_fixed(metrics)
    assert n_s.tolist() == [1.0, 0.0] and n_r.tolist() == [1.0, 0.0] and n_d.tolist() == [0.0, 1.0]
    assert by_wallet(score_summaries(summaries(rows))) == {"hi": 55.0, "lo": 0.0}


def test_cohort_normalisation_is_min_max_over_eligible_traders_only():
    rows = [("a", 100, 10.0, 10.0), ("b", 100, 30.0, 20.0), ("c", 100, 20.0, 40.0), ("tiny", 5, 999.0, 0.0)]
    metrics = metrics_from_summaries(summaries(rows))
    from xorj.domain.scoring import normalize_cohort

    n_s, n_r, n_d = normalize_cohort(metrics)
    sharpe = metrics.sharpe[:3]
    expected_s = (sharpe - sharpe.min()) / (sharpe.max() - sharpe.min())
    assert n_s[:3] == pytest.approx(expected_s)
    assert n_r[:3] == pytest.approx([0.0, 1.0, 0.5])
    assert n_d[:3] == pytest.approx([0.0, 1 / 3, 1.0])
    assert n_s[3] == n_r[3] == n_d[3] == 0.0  # the ineligible wallet neither scores nor moves the bounds
    board = score_summaries(summaries(rows), Normalization.COHORT)
    raw = (0.40 * n_s + 0.15 * n_r - 0.45 * n_d)[:3]
    assert board.raw_score[:3] == pytest.approx(np.maximum(raw, 0) * 100)
    assert board.score.tolist() == np.round(board.raw_score, 1).tolist()


def test_cohort_range_floor_keeps_a_near_identical_cohort_near_zero():
    rows = [("a", 100, 20.0, 10.0), ("b", 100, 20.0 + 1e-6, 10.0)]
    metrics = metrics_from_summaries(summaries(rows))
    from xorj.domain.scoring import normalize_cohort

    _, n_r, _ = normalize_cohort(metrics)
    assert n_r[1] == pytest.approx(1e-6 / COHORT_RANGE_FLOOR)  # not blown up to 1.0
    assert by_wallet(score_summaries(summaries(rows), "cohort")) == {"a": 0.0, "b": 0.0}


def test_a_lone_eligible_trader_scores_zero_in_cohort_normalisation():
    assert by_wallet(score_summaries(summaries([("solo", 100, 90.0, 10.0)]), "cohort")) == {"solo": 0.0}


def test_unknown_normalisation_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="'normalization' must be one of fixed, cohort"):
        score_summaries(summaries(REFERENCE), "zscore")


# --- summary input: eligibility and degenerate values ----------------------------------------------


def test_summary_eligibility_uses_the_trades_rule_only():
    rows = [("none", 0, 0.0, 0.0), ("few", 49, 50.0, 5.0), ("enough", 50, 50.0, 5.0)]
    metrics = metrics_from_summaries(summaries(rows))
    assert metrics.statuses == [E.NO_DATA, E.INSUFFICIENT_TRADES, E.ELIGIBLE]
    ranked = score_summaries(summaries(rows)).ranked()
    none = next(t for t in ranked if t.wallet == "none")
    assert (none.sharpe, none.roi_pct, none.max_drawdown_pct, none.score) == (None, None, None, 0.0)


def test_sharpe_proxy_formula_and_zero_drawdown_floor():
    proxy = sharpe_proxy(
        np.array([100, 100, 100, 0]), np.array([90.0, 90.0, 90.0, 5.0]), np.array([10.0, 0.0, 0.5, 3.0])
    )
    assert proxy[0] == pytest.approx(0.9 / math.sqrt(0.10))
    # Drawdowns below 1 % are floored at 1 % inside the proxy: no division by zero, no cliff.
    assert proxy[1] == proxy[2] == pytest.approx(0.9 / math.sqrt(0.01))
    assert math.isnan(proxy[3])  # no trades: undefined, reported as null, never scored


def test_zero_drawdown_scores_like_a_tiny_drawdown():
    zero = score_summaries(summaries([("z", 100, 30.0, 0.0)])).raw_score[0]
    tiny = score_summaries(summaries([("z", 100, 30.0, 1e-9)])).raw_score[0]
    assert abs(zero - tiny) < 1e-6


def test_negative_roi_scores_at_least_zero_and_below_a_positive_one():
    board = score_summaries(summaries([("loss", 100, -40.0, 20.0), ("win", 100, 40.0, 20.0)]))
    scores = by_wallet(board)
    assert scores["loss"] == 0.0 < scores["win"]
    assert board.metrics.sharpe[0] < 0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", -1, 1.0, 1.0)], "wallet 1: field 'trades' must be between 0 and 1e+09, got -1"),
        ([("a", 10, 2e9, 1.0)], "field 'roi_pct' must be between -1e+09 and 1e+09"),
        ([("a", 10, float("nan"), 1.0)], "field 'roi_pct' must be a finite number"),
        ([("a", 10, 1.0, float("inf"))], "field 'max_drawdown_pct' must be a finite number"),
        ([("a", 10, 1.0, 100.5)], "field 'max_drawdown_pct' must be between 0 and 100"),
        ([("a", 10, 1.0, -0.5)], "field 'max_drawdown_pct' must be between 0 and 100"),
        ([("a", 10, 1.0, 1.0), ("a", 10, 1.0, 1.0)], "'a' appears twice"),
        ([("", 10, 1.0, 1.0)], "field 'wallet' must be a non-empty string"),
    ],
)
def test_bad_summary_values_raise_invalid_input_naming_the_field(rows, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        summaries(rows)


# --- trade history: metrics ------------------------------------------------------------------------


def test_history_metrics_by_hand():
    profits = [10.0, -5.0, 20.0, -30.0, 15.0]
    trades = [("w", AS_OF - (5 - i) * 3600, p, 100.0) for i, p in enumerate(profits)]
    m = metrics_from_history(history(trades), as_of=AS_OF)
    assert m.trades.tolist() == [5]
    assert m.roi_pct[0] == pytest.approx(100 * 10 / 500)
    assert m.sharpe[0] == pytest.approx(np.mean(profits) / np.std(profits))
    # cumulative 10, 5, 25, -5, 10; peak 25, trough -5; the peak (25) is below one mean trade (100),
    # so the drawdown is measured against 100: 30 / 100.
    assert m.max_drawdown_pct[0] == pytest.approx(30.0)


def test_drawdown_is_peak_to_trough_over_the_peak_when_the_peak_exceeds_a_trade():
    profits = [10.0, -4.0, 20.0, -6.0, 1.0]  # cumulative 10, 6, 26, 20, 21 with trades of volume 1
    trades = [("w", AS_OF - (5 - i) * 3600, p, 1.0) for i, p in enumerate(profits)]
    m = metrics_from_history(history(trades), as_of=AS_OF)
    assert m.max_drawdown_pct[0] == pytest.approx(40.0)  # (10 - 6) / 10 beats (26 - 20) / 26


def test_drawdown_is_capped_at_100_percent_and_a_first_loss_is_no_cliff():
    wiped = [("w", AS_OF - 2 * 3600, 1.0, 1.0), ("w", AS_OF - 3600, -50.0, 1.0)]
    assert metrics_from_history(history(wiped), as_of=AS_OF).max_drawdown_pct[0] == 100.0
    # A first trade losing one cent on $1,000 trades is a 0.001 % drawdown, not 100 %.
    cent = [("w", AS_OF - 2 * 3600, -0.01, 1000.0), ("w", AS_OF - 3600, 50.0, 1000.0)]
    assert metrics_from_history(history(cent), as_of=AS_OF).max_drawdown_pct[0] == pytest.approx(0.001)


def test_zero_variance_gives_a_finite_sharpe_from_the_stdev_floor():
    trades = [("w", AS_OF - i * 3600, 2.0, 100.0) for i in range(10)]
    m = metrics_from_history(history(trades), as_of=AS_OF)
    assert m.sharpe[0] == pytest.approx(2.0 / (1e-4 * 100.0))
    flat = [("w", AS_OF - i * 3600, 0.0, 100.0) for i in range(10)]
    assert metrics_from_history(history(flat), as_of=AS_OF).sharpe[0] == 0.0


def test_all_losses_give_negative_metrics_and_score_zero():
    trades = steady("w", 80, 120, profit=-3.0)
    board = score_history(history(trades), as_of=AS_OF)
    m = board.metrics
    assert m.statuses == [E.ELIGIBLE]
    assert m.roi_pct[0] < 0 and m.sharpe[0] < 0 and m.max_drawdown_pct[0] > 0
    assert board.score.tolist() == [0.0]


def test_window_is_the_90_days_ending_at_as_of_and_later_trades_are_ignored():
    trades = [
        ("w", AS_OF - 90 * DAY, 1000.0, 10_000.0),  # exactly 90 days before: outside (window is half-open)
        ("w", AS_OF - 90 * DAY + 1, 1.0, 100.0),
        ("w", AS_OF, 2.0, 100.0),  # at as_of: inside
        ("w", AS_OF + 1, 5000.0, 10_000.0),  # after as_of: ignored
    ]
    m = metrics_from_history(history(trades), as_of=AS_OF)
    assert m.trades.tolist() == [2]
    assert m.roi_pct[0] == pytest.approx(100 * 3 / 200)


def test_as_of_defaults_to_the_latest_timestamp_in_the_data():
    trades = steady("a", 60, 100, end=AS_OF) + [("b", AS_OF + 50 * DAY, 1.0, 100.0)]
    m = metrics_from_history(history(trades))
    # Measured up to b's trade: most of a's trades fall out of the window.
    assert m.trades[0] < 60
    assert m.statuses[0] is E.INSUFFICIENT_TRADES


# --- trade history: eligibility --------------------------------------------------------------------


def test_history_eligibility_statuses():
    trades = (
        steady("eligible", 60, 100)
        + steady("young", 60, 30)  # 60 trades but only 30 days of history
        + steady("few", 40, 100)  # 100 days of history, 40 trades
        + steady("old_only", 60, 30, end=AS_OF - 100 * DAY)  # history, but nothing in the window
        + steady("future_only", 60, 30, end=AS_OF + 40 * DAY)  # nothing at or before as_of
        + steady("young_and_few", 10, 30)  # both: the history rule wins
    )
    statuses = dict(zip(*_statuses(history(trades, extra_wallets=("listed_only",)))))
    assert statuses == {
        "eligible": E.ELIGIBLE,
        "young": E.INSUFFICIENT_HISTORY,
        "few": E.INSUFFICIENT_TRADES,
        "old_only": E.NO_DATA,
        "future_only": E.NO_DATA,
        "young_and_few": E.INSUFFICIENT_HISTORY,
        "listed_only": E.NO_DATA,
    }


def _statuses(h: TradeHistory):
    m = metrics_from_history(h, as_of=AS_OF)
    return m.wallets, m.statuses


def test_history_of_exactly_90_days_and_50_trades_is_eligible():
    trades = steady("w", 50, 90)
    # the first trade sits exactly 90 days before as_of: outside the window but counts as history,
    # so add one more inside the window to keep 50 trades in it.
    trades.append(("w", AS_OF - DAY, 1.0, 100.0))
    assert _statuses(history(trades))[1] == [E.ELIGIBLE]


def test_extreme_roi_spike_is_judged_per_utc_day_not_per_trade():
    day0 = math.floor((AS_OF - 10 * DAY) / DAY) * DAY  # a UTC midnight inside the window
    # Keep the days around day0 free of other trades so each case's day holds only what it adds.
    base = [t for t in steady("w", 70, 100) if not day0 - DAY <= t[1] < day0 + 2 * DAY]
    spike = base + [("w", day0 + 3600, 60.0, 100.0)]  # day ratio 0.6
    diluted = base + [("w", day0 + 3600, 60.0, 100.0), ("w", day0 + 7200, 0.0, 1000.0)]  # 60/1100
    exactly_half = base + [("w", day0 + 3600, 50.0, 100.0)]  # 0.5 is allowed (rule is > 0.5)
    loss_spike = base + [("w", day0 + 3600, -70.0, 100.0)]  # |-0.7|
    # 0.4 on each side of midnight: two days of 0.4, not one day of 0.8.
    split = base + [("w", day0 - 60, 40.0, 100.0), ("w", day0 + 60, 40.0, 100.0)]
    assert _statuses(history(spike))[1] == [E.EXTREME_ROI_SPIKE]
    assert _statuses(history(diluted))[1] == [E.ELIGIBLE]
    assert _statuses(history(exactly_half))[1] == [E.ELIGIBLE]
    assert _statuses(history(loss_spike))[1] == [E.EXTREME_ROI_SPIKE]
    assert _statuses(history(split))[1] == [E.ELIGIBLE]


def test_spike_outside_the_window_does_not_count():
    trades = steady("w", 60, 100) + [("w", AS_OF - 95 * DAY, 90.0, 100.0)]
    assert _statuses(history(trades))[1] == [E.ELIGIBLE]


def test_ineligible_traders_score_zero_but_keep_their_metrics():
    trades = steady("good", 60, 100) + steady("few", 30, 100)
    ranked = score_history(history(trades), as_of=AS_OF).ranked()
    few = next(t for t in ranked if t.wallet == "few")
    assert few.score == 0.0 and few.status is E.INSUFFICIENT_TRADES
    assert few.trades == 27  # the 27 of its 30 trades inside the 90-day window
    assert few.sharpe is not None and few.roi_pct is not None and few.max_drawdown_pct is not None


def test_a_steadier_trader_outranks_a_volatile_one_with_the_same_roi():
    rng = np.random.default_rng(7)
    times = np.linspace(AS_OF - 100 * DAY, AS_OF, 120)
    steady_profit = 2.0 + rng.normal(0, 1.0, times.size)
    volatile_profit = 2.0 + rng.normal(0, 10.0, times.size)
    volatile_profit += steady_profit.sum() / times.size - volatile_profit.mean()  # same total profit
    trades = [("steady", float(t), float(p), 100.0) for t, p in zip(times, steady_profit)]
    trades += [("volatile", float(t), float(p), 100.0) for t, p in zip(times, volatile_profit)]
    for normalization in Normalization:
        ranked = score_history(history(trades), normalization, as_of=AS_OF).ranked()
        assert [t.wallet for t in ranked] == ["steady", "volatile"]


def test_empty_history_has_no_traders():
    board = score_history(history([]))
    assert board.ranked() == []


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        ("volume_usd", [100.0, 0.0], "trade 2: field 'volume_usd' must be between 1e-06 and 1e+15, got 0"),
        ("volume_usd", [100.0, -5.0], "trade 2: field 'volume_usd' must be between 1e-06 and 1e+15"),
        ("volume_usd", [2e15, 1.0], "trade 1: field 'volume_usd' must be between 1e-06 and 1e+15"),
        ("profit_usd", [1.0, -2e15], "trade 2: field 'profit_usd' must be between -1e+15 and 1e+15"),
        (
            "timestamp",
            [-1.0, AS_OF],
            "trade 1: field 'timestamp' must be a time between 1970-01-01 and 9999-12-31",
        ),
        ("profit_usd", [float("nan"), 1.0], "trade 1: field 'profit_usd' must be a finite number"),
        ("timestamp", [AS_OF, float("inf")], "trade 2: field 'timestamp' must be a finite number"),
    ],
)
def test_bad_history_values_raise_invalid_input_naming_the_field(field, values, message):
    columns = {
        "wallet_index": np.array([0, 0]),
        "timestamp": np.array([AS_OF, AS_OF]),
        "profit_usd": np.array([1.0, 1.0]),
        "volume_usd": np.array([100.0, 100.0]),
    }
    columns[field] = np.array(values)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        TradeHistory(wallets=("w",), **columns)


def test_history_rejects_mismatched_columns_and_unknown_wallet_numbers():
    with pytest.raises(InvalidInputError, match="field 'profit_usd' has 1 values, expected 2"):
        TradeHistory(("w",), np.array([0, 0]), np.array([1.0, 2.0]), np.array([1.0]), np.array([1.0, 1.0]))
    with pytest.raises(InvalidInputError, match="field 'wallet_index' must be in 0..0, got 3"):
        TradeHistory(("w",), np.array([3]), np.array([1.0]), np.array([1.0]), np.array([1.0]))
    with pytest.raises(InvalidInputError, match="field 'as_of' must be a finite time"):
        metrics_from_history(history(steady("w", 3, 3)), as_of=float("nan"))


# --- ranking ---------------------------------------------------------------------------------------


def test_ties_rank_eligible_first_then_by_wallet():
    rows = [
        ("zeta", 100, 20.0, 2.0),
        ("alpha", 100, 20.0, 2.0),
        ("beta", 10, 20.0, 2.0),
        ("aaa", 0, 0.0, 0.0),
    ]
    ranked = score_summaries(summaries(rows)).ranked()
    assert [t.wallet for t in ranked] == ["alpha", "zeta", "aaa", "beta"]
    assert [t.rank for t in ranked] == [1, 2, 3, 4]


def test_hand_built_metrics_with_an_undefined_metric_for_an_eligible_trader_are_refused():
    from xorj.domain.scoring import TraderMetrics, score_metrics

    metrics = TraderMetrics(
        wallets=("w",),
        trades=np.array([60]),
        sharpe=np.array([np.nan]),
        roi_pct=np.array([1.0]),
        max_drawdown_pct=np.array([1.0]),
        status_code=np.array([0], dtype=np.int8),  # ELIGIBLE
    )
    with pytest.raises(InvalidInputError, match="wallet 'w': field 'sharpe' must be finite"):
        score_metrics(metrics)


def test_cohort_of_the_three_profiles_alone_would_put_gambler_first_were_it_eligible():
    """Documents a property of min-max (see the module docstring): the trader on top of every metric
    scores 0.40 + 0.15 - 0.45 = 0.10. Only the trades rule keeps Gambler out of the reference cohort."""
    from dataclasses import replace

    from xorj.domain.scoring import score_metrics

    metrics = metrics_from_summaries(summaries(REFERENCE))
    everyone = replace(metrics, status_code=np.zeros(3, dtype=np.int8))  # all ELIGIBLE
    scores = by_wallet(score_metrics(everyone, Normalization.COHORT))
    assert scores["Gambler"] == 10.0
    assert scores["Gambler"] > scores["Pro"] > scores["Safe Bet"] == 0.0
    fixed = by_wallet(score_metrics(everyone, Normalization.FIXED))
    assert fixed["Pro"] > fixed["Safe Bet"] > fixed["Gambler"]  # the fixed scales keep the reference order


# --- the three components (what `xorj score --plot` draws) -------------------------------------------


@pytest.mark.parametrize("normalization", ["fixed", "cohort"])
def test_components_sum_to_the_raw_score_and_are_zero_when_ineligible(normalization):
    rows = REFERENCE + [("Steady", 140, 35.0, 8.0), ("Loser", 60, -25.0, 55.0), ("Fresh", 0, 0.0, 0.0)]
    board = score_summaries(summaries(rows), normalization)
    sharpe, roi, drawdown = score_components(board)
    assert np.allclose(np.clip(sharpe + roi + drawdown, 0.0, 100.0), board.raw_score)
    assert (sharpe >= 0).all() and (roi >= 0).all() and (drawdown <= 0).all()
    ineligible = ~board.metrics.eligible
    assert ineligible.sum() == 2  # Gambler (20 trades) and Fresh (none)
    assert not sharpe[ineligible].any() and not roi[ineligible].any() and not drawdown[ineligible].any()


def test_components_of_pro_in_fixed_normalisation_by_hand():
    board = score_summaries(summaries(REFERENCE), "fixed")
    sharpe, roi, drawdown = (values[0] for values in score_components(board))  # Pro
    proxy = (90.0 / 100) / math.sqrt(10.0 / 100)
    assert sharpe == pytest.approx(0.40 * min(1.0, (proxy + 2) / 5) * 100)
    assert roi == pytest.approx(0.15 * (90.0 / 500) * 100)
    assert drawdown == pytest.approx(-0.45 * 0.10 * 100)
