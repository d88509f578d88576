"""Trader scores: the latest Trust Score per wallet, replaced by each recompute.

:func:`upsert` and :func:`list_scores` are transaction bodies (:mod:`xorj.ledger.statements`).
"""

from __future__ import annotations

from collections.abc import Iterable

from xorj.ledger import statements
from xorj.ledger.records import StoredTraderScore
from xorj.ledger.statements import Step

# score is numeric(4,1) in the table and a float in the record: cast where it is read
_COLUMNS = "wallet, score::float8 AS score, status, rank, sharpe, roi_pct, max_drawdown_pct, trades, normalization, computed_at"


_WRITTEN = "wallet, score, status, rank, sharpe, roi_pct, max_drawdown_pct, trades, normalization, computed_at"


def upsert(scores: Iterable[StoredTraderScore]) -> Step[int]:
    """One COPY into a transaction-local table and one INSERT ... ON CONFLICT from it: a pool of ten
    thousand wallets is written in a few round trips, not one statement per wallet. A wallet given
    twice keeps its last score."""
    rows = {
        s.wallet: (s.wallet, round(float(s.score), 1), s.status, s.rank, s.sharpe, s.roi_pct, s.max_drawdown_pct,
                   s.trades, s.normalization, s.computed_at)
        for s in scores
    }
    if not rows:
        return 0
    # the columns' types without their constraints (a NULL computed_at means now(), below)
    yield from statements.rowcount(f"CREATE TEMP TABLE IF NOT EXISTS trader_scores_in ON COMMIT DROP AS "
                                   f"SELECT {_WRITTEN} FROM trader_scores WITH NO DATA")
    yield from statements.copy_in(f"COPY trader_scores_in ({_WRITTEN}) FROM STDIN", rows.values())
    yield from statements.rowcount(
        f"""INSERT INTO trader_scores ({_WRITTEN})
           SELECT wallet, score, status, rank, sharpe, roi_pct, max_drawdown_pct, trades, normalization,
                  coalesce(computed_at, now())
             FROM trader_scores_in
           ON CONFLICT (wallet) DO UPDATE SET
               score = EXCLUDED.score, status = EXCLUDED.status, rank = EXCLUDED.rank,
               sharpe = EXCLUDED.sharpe, roi_pct = EXCLUDED.roi_pct,
               max_drawdown_pct = EXCLUDED.max_drawdown_pct, trades = EXCLUDED.trades,
               normalization = EXCLUDED.normalization, computed_at = EXCLUDED.computed_at""")
    yield from statements.rowcount("DROP TABLE trader_scores_in")
    return len(rows)


def list_scores(min_score: float | None, status: str | None, limit: int | None) -> Step[list[StoredTraderScore]]:
    """Stored scores, best first: a transaction body (:mod:`xorj.ledger.statements`), run by the
    blocking ledger, the asyncio one or a reader's own connection."""
    return (yield from statements.records(
        StoredTraderScore,
        f"""SELECT {_COLUMNS} FROM trader_scores
             WHERE (%(min)s::numeric IS NULL OR score >= %(min)s)
               AND (%(status)s::text IS NULL OR status = %(status)s)
             ORDER BY score DESC, wallet
             LIMIT %(limit)s""",
        {"min": min_score, "status": status, "limit": limit},
    ))
