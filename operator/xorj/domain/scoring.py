"""Trust Score V1: rank lead traders by risk-adjusted performance. Pure, vectorised (numpy), no I/O.

The specification is docs/design.md's "Trust Score V1"; this docstring records every decision it leaves open.

Score
    ``score = max(0, 0.40 nS + 0.15 nR - 0.45 nD) x 100``, rounded to one decimal (numpy's
    half-to-even). The weights sum to a best case of 0.55, so V1 scores lie in 0..55; the result is
    still clipped to 0..100 as a guard. Ineligible traders score 0 and keep their status.

Normalisations
    ``fixed``:  nS = clip((sharpe + 2) / 5), nR = clip(roi_pct / 500), nD = clip(max_drawdown_pct / 100),
    each clipped to 0..1.
    ``cohort``: min-max across the ELIGIBLE traders only: ``n = (x - min) / max(max - min, 0.001)``
    for each metric in the units reported (Sharpe, ROI %, drawdown %); drawdown enters as the penalty
    exactly as in ``fixed``. The cohort minimum of every metric maps to 0, so a lone eligible trader (or
    a cohort of identical traders) scores 0; the 0.001 floor keeps a near-identical cohort from being
    blown up into 0..1. Ineligible traders never move the cohort's bounds.
    Cohort scores are relative: a trader at the top of every metric scores 0.40 + 0.15 - 0.45 = 0.10,
    whatever its drawdown. Were Gambler (20 trades) eligible, a cohort of just the three reference
    profiles would rank it first (10.0 vs Pro 3.4); the trades rule excludes it, and in any wider cohort
    Pro > Safe Bet holds (see the tests).

Metrics from a trade history (``wallet, timestamp, profit_usd, volume_usd``)
    * ``as_of`` (unix seconds, UTC) ends a rolling window of 90 days: trades with
      ``as_of - 90 d < timestamp <= as_of`` count. Trades after ``as_of`` are ignored entirely. By
      default ``as_of`` is the latest timestamp in the whole data set (not per wallet), so a trader who
      went quiet is measured over the same window as everyone else.
    * ROI % = 100 x sum(profit) / sum(volume) over the window (every trade's volume is > 0).
    * Sharpe = mean / stdev of per-trade profit (risk-free rate 0; population stdev). The stdev is
      floored at 1 basis point of the wallet's mean trade volume: without a floor, zero variance divides
      by zero and a nearly constant profit series jumps between huge positive and negative Sharpe values.
      With real trading noise the floor is far below the stdev and changes nothing.
    * Max drawdown % = 100 x max over time of ``(peak - cumulative) / max(peak, mean trade volume)``,
      where ``cumulative`` is the cumulative profit from 0 at the window start and ``peak`` its running
      maximum (starting from 0), clipped to 0..100. The denominator is floored at the mean trade volume
      (a stand-in for the capital at risk, which a history does not carry): taken literally, "over the
      peak" divides by zero for a trader whose first trade loses a cent, a cliff from 0% to 100%.
      Whenever the peak exceeds one typical trade, this is the literal peak-to-trough over peak.
    * Trades are ordered by timestamp within a wallet; trades at the same instant (or within about a
      millisecond) have no defined order between them.

Eligibility of a trade history (first failing rule wins, in this order)
    1. NO_DATA: no trade inside the window.
    2. INSUFFICIENT_HISTORY: the wallet's first trade (at or before ``as_of``) is less than 90 days
       before ``as_of``.
    3. INSUFFICIENT_TRADES: fewer than 50 trades inside the window.
    4. EXTREME_ROI_SPIKE: some UTC calendar day in the window has ``|sum profit / sum volume| > 0.5``.
    Otherwise ELIGIBLE. Metrics are still reported for ineligible wallets that have trades.

Summary input (``wallet, trades, roi_pct, max_drawdown_pct``)
    * Sharpe proxy = (roi_pct / trades) / sqrt(max(max_drawdown_pct, 1) / 100). The drawdown is
      floored at 1 % inside the proxy only (nD still uses the real value): zero drawdown would divide
      by zero, and a smaller floor makes the proxy so steep near zero drawdown that a hundredth of a
      percent moves the score by points. The reference profiles (drawdowns 2 %, 10 %, 70 %) are above it.
    * Eligibility: a summary has no timestamps and no daily series, so neither the 90-day history rule
      nor the daily spike rule can be checked; the caller vouches for them by supplying the summary.
      Only the trades rule applies: trades == 0 is NO_DATA (every metric undefined), trades < 50 is
      INSUFFICIENT_TRADES, otherwise ELIGIBLE. INSUFFICIENT_HISTORY and EXTREME_ROI_SPIKE are never
      produced from summaries.
    * Rules on values: trades a whole number >= 0; roi_pct finite (negative allowed); max_drawdown_pct
      within 0..100; wallets unique (and the limits below).

Accepted values (:data:`VALUE_LIMITS`)
    Every number must be finite and within its range (volume 1e-6..1e15 USD, |profit| <= 1e15 USD,
    |roi_pct| <= 1e9, times 1970..9999, trades <= 1e9): beyond those bounds float64 sums and ratios can
    overflow, and a metric would become inf or NaN. Breaking a rule raises InvalidInputError naming the
    field, the rule and the offending entry.

Continuity
    Apart from the eligibility thresholds docs/design.md prescribes (a trade count, 90 days, the 0.5 daily
    spike, and cohort membership that they decide), the raw score is a continuous function of every
    input: the floors above replace each division by zero, and clip/min-max are continuous.

Ranking
    Best first by displayed (rounded) score; equal scores put ELIGIBLE before ineligible, then order by
    wallet. ``rank`` is the 1-based position in that order (so it is unique).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from xorj.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SHARPE_WEIGHT = 0.40
ROI_WEIGHT = 0.15
DRAWDOWN_WEIGHT = 0.45

WINDOW_DAYS = 90
MIN_HISTORY_DAYS = 90
MIN_TRADES = 50
MAX_DAILY_ABS_ROI = 0.5
SECONDS_PER_DAY = 86_400

COHORT_RANGE_FLOOR = 0.001
SUMMARY_DRAWDOWN_FLOOR_PCT = 1.0
SHARPE_STDEV_FLOOR_OF_MEAN_VOLUME = 1e-4


class Normalization(str, enum.Enum):
    FIXED = "fixed"
    COHORT = "cohort"


class EligibilityStatus(str, enum.Enum):
    ELIGIBLE = "ELIGIBLE"
    INSUFFICIENT_HISTORY = "INSUFFICIENT_HISTORY"
    INSUFFICIENT_TRADES = "INSUFFICIENT_TRADES"
    EXTREME_ROI_SPIKE = "EXTREME_ROI_SPIKE"
    NO_DATA = "NO_DATA"


# Status codes as small integers so eligibility stays vectorised; index into this tuple to decode.
STATUS_BY_CODE: tuple[EligibilityStatus, ...] = tuple(EligibilityStatus)
_CODE = {status: np.int8(code) for code, status in enumerate(STATUS_BY_CODE)}


def _as_float_array(values: Any, field: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError(f"field '{field}' must be a one-dimensional sequence of numbers")
    return array


# Accepted range of every input value. Beyond the obvious (drawdown 0..100 %, times that are dates),
# the bounds keep every sum, ratio and square finite in float64, so no metric can overflow to inf or
# NaN: a trade moves at most 10^15 USD, volume is at least a micro-dollar, ROI at most 10^9 %.
VALUE_LIMITS: dict[str, tuple[float, float]] = {
    "timestamp": (0.0, 253_402_300_799.0),  # 1970-01-01 .. 9999-12-31T23:59:59Z, unix seconds
    "profit_usd": (-1e15, 1e15),
    "volume_usd": (1e-6, 1e15),
    "trades": (0, 1e9),
    "roi_pct": (-1e9, 1e9),
    "max_drawdown_pct": (0.0, 100.0),
}


def describe_limits(field: str) -> str:
    """The rule for ``field`` in words, e.g. ``between 0 and 100``."""
    if field == "timestamp":
        return "a time between 1970-01-01 and 9999-12-31"
    low, high = VALUE_LIMITS[field]
    return f"between {low:g} and {high:g}"


def within_limits(field: str, value: float) -> bool:
    low, high = VALUE_LIMITS[field]
    return low <= value <= high


def _check_values(array: FloatArray, field: str, label: str) -> None:
    """Finite and within VALUE_LIMITS, else InvalidInputError naming the first bad entry."""
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InvalidInputError(
            f"{label} {bad[0] + 1}: field '{field}' must be a finite number, got {float(array[bad[0]])!r}"
        )
    low, high = VALUE_LIMITS[field]
    bad = np.flatnonzero((array < low) | (array > high))
    if bad.size:
        value = float(array[bad[0]])
        shown = repr(int(value)) if value.is_integer() and abs(value) < 1e18 else repr(value)
        raise InvalidInputError(
            f"{label} {bad[0] + 1}: field '{field}' must be {describe_limits(field)}, got {shown}"
        )


@dataclass(frozen=True)
class TradeHistory:
    """Closed trades of many wallets, column-wise. Trade ``i`` belongs to ``wallets[wallet_index[i]]``.

    Wallets listed without trades are reported as NO_DATA. Rows need not be sorted.
    """

    wallets: tuple[str, ...]
    wallet_index: IntArray
    timestamp: FloatArray  # unix seconds, UTC
    profit_usd: FloatArray
    volume_usd: FloatArray

    def __post_init__(self) -> None:
        object.__setattr__(self, "wallets", tuple(self.wallets))
        index = np.asarray(self.wallet_index)
        if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
            raise InvalidInputError("field 'wallet_index' must be a one-dimensional array of integers")
        object.__setattr__(self, "wallet_index", index.astype(np.int64, copy=False))
        for field in ("timestamp", "profit_usd", "volume_usd"):
            object.__setattr__(self, field, _as_float_array(getattr(self, field), field))
        size = self.wallet_index.size
        for field in ("timestamp", "profit_usd", "volume_usd"):
            if getattr(self, field).size != size:
                raise InvalidInputError(
                    f"field '{field}' has {getattr(self, field).size} values, expected {size} (one per trade)"
                )
        _check_unique_wallets(self.wallets)
        out_of_range = np.flatnonzero((self.wallet_index < 0) | (self.wallet_index >= len(self.wallets)))
        if out_of_range.size:
            i = out_of_range[0]
            raise InvalidInputError(
                f"trade {i + 1}: field 'wallet_index' must be in 0..{len(self.wallets) - 1}, "
                f"got {self.wallet_index[i]}"
            )
        for field in ("timestamp", "profit_usd", "volume_usd"):
            _check_values(getattr(self, field), field, "trade")


@dataclass(frozen=True)
class TraderSummaries:
    """Summary statistics per wallet, column-wise (when no trade history is available)."""

    wallets: tuple[str, ...]
    trades: IntArray
    roi_pct: FloatArray
    max_drawdown_pct: FloatArray

    def __post_init__(self) -> None:
        object.__setattr__(self, "wallets", tuple(self.wallets))
        trades = np.asarray(self.trades)
        if trades.ndim != 1 or (trades.size and not np.issubdtype(trades.dtype, np.integer)):
            raise InvalidInputError("field 'trades' must be a one-dimensional array of whole numbers")
        object.__setattr__(self, "trades", trades.astype(np.int64, copy=False))
        for field in ("roi_pct", "max_drawdown_pct"):
            object.__setattr__(self, field, _as_float_array(getattr(self, field), field))
        size = len(self.wallets)
        for field in ("trades", "roi_pct", "max_drawdown_pct"):
            if getattr(self, field).size != size:
                raise InvalidInputError(
                    f"field '{field}' has {getattr(self, field).size} values, "
                    f"expected {size} (one per wallet)"
                )
        _check_unique_wallets(self.wallets)
        _check_values(self.trades.astype(np.float64), "trades", "wallet")
        for field in ("roi_pct", "max_drawdown_pct"):
            _check_values(getattr(self, field), field, "wallet")


def _check_unique_wallets(wallets: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for position, wallet in enumerate(wallets):
        if not isinstance(wallet, str) or not wallet:
            raise InvalidInputError(f"wallet {position + 1}: field 'wallet' must be a non-empty string")
        if wallet in seen:
            raise InvalidInputError(
                f"field 'wallet': {wallet!r} appears twice (wallets {seen[wallet] + 1} and {position + 1})"
            )
        seen[wallet] = position


@dataclass(frozen=True)
class TraderMetrics:
    """Per-wallet inputs to the score, column-wise, in ``wallets`` order.

    NaN in ``sharpe``, ``roi_pct`` or ``max_drawdown_pct`` means "not defined" (NO_DATA); it never
    reaches a score. ``trades`` counts the trades the metrics were computed from.
    """

    wallets: tuple[str, ...]
    trades: IntArray
    sharpe: FloatArray
    roi_pct: FloatArray
    max_drawdown_pct: FloatArray
    status_code: npt.NDArray[np.int8]  # index into STATUS_BY_CODE

    @property
    def statuses(self) -> list[EligibilityStatus]:
        return [STATUS_BY_CODE[code] for code in self.status_code.tolist()]

    @property
    def eligible(self) -> npt.NDArray[np.bool_]:
        eligible: npt.NDArray[np.bool_] = self.status_code == _CODE[EligibilityStatus.ELIGIBLE]
        return eligible


@dataclass(frozen=True)
class TraderScore:
    """One ranked trader. Metrics are None where not defined."""

    wallet: str
    rank: int
    score: float
    status: EligibilityStatus
    trades: int
    sharpe: float | None
    roi_pct: float | None
    max_drawdown_pct: float | None

    @property
    def eligible(self) -> bool:
        return self.status is EligibilityStatus.ELIGIBLE


@dataclass(frozen=True)
class ScoreBoard:
    """Scores of every wallet in ``metrics.wallets`` order. ``raw_score`` is before rounding."""

    metrics: TraderMetrics
    normalization: Normalization
    raw_score: FloatArray
    score: FloatArray

    def ranked(self) -> list[TraderScore]:
        """Best first: rounded score descending, eligible before ineligible, then wallet."""
        m = self.metrics
        scores = self.score.tolist()
        eligible = m.eligible.tolist()
        order = sorted(range(len(m.wallets)), key=lambda i: (-scores[i], not eligible[i], m.wallets[i]))
        sharpe, roi, drawdown = m.sharpe.tolist(), m.roi_pct.tolist(), m.max_drawdown_pct.tolist()
        trades, codes = m.trades.tolist(), m.status_code.tolist()
        return [
            TraderScore(
                wallet=m.wallets[i],
                rank=position,
                score=scores[i],
                status=STATUS_BY_CODE[codes[i]],
                trades=trades[i],
                sharpe=_defined(sharpe[i]),
                roi_pct=_defined(roi[i]),
                max_drawdown_pct=_defined(drawdown[i]),
            )
            for position, i in enumerate(order, start=1)
        ]


def _defined(value: float) -> float | None:
    return None if value != value else value  # NaN is the only value unequal to itself


# --- metrics ---------------------------------------------------------------------------------------


def sharpe_proxy(trades: IntArray, roi_pct: FloatArray, max_drawdown_pct: FloatArray) -> FloatArray:
    """(roi% / trades) / sqrt(max(maxDD%, 1) / 100); NaN where trades == 0."""
    trades_f = np.asarray(trades, dtype=np.float64)
    drawdown = np.maximum(np.asarray(max_drawdown_pct, dtype=np.float64), SUMMARY_DRAWDOWN_FLOOR_PCT)
    with np.errstate(divide="ignore", invalid="ignore"):
        proxy = (np.asarray(roi_pct, dtype=np.float64) / trades_f) / np.sqrt(drawdown / 100.0)
    return np.where(trades_f > 0, proxy, np.nan)


def metrics_from_summaries(summaries: TraderSummaries) -> TraderMetrics:
    """Metrics and eligibility from summary rows (trades rule only; see the module docstring)."""
    trades = summaries.trades
    has_data = trades > 0
    status = np.full(trades.size, _CODE[EligibilityStatus.ELIGIBLE], dtype=np.int8)
    status[trades < MIN_TRADES] = _CODE[EligibilityStatus.INSUFFICIENT_TRADES]
    status[~has_data] = _CODE[EligibilityStatus.NO_DATA]
    return TraderMetrics(
        wallets=summaries.wallets,
        trades=trades.copy(),
        sharpe=sharpe_proxy(trades, summaries.roi_pct, summaries.max_drawdown_pct),
        roi_pct=np.where(has_data, summaries.roi_pct, np.nan),
        max_drawdown_pct=np.where(has_data, summaries.max_drawdown_pct, np.nan),
        status_code=status,
    )


def default_as_of(history: TradeHistory) -> float:
    """The latest timestamp in the data (0.0 for an empty history)."""
    return float(history.timestamp.max()) if history.timestamp.size else 0.0


def _group_starts(keys: npt.NDArray[Any]) -> IntArray:
    """Start positions of runs of equal consecutive keys (keys non-empty)."""
    change = np.empty(keys.size, dtype=bool)
    change[0] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def _segmented_running_max(values: FloatArray, starts: IntArray, counts: IntArray) -> FloatArray:
    """Running maximum restarted at every group start, without a Python loop.

    Each group is mapped affinely onto [2g, 2g + 1] (g = group number), so one global
    ``np.maximum.accumulate`` cannot carry a maximum across groups, then mapped back. Relative error
    against the group's range is about 1e-12 for 10^4 groups.
    """
    low = np.minimum.reduceat(values, starts)
    span = np.maximum.reduceat(values, starts) - low
    span = np.where(span > 0, span, 1.0)
    offset = 2.0 * np.arange(starts.size, dtype=np.float64)
    low_r, span_r, offset_r = (np.repeat(a, counts) for a in (low, span, offset))
    lifted = (values - low_r) / span_r + offset_r
    running = np.maximum.accumulate(lifted)
    # Mapping back can round a hair below the value itself; the running max is never below it.
    restored: FloatArray = np.maximum((running - offset_r) * span_r + low_r, values)
    return restored


def metrics_from_history(history: TradeHistory, *, as_of: float | None = None,
                         window_days: int = WINDOW_DAYS) -> TraderMetrics:
    """Metrics and eligibility per wallet over the window of ``window_days`` (the design's 90 by default)
    ending at ``as_of`` (unix seconds). The minimum history (90 days) does not change with the window.

    ``as_of`` defaults to :func:`default_as_of`. Vectorised: one sort by (wallet, time), then
    ``reduceat``/``accumulate`` per group.
    """
    if as_of is None:
        as_of = default_as_of(history)
    as_of = float(as_of)
    if as_of != as_of or as_of in (float("inf"), float("-inf")):
        raise InvalidInputError(f"field 'as_of' must be a finite time, got {as_of!r}")
    n_wallets = len(history.wallets)

    # Trades after as_of do not exist yet as far as this scoring is concerned.
    known = history.timestamp <= as_of
    first_trade = np.full(n_wallets, np.inf)
    np.minimum.at(first_trade, history.wallet_index[known], history.timestamp[known])

    if not 1 <= window_days <= 3650:
        raise InvalidInputError(f"field 'window_days' must be 1..3650, got {window_days!r}")
    window_start = as_of - window_days * SECONDS_PER_DAY
    selected = np.flatnonzero((history.timestamp > window_start) & known)
    wallet = history.wallet_index[selected]
    time = history.timestamp[selected]
    # One float key orders by wallet, then time: each wallet owns a band one window (+1 s) wide, so
    # bands never overlap; within a band, times closer than ~1 ms (at 10^6 wallets) may swap, which
    # no metric can notice. A single argsort is several times faster than np.lexsort here.
    band = window_days * SECONDS_PER_DAY + 1.0
    order = np.argsort(wallet * band + (time - window_start))
    selected = selected[order]
    wallet, time = wallet[order], time[order]
    profit = history.profit_usd[selected]
    volume = history.volume_usd[selected]

    trades = np.zeros(n_wallets, dtype=np.int64)
    sharpe = np.full(n_wallets, np.nan)
    roi_pct = np.full(n_wallets, np.nan)
    drawdown_pct = np.full(n_wallets, np.nan)
    spike = np.zeros(n_wallets, dtype=bool)

    if wallet.size:
        starts = _group_starts(wallet)
        counts = np.diff(np.append(starts, wallet.size))
        group_wallet = wallet[starts]
        profit_sum = np.add.reduceat(profit, starts)
        volume_sum = np.add.reduceat(volume, starts)
        mean_volume = volume_sum / counts

        mean_profit = profit_sum / counts
        deviation = profit - np.repeat(mean_profit, counts)
        stdev = np.sqrt(np.add.reduceat(deviation * deviation, starts) / counts)
        stdev_floor = SHARPE_STDEV_FLOOR_OF_MEAN_VOLUME * mean_volume

        # Drawdown in units of the wallet's mean trade volume: the floor of the denominator becomes 1,
        # and one global cumsum stays precise for every wallet (in dollars, a whale's running total
        # would swamp a small wallet's cents when its group offset is subtracted).
        scaled = profit / np.repeat(mean_volume, counts)
        cumulative = np.cumsum(scaled)
        cumulative -= np.repeat(cumulative[starts] - scaled[starts], counts)
        peak = np.maximum(_segmented_running_max(cumulative, starts, counts), 0.0)
        drawdown = np.maximum.reduceat((peak - cumulative) / np.maximum(peak, 1.0), starts)

        # Daily spike: runs of (wallet, UTC day) nest inside wallet runs because rows are sorted.
        day = np.floor(time / SECONDS_PER_DAY)
        day_change = np.empty(wallet.size, dtype=bool)
        day_change[0] = True
        day_change[1:] = (day[1:] != day[:-1]) | (wallet[1:] != wallet[:-1])
        day_starts = np.flatnonzero(day_change)
        day_spike = np.abs(np.add.reduceat(profit, day_starts)) > MAX_DAILY_ABS_ROI * np.add.reduceat(
            volume, day_starts
        )
        first_day_of_group = np.searchsorted(day_starts, starts)
        group_spike = np.maximum.reduceat(day_spike.astype(np.int8), first_day_of_group) > 0

        trades[group_wallet] = counts
        sharpe[group_wallet] = mean_profit / np.maximum(stdev, stdev_floor)
        roi_pct[group_wallet] = 100.0 * profit_sum / volume_sum
        drawdown_pct[group_wallet] = 100.0 * np.clip(drawdown, 0.0, 1.0)
        spike[group_wallet] = group_spike

    history_days = (as_of - first_trade) / SECONDS_PER_DAY  # -inf for wallets without known trades
    status = np.full(n_wallets, _CODE[EligibilityStatus.ELIGIBLE], dtype=np.int8)
    # Assign from the last rule to the first so the first failing rule wins.
    status[spike] = _CODE[EligibilityStatus.EXTREME_ROI_SPIKE]
    status[trades < MIN_TRADES] = _CODE[EligibilityStatus.INSUFFICIENT_TRADES]
    status[history_days < MIN_HISTORY_DAYS] = _CODE[EligibilityStatus.INSUFFICIENT_HISTORY]
    status[trades == 0] = _CODE[EligibilityStatus.NO_DATA]
    return TraderMetrics(
        wallets=history.wallets,
        trades=trades,
        sharpe=sharpe,
        roi_pct=roi_pct,
        max_drawdown_pct=drawdown_pct,
        status_code=status,
    )


# --- score -----------------------------------------------------------------------------------------


def normalize_fixed(metrics: TraderMetrics) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(nS, nR, nD) on docs/design.md's fixed scales; 0 where a metric is not defined."""
    sharpe, roi, drawdown = (np.nan_to_num(a, nan=0.0) for a in _metric_arrays(metrics))
    return (
        np.clip((sharpe + 2.0) / 5.0, 0.0, 1.0),
        np.clip(roi / 500.0, 0.0, 1.0),
        np.clip(drawdown / 100.0, 0.0, 1.0),
    )


def normalize_cohort(metrics: TraderMetrics) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(nS, nR, nD) by min-max across eligible traders (range floor 0.001); 0 for the ineligible."""
    eligible = metrics.eligible
    normalized = []
    for values in _metric_arrays(metrics):
        result = np.zeros(values.size)
        if eligible.any():
            cohort = values[eligible]
            low = cohort.min()
            span = max(float(cohort.max() - low), COHORT_RANGE_FLOOR)
            result[eligible] = np.clip((cohort - low) / span, 0.0, 1.0)
        normalized.append(result)
    return normalized[0], normalized[1], normalized[2]


def _metric_arrays(metrics: TraderMetrics) -> tuple[FloatArray, FloatArray, FloatArray]:
    return metrics.sharpe, metrics.roi_pct, metrics.max_drawdown_pct


def combine(n_sharpe: FloatArray, n_roi: FloatArray, n_drawdown: FloatArray) -> FloatArray:
    """max(0, 0.40 nS + 0.15 nR - 0.45 nD) x 100, unrounded."""
    weighted = SHARPE_WEIGHT * n_sharpe + ROI_WEIGHT * n_roi - DRAWDOWN_WEIGHT * n_drawdown
    return np.clip(weighted * 100.0, 0.0, 100.0)


def score_metrics(
    metrics: TraderMetrics, normalization: Normalization | str = Normalization.FIXED
) -> ScoreBoard:
    """Trust Score of every wallet; ineligible wallets score 0."""
    try:
        normalization = Normalization(normalization)
    except ValueError:
        choices = ", ".join(n.value for n in Normalization)
        raise InvalidInputError(
            f"field 'normalization' must be one of {choices}, got {normalization!r}"
        ) from None
    eligible = metrics.eligible
    for name, values in zip(("sharpe", "roi_pct", "max_drawdown_pct"), _metric_arrays(metrics), strict=True):
        bad = np.flatnonzero(eligible & ~np.isfinite(values))
        if bad.size:  # only reachable with hand-built TraderMetrics; ours are finite when eligible
            wallet = metrics.wallets[bad[0]]
            raise InvalidInputError(
                f"wallet {wallet!r}: field '{name}' must be finite for an eligible trader"
            )
    normalize = normalize_fixed if normalization is Normalization.FIXED else normalize_cohort
    raw: FloatArray = np.where(metrics.eligible, combine(*normalize(metrics)), 0.0)
    rounded: FloatArray = np.round(raw, 1).astype(np.float64) + 0.0  # + 0.0 turns a -0.0 into 0.0
    return ScoreBoard(metrics=metrics, normalization=normalization, raw_score=raw, score=rounded)


def score_history(
    history: TradeHistory,
    normalization: Normalization | str = Normalization.FIXED,
    *,
    as_of: float | None = None,
    window_days: int = WINDOW_DAYS,
) -> ScoreBoard:
    return score_metrics(metrics_from_history(history, as_of=as_of, window_days=window_days), normalization)


def score_summaries(
    summaries: TraderSummaries, normalization: Normalization | str = Normalization.FIXED
) -> ScoreBoard:
    return score_metrics(metrics_from_summaries(summaries), normalization)


def score_components(board: ScoreBoard) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each wallet's three terms of the score in score points, in ``board.metrics.wallets`` order:
    ``(+0.40 nS x 100, +0.15 nR x 100, -0.45 nD x 100)`` under the board's normalization; all 0 for an
    ineligible wallet, as its score. Their sum, clipped to 0..100, is ``board.raw_score``."""
    normalize = normalize_fixed if board.normalization is Normalization.FIXED else normalize_cohort
    n_sharpe, n_roi, n_drawdown = normalize(board.metrics)
    eligible = board.metrics.eligible
    return (
        np.where(eligible, SHARPE_WEIGHT * n_sharpe * 100.0, 0.0),
        np.where(eligible, ROI_WEIGHT * n_roi * 100.0, 0.0),
        np.where(eligible, -DRAWDOWN_WEIGHT * n_drawdown * 100.0, 0.0),
    )
