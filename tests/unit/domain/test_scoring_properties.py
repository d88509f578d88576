"""Property tests of Trust Score V1 (hypothesis): the vectorised code agrees with a plain per-wallet
reference, scores are always finite and within 0..100, and there is no cliff near the degenerate edges
(zero drawdown, zero variance, a first tiny loss, zero or negative ROI)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xorj.domain.scoring import (
    MAX_DAILY_ABS_ROI,
    MIN_HISTORY_DAYS,
    MIN_TRADES,
    SECONDS_PER_DAY,
    SHARPE_STDEV_FLOOR_OF_MEAN_VOLUME,
    VALUE_LIMITS,
    WINDOW_DAYS,
    EligibilityStatus,
    Normalization,
    ScoreBoard,
    TradeHistory,
    TraderSummaries,
    _segmented_running_max,
    metrics_from_history,
    score_history,
    score_summaries,
)

AS_OF = 1_700_000_000.0
DAY = float(SECONDS_PER_DAY)
E = EligibilityStatus
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- a plain reference implementation, one wallet at a time -----------------------------------------


@dataclass
class Reference:
    status: EligibilityStatus
    trades: int
    sharpe: float
    roi_pct: float
    max_drawdown_pct: float


def reference_metrics(times, profits, volumes, as_of: float) -> Reference:
    known = [(t, p, v) for t, p, v in zip(times, profits, volumes) if t <= as_of]
    window = sorted((x for x in known if x[0] > as_of - WINDOW_DAYS * DAY), key=lambda x: x[0])
    if not window:
        return Reference(E.NO_DATA, 0, math.nan, math.nan, math.nan)
    n = len(window)
    p = [x[1] for x in window]
    v = [x[2] for x in window]
    mean = sum(p) / n
    stdev = math.sqrt(sum((x - mean) ** 2 for x in p) / n)
    mean_volume = sum(v) / n
    sharpe = mean / max(stdev, SHARPE_STDEV_FLOOR_OF_MEAN_VOLUME * mean_volume)
    cumulative = peak = drawdown = 0.0
    for x in p:
        cumulative += x
        peak = max(peak, cumulative)
        drawdown = max(drawdown, (peak - cumulative) / max(peak, mean_volume))
    days: dict[int, list[float]] = {}
    for t, pr, vol in window:
        day = days.setdefault(math.floor(t / DAY), [0.0, 0.0])
        day[0] += pr
        day[1] += vol
    spike = any(abs(pr) > MAX_DAILY_ABS_ROI * vol for pr, vol in days.values())
    history_days = (as_of - min(x[0] for x in known)) / DAY
    if history_days < MIN_HISTORY_DAYS:
        status = E.INSUFFICIENT_HISTORY
    elif n < MIN_TRADES:
        status = E.INSUFFICIENT_TRADES
    elif spike:
        status = E.EXTREME_ROI_SPIKE
    else:
        status = E.ELIGIBLE
    return Reference(status, n, sharpe, 100 * sum(p) / sum(v), 100 * min(drawdown, 1.0))


# --- generators ----------------------------------------------------------------------------------------


@st.composite
def histories(draw, max_wallets: int = 6) -> TradeHistory:
    """Random multi-wallet histories. hypothesis picks the shape (sizes, scales, degenerate modes);
    numpy fills the columns from a drawn seed, so examples stay fast with a hundred trades a wallet."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_wallets = draw(st.integers(1, max_wallets))
    wallet_index, times, profits, volumes = [], [], [], []
    for w in range(n_wallets):
        n = draw(st.sampled_from([0, 1, 2, 49, 50, 51, 80, 120]))
        span_days = draw(st.sampled_from([1.0, 60.0, 89.99, 90.0, 90.01, 150.0, 400.0]))
        mode = draw(st.sampled_from(["noise", "constant", "zero", "losses", "tiny", "spiky", "whole"]))
        volume_scale = draw(st.sampled_from([1e-3, 1.0, 1e3, 1e7]))
        end = AS_OF + draw(st.sampled_from([0.0, -10 * DAY, 5 * DAY, -200 * DAY]))
        # unique whole seconds per wallet: trades at the same instant have no defined order
        offsets = rng.choice(int(span_days * DAY) + 1, size=min(n, int(span_days * DAY) + 1), replace=False)
        t = end - offsets.astype(np.float64)
        vol = volume_scale * rng.uniform(0.1, 10.0, t.size)
        ratio = {
            "noise": rng.normal(0.002, 0.05, t.size),
            "constant": np.full(t.size, 0.01),
            "zero": np.zeros(t.size),
            "losses": -np.abs(rng.normal(0.01, 0.05, t.size)),
            "tiny": rng.normal(0.0, 1e-9, t.size),
            "spiky": rng.normal(0.0, 0.4, t.size),
            "whole": np.round(rng.normal(0.0, 0.1, t.size), 1),
        }[mode]
        wallet_index.append(np.full(t.size, w))
        times.append(t)
        profits.append(np.clip(ratio, -1.0, 1.0) * vol)
        volumes.append(vol)
    order = rng.permutation(sum(a.size for a in times))  # rows arrive in any order
    return TradeHistory(
        wallets=tuple(f"w{i}" for i in range(n_wallets)),
        wallet_index=np.concatenate(wallet_index)[order].astype(np.int64),
        timestamp=np.concatenate(times)[order],
        profit_usd=np.concatenate(profits)[order],
        volume_usd=np.concatenate(volumes)[order],
    )


