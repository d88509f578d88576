"""The TraderPool status builder (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xorj.controller.traderpool import status as st
from xorj.domain.scoring import EligibilityStatus, Normalization, TraderScore
from xorj.domain.trader_pool import PoolRanking

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _ranking(n: int, eligible: int) -> PoolRanking:
    ranked = [TraderScore(wallet=f"w{i}", rank=i + 1, score=float(50 - i),
                          status=EligibilityStatus.ELIGIBLE if i < eligible else EligibilityStatus.INSUFFICIENT_TRADES,
                          trades=60, sharpe=1.0, roi_pct=2.0, max_drawdown_pct=1.0) for i in range(n)]
    return PoolRanking(ranked=ranked, normalization=Normalization.FIXED, window_start=T0.timestamp() - 90 * 86400,
                       window_end=T0.timestamp())


def test_status_shows_top_ranks_counts_and_when() -> None:
    status = st.trader_pool_status(ranking=_ranking(12, 4), ranks_shown=3, previous=None, generation=2, now=T0)
    assert [(r.rank, r.wallet, r.score, r.status) for r in status.ranks] == [
        (1, "w0", 50.0, "ELIGIBLE"), (2, "w1", 49.0, "ELIGIBLE"), (3, "w2", 48.0, "ELIGIBLE")]
    assert (status.candidates, status.eligible, status.ineligible) == (12, 4, 8)
    assert (status.top_trader, status.top_score) == ("w0", 50.0)
    assert status.last_scored == T0
    assert status.window_end == T0 and status.window_start == T0 - timedelta(days=90)
    scored = next(c for c in status.conditions if c.type == st.SCORED)
    assert scored.status.value == "True" and "4 eligible" in scored.message
    wire = status.to_wire()
    assert wire["lastScored"].startswith("2026-12-01T12:00:00") and wire["topTrader"] == "w0"


def test_failed_run_keeps_previous_figures_and_says_why() -> None:
    first = st.trader_pool_status(ranking=_ranking(5, 2), ranks_shown=10, previous=None, generation=1, now=T0)
    later = T0 + timedelta(minutes=1)
    failed = st.trader_pool_status(ranking=None, ranks_shown=10, previous=first, generation=1, now=later,
                                   error=("LedgerUnavailable", "ledger unavailable: LedgerUnavailableError"))
    assert failed.ranks == first.ranks and failed.eligible == 2 and failed.last_scored == T0
    scored = next(c for c in failed.conditions if c.type == st.SCORED)
    assert (scored.status.value, scored.reason, scored.last_transition_time) == ("False", "LedgerUnavailable", later)
    again = st.trader_pool_status(ranking=None, ranks_shown=10, previous=failed, generation=1,
                                  now=later + timedelta(minutes=1), error=("LedgerUnavailable", scored.message))
    assert again == failed  # nothing new: the handler writes nothing


def test_left_out_entries_are_named() -> None:
    problems = [f"cm line {i}: 'x{i}' is not a base58 32-byte public key" for i in range(7)]
    status = st.trader_pool_status(ranking=_ranking(1, 1), ranks_shown=10, previous=None, generation=1, now=T0,
                                   problems=problems)
    valid = next(c for c in status.conditions if c.type == st.CANDIDATES_VALID)
    assert valid.status.value == "False" and "7 entries left out" in valid.message and "(and 2 more)" in valid.message
