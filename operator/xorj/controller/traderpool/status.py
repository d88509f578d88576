"""A TraderPool's status after a scoring run: its ranks, counts and conditions. Pure: no I/O; the clock
is a parameter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from xorj.controller.conditions import condition_status, set_condition
from xorj.controller.models import Condition, RankedTrader, TraderPoolStatus
from xorj.domain.trader_pool import PoolRanking

# The pool was ranked from the ledger's history (False: why not; the previous ranks are kept).
SCORED = "Scored"
# Every candidate entry was a wallet (False: entries of the selected ConfigMaps were left out).
CANDIDATES_VALID = "CandidatesValid"
PROBLEMS_SHOWN = 5


def trader_pool_status(
    *,
    ranking: PoolRanking | None,
    ranks_shown: int,
    previous: TraderPoolStatus | None,
    generation: int | None,
    now: datetime,
    problems: Sequence[str] = (),
    error: tuple[str, str] | None = None,
) -> TraderPoolStatus:
    """The pool's status after a scoring run. ``ranking`` None with ``error`` (reason, message): the
    run failed (e.g. the ledger is down) and the previous ranks, counts and lastScored are kept:
    stale figures beat zeros that look like facts. ``problems``: candidate entries left out."""
    prev = previous or TraderPoolStatus()

    def cond(type_: str, ok: bool, reason: str, message: str) -> Condition:
        return set_condition(prev.conditions, type_, condition_status(ok), reason, message, now=now, generation=generation)

    if problems:
        shown = "; ".join(problems[:PROBLEMS_SHOWN])
        more = f" (and {len(problems) - PROBLEMS_SHOWN} more)" if len(problems) > PROBLEMS_SHOWN else ""
        valid = cond(CANDIDATES_VALID, False, "EntriesLeftOut", f"{len(problems)} entries left out: {shown}{more}")
    else:
        valid = cond(CANDIDATES_VALID, True, "AllValid", "every candidate entry is a wallet")
    if ranking is None:
        reason, message = error or ("NotScored", "not scored yet")
        return prev.model_copy(update={"observed_generation": generation,
                                       "conditions": [cond(SCORED, False, reason, message), valid]})
    ranks = [RankedTrader(rank=s.rank, wallet=s.wallet, score=s.score, status=s.status.value)
             for s in ranking.ranked[:ranks_shown]]
    top = ranks[0] if ranks else None
    scored = cond(SCORED, True, "Scored",
                  f"{len(ranking.ranked)} candidates scored ({ranking.normalization.value} normalization): "
                  f"{ranking.eligible} eligible")
    return TraderPoolStatus(
        observed_generation=generation,
        conditions=[scored, valid],
        candidates=len(ranking.ranked),
        eligible=ranking.eligible,
        ineligible=ranking.ineligible,
        ranks=ranks,
        top_trader=top.wallet if top else None,
        top_score=top.score if top else None,
        window_start=datetime.fromtimestamp(ranking.window_start, UTC),
        window_end=datetime.fromtimestamp(ranking.window_end, UTC),
        last_scored=now,
    )