summary_rows = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.one_of(st.floats(-1e6, 1e6), st.floats(-1.0, 1.0), st.sampled_from([0.0, -100.0, 500.0])),
        st.one_of(st.floats(0.0, 100.0), st.floats(0.0, 2.0), st.sampled_from([0.0, 100.0])),
    ),
    min_size=0,
    max_size=12,
)


def summaries_of(rows) -> TraderSummaries:
    return TraderSummaries(
        wallets=tuple(f"w{i}" for i in range(len(rows))),
        trades=np.array([r[0] for r in rows], dtype=np.int64),
        roi_pct=np.array([r[1] for r in rows], dtype=np.float64),
        max_drawdown_pct=np.array([r[2] for r in rows], dtype=np.float64),
    )


def assert_sane(board: ScoreBoard) -> None:
    assert np.all(np.isfinite(board.raw_score)) and np.all(np.isfinite(board.score))
    assert np.all((board.score >= 0) & (board.score <= 100))
    assert np.array_equal(board.score, np.round(board.raw_score, 1))
    assert np.all(board.score[~board.metrics.eligible] == 0)
    eligible = board.metrics.eligible
    for metric in (board.metrics.sharpe, board.metrics.roi_pct, board.metrics.max_drawdown_pct):
        assert np.all(np.isfinite(metric[eligible]))
    no_data = board.metrics.status_code == list(E).index(E.NO_DATA)
    assert np.all(np.isfinite(board.metrics.sharpe[~no_data]))
    assert np.all(np.isnan(board.metrics.sharpe[no_data]))
    ranked = board.ranked()
    assert [t.rank for t in ranked] == list(range(1, len(ranked) + 1))
    assert [t.score for t in ranked] == sorted((t.score for t in ranked), reverse=True)
    for t in ranked:
        for value in (t.score, t.sharpe, t.roi_pct, t.max_drawdown_pct):
            assert value is None or math.isfinite(value)


# --- properties ------------------------------------------------------------------------------------------


@PROPERTY
@given(histories())
def test_vectorised_history_metrics_match_the_reference(h: TradeHistory):
    metrics = metrics_from_history(h, as_of=AS_OF)
    for w, wallet in enumerate(h.wallets):
        mine = h.wallet_index == w
        ref = reference_metrics(h.timestamp[mine], h.profit_usd[mine], h.volume_usd[mine], AS_OF)
        assert metrics.statuses[w] is ref.status, wallet
        assert metrics.trades[w] == ref.trades
        for got, want in (
            (metrics.sharpe[w], ref.sharpe),
            (metrics.roi_pct[w], ref.roi_pct),
            (metrics.max_drawdown_pct[w], ref.max_drawdown_pct),
        ):
            if math.isnan(want):
                assert math.isnan(got)
            else:
                assert got == pytest.approx(want, rel=1e-7, abs=1e-7)


@PROPERTY
@given(histories(), st.sampled_from(list(Normalization)))
def test_history_scores_are_finite_within_bounds_and_ranked(h: TradeHistory, normalization):
    assert_sane(score_history(h, normalization, as_of=AS_OF))
    assert_sane(score_history(h, normalization))  # default as_of


@PROPERTY
@given(summary_rows, st.sampled_from(list(Normalization)))
def test_summary_scores_are_finite_within_bounds_and_ranked(rows, normalization):
    assert_sane(score_summaries(summaries_of(rows), normalization))


