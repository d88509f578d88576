"""Scoring of TraderPools: read the candidates and their stored swaps, rank with the pure domain
(:func:`xorj.domain.trader_pool.rank_pool`), write ``trader_scores`` and the pool's status.

The kopf handlers (:mod:`.handlers`) route the pool's timer and spec changes here. The history comes from the
ledger (``trader_swaps``, recorded by :mod:`xorj.traders`): scoring reads no RPC, so a pool of
thousands of wallets is rescored from one query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from xorj.controller import metrics
from xorj.controller.common import POOLS
from xorj.controller.kube import API_ERRORS, error_reason
from xorj.controller.models import TraderPoolSpec, TraderPoolStatus, WindowEnd
from xorj.controller.runtime import Runtime
from xorj.controller.traderpool import status as st
from xorj.domain.scoring import TradeHistory
from xorj.domain.trader_history import DEFAULT_CASH_MINTS
from xorj.domain.trader_pool import PoolRanking, candidates_from_lists, rank_history
from xorj.errors import InvalidInputError, LedgerError
from xorj.ledger import scores, trader_swaps
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.records import StoredTraderScore
from xorj.traders.realized import RealizedHistories

log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(UTC)


def stored_scores(ranking: PoolRanking) -> list[StoredTraderScore]:
    """The ledger rows of a ranking (trader_scores keeps the latest score per wallet)."""
    return [StoredTraderScore(wallet=s.wallet, score=s.score, status=s.status.value, rank=s.rank, sharpe=s.sharpe,
                              roi_pct=s.roi_pct, max_drawdown_pct=s.max_drawdown_pct, trades=s.trades,
                              normalization=ranking.normalization.value)
            for s in ranking.ranked]


async def rescore(ledger: AsyncLedger, histories: RealizedHistories, candidates: Sequence[str],
                  spec: TraderPoolSpec, cash_mints: frozenset[str], now_ts: float) -> PoolRanking:
    """Rank ``candidates`` from their stored swaps and write their ``trader_scores``. The ledger's reads
    and its write are transaction bodies on the event loop; only wallets with swaps recorded since the
    last rescoring are read and realized again (:class:`RealizedHistories`)."""
    wallets = tuple(dict.fromkeys(candidates))
    versions = await ledger.run(trader_swaps.versions(wallets))
    priced = await ledger.run(trader_swaps.priced_of(histories.stale(wallets, versions, cash_mints=cash_mints)))
    # CPU only, no I/O: realizing the stale wallets' swaps (FIFO) and the Trust Score over thousands of
    # wallets take seconds, so they run on a worker thread and the loop keeps serving the other handlers
    ranking = await asyncio.to_thread(
        lambda: ranked(histories.assemble(wallets, versions, priced, cash_mints=cash_mints), spec, now_ts))
    if ranking.ranked:
        await ledger.run(scores.upsert(stored_scores(ranking)))
    return ranking


def ranked(history: TradeHistory, spec: TraderPoolSpec, now_ts: float) -> PoolRanking:
    """The pool's ranking of its candidates' realized history (pure)."""
    return rank_history(history, normalization=spec.normalization, window_days=spec.window.days,
                        ends_at_latest_trade=spec.window.ends_at is WindowEnd.LATEST_TRADE, now=now_ts)


async def _candidates(rt: Runtime, namespace: str, spec: TraderPoolSpec) -> tuple[list[str], list[str]]:
    if spec.wallets is not None:
        return list(spec.wallets), []
    selector = spec.wallet_config_maps
    assert selector is not None  # the XOR rule
    items = await rt.kube.list_configmaps(namespace, selector.match_labels)
    lists = {f"ConfigMap {cm['metadata']['name']} key {selector.key}": (cm.get("data") or {}).get(selector.key, "")
             for cm in items}
    return candidates_from_lists(lists)


async def score_pool(rt: Runtime, body: Any, logger: Any) -> PoolRanking | None:
    """Rank one pool and write its status (one merge PATCH, only when something changed)."""
    async with rt.pool_locks[body["metadata"].get("uid", "")]:
        return await _score_pool(rt, body, logger)


async def rescore_on_new_swaps(rt: Runtime, body: Any, logger: Any) -> PoolRanking | None:
    """Rescore the pool if any of its candidates recorded swaps since it was last scored (their history
    watermark moved); nothing otherwise. A pool this operator has not scored yet is left to its create,
    resume and schedule handlers."""
    seen = rt.pool_watermarks.get(body["metadata"].get("uid", ""))
    if seen is None:
        return None
    candidates, watermark = seen
    try:
        now_mark = await rt.ledger_run(trader_swaps.history_watermark(candidates))
    except LedgerError:
        return None  # counted; the next check asks again, and the schedule reports a lasting outage
    if now_mark == watermark:
        return None
    logger.info("new swaps recorded for the pool's candidates: rescoring", extra={"pool": body["metadata"]["name"]})
    return await score_pool(rt, body, logger)


async def _score_pool(rt: Runtime, body: Any, logger: Any) -> PoolRanking | None:
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    previous: TraderPoolStatus | None
    try:
        previous = TraderPoolStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        previous = None
    ranking: PoolRanking | None = None
    problems: list[str] = []
    error: tuple[str, str] | None = None
    try:
        spec = TraderPoolSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        error = ("InvalidSpec", "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        spec = None
    if spec is not None:
        try:
            candidates, problems = await _candidates(rt, namespace, spec)
            cash = frozenset(rt.settings.pools.cash_mints) or DEFAULT_CASH_MINTS
            # read before scoring: swaps recorded while it runs move the watermark again (rescored next check)
            watermark = await rt.ledger_run(trader_swaps.history_watermark(candidates))
            try:
                ranking = await rescore(rt.async_ledger, rt.realized, candidates, spec, cash, now().timestamp())
            except LedgerError:
                metrics.LEDGER_ERRORS.labels("rescore_pool").inc()
                raise
            rt.pool_watermarks[meta.get("uid", "")] = (tuple(candidates), watermark)
        except LedgerError as exc:
            ranking, error = None, ("LedgerUnavailable", f"ledger unavailable: {type(exc).__name__}")
        except InvalidInputError as exc:  # stored history the Trust Score refuses (e.g. out of its value limits)
            ranking, error = None, ("ScoringFailed", str(exc)[:1000])
        except API_ERRORS as exc:
            ranking, error = None, ("CandidatesUnreadable", f"listing the pool's ConfigMaps failed: {error_reason(exc)}")
    metrics.RECONCILES.labels("TraderPool", "ok" if ranking is not None else
                              "invalid" if spec is None else "failed").inc()
    new = st.trader_pool_status(ranking=ranking, ranks_shown=spec.ranks_shown if spec else 10, previous=previous,
                                generation=generation, now=now(), problems=problems, error=error)
    if ranking is None and previous is not None and new == previous:
        return None  # a failure already reported: nothing to write
    before = [r.wallet for r in (previous.ranks if previous else [])]
    wire = new.to_wire()
    wire.setdefault("topTrader", None)  # a merge PATCH keeps what it does not name: clear a gone rank 1
    wire.setdefault("topScore", None)
    await rt.kube.patch_status(namespace, POOLS, name, wire)
    after = [r.wallet for r in new.ranks]
    if ranking is not None and before != after:
        kopf.event(body, type="Normal", reason="RankingChanged",
                   message=f"top ranks now: {', '.join(after[:5]) or 'none'}")
        logger.info("pool ranking changed", extra={"pool": name, "top": after[:3]})
    elif error is not None and (previous is None or not any(
            c.type == st.SCORED and c.reason == error[0] for c in previous.conditions)):
        kopf.event(body, type="Warning", reason=error[0], message=error[1])
    return ranking