@st.composite
def extreme_histories(draw) -> TradeHistory:
    """Trades at and near the accepted limits (VALUE_LIMITS): dust volumes next to 10^15 USD profits."""
    n = draw(st.integers(1, 60))
    low_v, high_v = VALUE_LIMITS["volume_usd"]
    low_p, high_p = VALUE_LIMITS["profit_usd"]
    volume = st.one_of(st.sampled_from([low_v, high_v, 1.0]), st.floats(low_v, high_v))
    profit = st.one_of(st.sampled_from([low_p, high_p, 0.0, -1e-300, 5e-324]), st.floats(low_p, high_p))
    time = st.one_of(
        st.floats(AS_OF - 120 * DAY, AS_OF), st.sampled_from([0.0, VALUE_LIMITS["timestamp"][1]])
    )
    rows = draw(st.lists(st.tuples(st.integers(0, 2), time, profit, volume), min_size=n, max_size=n))
    return TradeHistory(
        wallets=("a", "b", "c"),
        wallet_index=np.array([r[0] for r in rows], dtype=np.int64),
        timestamp=np.array([r[1] for r in rows]),
        profit_usd=np.array([r[2] for r in rows]),
        volume_usd=np.array([r[3] for r in rows]),
    )


@PROPERTY
@given(extreme_histories(), st.sampled_from(list(Normalization)), st.sampled_from([None, AS_OF]))
def test_values_at_the_limits_never_overflow(h: TradeHistory, normalization, as_of):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or invalid-value RuntimeWarning fails the test
        board = score_history(h, normalization, as_of=as_of)
    assert_sane(board)
    has_trades = board.metrics.trades > 0
    for metric in (board.metrics.sharpe, board.metrics.roi_pct, board.metrics.max_drawdown_pct):
        assert np.all(np.isfinite(metric[has_trades]))


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 50, 10**9]),
            st.sampled_from([-1e9, 1e9, 0.0, 5e-324, -5e-324]),
            st.sampled_from([0.0, 5e-324, 1.0, 100.0]),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(list(Normalization)),
)
def test_summary_values_at_the_limits_never_overflow(rows, normalization):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        board = score_summaries(summaries_of(rows), normalization)
    assert_sane(board)


@PROPERTY
@given(histories(max_wallets=4), st.integers(0, 2**32 - 1))
def test_row_order_does_not_matter(h: TradeHistory, seed: int):
    order = np.random.default_rng(seed).permutation(h.wallet_index.size)
    shuffled = TradeHistory(
        h.wallets, h.wallet_index[order], h.timestamp[order], h.profit_usd[order], h.volume_usd[order]
    )
    for normalization in Normalization:
        a = score_history(h, normalization, as_of=AS_OF)
        b = score_history(shuffled, normalization, as_of=AS_OF)
        assert np.allclose(a.raw_score, b.raw_score, rtol=1e-9, atol=1e-9)


@PROPERTY
@given(st.lists(st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=30), min_size=1, max_size=20))
def test_segmented_running_max_restarts_at_every_group(groups):
    values = np.array([x for g in groups for x in g], dtype=np.float64)
    counts = np.array([len(g) for g in groups])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    expected = np.concatenate([np.maximum.accumulate(np.array(g)) for g in groups])
    got = _segmented_running_max(values, starts, counts)
    spans = np.repeat([max(g) - min(g) for g in groups], counts)
    assert np.all(got >= values)
    assert np.all(np.abs(got - expected) <= 1e-9 * spans + 1e-12)


# --- continuity: a tiny change of input never moves the score by a lot -------------------------------------

TINY = 1e-6
# Raw-score points (0..100) a TINY relative change may move. The Lipschitz bounds behind it: at most
# 12 points per drawdown-% (proxy at its 1 % floor), 1.6 per ROI-% with 50 trades, 1000x for the cohort
# range floor; all far below this for a 1e-6 change.
MAX_MOVE = 0.05


def _raw(board: ScoreBoard) -> np.ndarray:
    return board.raw_score


@PROPERTY
@given(
    trades=st.integers(MIN_TRADES, 5000),
    # near the edges: ROI around 0 and drawdown around 0, where the proxy divides by sqrt(drawdown)
    roi=st.one_of(st.floats(-0.05, 0.05), st.floats(-2.0, 2.0), st.floats(-200.0, 2000.0)),
    drawdown=st.one_of(st.floats(0.0, 1e-4), st.floats(0.0, 2.0), st.just(0.0), st.floats(0.0, 100.0)),
    d_roi=st.floats(-TINY, TINY),
    d_drawdown=st.floats(-TINY, TINY),
    normalization=st.sampled_from(list(Normalization)),
)
def test_summary_score_has_no_cliff(trades, roi, drawdown, d_roi, d_drawdown, normalization):
    cohort = [(100, 90.0, 10.0), (200, 20.0, 2.0), (80, -5.0, 30.0)]
    before = summaries_of([(trades, roi, drawdown)] + cohort)
    after = summaries_of([(trades, roi + d_roi, min(max(drawdown + d_drawdown, 0.0), 100.0))] + cohort)
    a, b = score_summaries(before, normalization), score_summaries(after, normalization)
    assert np.all(np.abs(_raw(a) - _raw(b)) <= MAX_MOVE)
    assert np.all(np.abs(a.score - b.score) <= 0.1 + 1e-9)  # at most one rounding step


def _eligible_history(rng: np.random.Generator, mode: str) -> TradeHistory:
    """One eligible wallet (120 trades over 100 days, daily |ROI| far from 0.5) plus a second one so
    that cohort normalisation has a cohort."""
    n = 120
    t = np.sort(AS_OF - rng.choice(int(89 * DAY), size=n, replace=False).astype(np.float64))
    t[0] = AS_OF - 100 * DAY  # history of 100 days, outside the window
    vol = rng.uniform(50, 150, n)
    if mode == "zero variance":
        p = np.full(n, 0.5)
    elif mode == "zero mean":
        p = np.zeros(n)
    elif mode == "first tiny loss":
        p = np.abs(rng.normal(1.0, 0.5, n))
        p[1] = -1e-9
    elif mode == "negative":
        p = -np.abs(rng.normal(1.0, 2.0, n))
    else:
        p = rng.normal(0.5, 3.0, n)
    other_t = np.linspace(AS_OF - 100 * DAY, AS_OF, n)
    other_p = np.resize([3.0, -1.0], n)
    return TradeHistory(
        wallets=("edge", "other"),
        wallet_index=np.repeat([0, 1], n),
        timestamp=np.concatenate([t, other_t]),
        profit_usd=np.concatenate([p, other_p]),
        volume_usd=np.concatenate([vol, np.full(n, 100.0)]),
    )


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["noise", "zero variance", "zero mean", "first tiny loss", "negative"]),
    trade=st.integers(1, 119),
    relative_change=st.floats(-TINY, TINY),
    normalization=st.sampled_from(list(Normalization)),
)
def test_history_score_has_no_cliff(seed, mode, trade, relative_change, normalization):
    h = _eligible_history(np.random.default_rng(seed), mode)
    profit = h.profit_usd.copy()
    profit[trade] += relative_change * h.volume_usd[trade]
    changed = TradeHistory(h.wallets, h.wallet_index, h.timestamp, profit, h.volume_usd)
    a = score_history(h, normalization, as_of=AS_OF)
    b = score_history(changed, normalization, as_of=AS_OF)
    assert a.metrics.statuses == b.metrics.statuses == [E.ELIGIBLE, E.ELIGIBLE]
    assert np.all(np.abs(_raw(a) - _raw(b)) <= MAX_MOVE)
    assert np.all(np.abs(a.score - b.score) <= 0.1 + 1e-9)


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), relative_change=st.floats(-TINY, TINY))
def test_drawdown_and_sharpe_move_continuously_through_a_zero_first_trade(seed, relative_change):
    """The edge a literal peak-over-peak drawdown falls off: the first trade's profit crossing zero."""
    h = _eligible_history(np.random.default_rng(seed), "noise")
    profit = h.profit_usd.copy()
    # the window's first trade (the history's first one lies outside the window)
    in_window = np.flatnonzero((h.wallet_index == 0) & (h.timestamp > AS_OF - WINDOW_DAYS * DAY))
    first = int(in_window[np.argmin(h.timestamp[in_window])])
    profit[first] = 0.0
    zero = TradeHistory(h.wallets, h.wallet_index, h.timestamp, profit.copy(), h.volume_usd)
    profit[first] = relative_change * h.volume_usd[first]
    nudged = TradeHistory(h.wallets, h.wallet_index, h.timestamp, profit, h.volume_usd)
    a, b = metrics_from_history(zero, as_of=AS_OF), metrics_from_history(nudged, as_of=AS_OF)
    assert a.statuses == b.statuses == [E.ELIGIBLE, E.ELIGIBLE]
    assert abs(a.max_drawdown_pct[0] - b.max_drawdown_pct[0]) <= 1e-3
    assert abs(a.sharpe[0] - b.sharpe[0]) <= 1e-3
