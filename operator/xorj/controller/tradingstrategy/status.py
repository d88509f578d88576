"""A TradingStrategy's status, computed from what was observed: its executor Deployment, the ledger's
trade counts and the traders it follows. Pure: no I/O; the clock is a parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from xorj.controller.conditions import condition_status, set_condition
from xorj.controller.models import (
    Condition,
    ConditionStatus,
    FollowedTrader,
    RankedTrader,
    TopNSelection,
    TradeCounts,
    TradingStrategySpec,
    TradingStrategyStatus,
)
from xorj.domain.trades import TradeState

# condition types
READY = "Ready"
EXECUTORS_AVAILABLE = "ExecutorsAvailable"
LEDGER_REACHABLE = "LedgerReachable"
PAUSED = "Paused"
# The spec passed the operator's own checks (models, endpoints, Secret bindings): executors may be built.
SPEC_ACCEPTED = "SpecAccepted"
# The children (ConfigMap, Service, PDB, Deployment) were applied; False with the API server's refusal.
CHILDREN_APPLIED = "ChildrenApplied"


class ScoredTrader(Protocol):
    """A trader's latest Trust Score, as far as choosing whom to follow needs it (the ledger's
    ``StoredTraderScore`` is one; the builders do not depend on the ledger)."""

    @property
    def wallet(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def status(self) -> str: ...
    @property
    def normalization(self) -> str | None: ...


@dataclass(frozen=True)
class DeploymentObservation:
    """What the executor Deployment reports (its .status), or absent=True when it does not exist."""

    desired: int = 0
    replicas: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    absent: bool = False

    @classmethod
    def from_status(cls, desired: int, status: Mapping[str, Any] | None) -> DeploymentObservation:
        status = status or {}
        return cls(
            desired=desired,
            replicas=int(status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
        )


def followed_traders(
    spec: TradingStrategySpec, scores: Sequence[ScoredTrader],
    pool_ranks: Sequence[RankedTrader] | None = None,
) -> list[FollowedTrader]:
    """Explicit traders with whatever score the ledger has for them, or the top N above the threshold:
    of the named TraderPool's ranking (``pool_ranks``, its status; None: the pool is not there or not
    scored yet, so nobody), or without a pool of every score in the ledger."""
    if spec.top_n is not None and spec.top_n.pool is not None:
        selection = spec.top_n
        chosen = [r for r in (pool_ranks or ()) if r.status == "ELIGIBLE" and r.score >= selection.min_trust_score]
        chosen.sort(key=lambda r: (r.rank, r.wallet))
        return [FollowedTrader(wallet=r.wallet, trust_score=r.score, status=r.status)
                for r in chosen[: selection.count]]
    by_wallet = {s.wallet: s for s in scores}
    if spec.traders is not None:
        out = []
        for wallet in spec.traders:
            score = by_wallet.get(wallet)
            out.append(
                FollowedTrader(
                    wallet=wallet,
                    trust_score=score.score if score else None,
                    status=score.status if score else "NO_DATA",
                )
            )
        return out
    selection: TopNSelection = spec.top_n  # type: ignore[assignment]  # the XOR rule guarantees it
    eligible = [
        s
        for s in scores
        if s.status == "ELIGIBLE"
        and s.score >= selection.min_trust_score
        and (s.normalization is None or s.normalization == selection.normalization.value)
    ]
    eligible.sort(key=lambda s: (-s.score, s.wallet))
    return [
        FollowedTrader(wallet=s.wallet, trust_score=s.score, status=s.status)
        for s in eligible[: selection.count]
    ]


def trade_counts(counts: Mapping[TradeState, int] | Mapping[str, int]) -> TradeCounts:
    def get(state: TradeState) -> int:
        return int(counts.get(state, counts.get(state.value, 0)))  # type: ignore[call-overload]

    return TradeCounts(
        pending=get(TradeState.PENDING),
        submitted=get(TradeState.SUBMITTED),
        confirmed=get(TradeState.CONFIRMED),
        failed=get(TradeState.FAILED),
    )


def strategy_status(
    *,
    spec: TradingStrategySpec,
    generation: int | None,
    deployment: DeploymentObservation,
    ledger_error: str | None,
    counts: TradeCounts | None,
    followed: Sequence[FollowedTrader] | None,
    previous: TradingStrategyStatus | None,
    config_hash: str,
    now: datetime,
    apply_error: str | None = None,
    vault_count: int | None = None,
) -> TradingStrategyStatus:
    """The full status of an accepted strategy. ``counts``/``followed`` None means: keep the previous
    values (the ledger could not be read, and stale figures beat zeros that look like facts).
    ``apply_error``: the (redacted) reason the children could not be applied, if they could not."""
    prev = previous or TradingStrategyStatus()
    conds = prev.conditions

    def cond(type_: str, ok: bool, reason: str, message: str) -> Condition:
        return set_condition(
            conds, type_, condition_status(ok), reason, message, now=now, generation=generation
        )

    paused = cond(
        PAUSED,
        spec.paused,
        "PausedBySpec" if spec.paused else "Running",
        "spec.paused is true: executors scaled to zero"
        if spec.paused
        else "executors run",
    )
    if deployment.absent:
        exec_ok, exec_reason, exec_msg = False, "DeploymentMissing", "executor Deployment not found"
    elif spec.paused:
        exec_ok = deployment.replicas == 0
        exec_reason = "ScaledToZero" if exec_ok else "ScalingDown"
        exec_msg = f"{deployment.replicas} executor(s) still running" if not exec_ok else "paused"
    else:
        exec_ok = deployment.available >= deployment.desired and deployment.updated >= deployment.desired
        exec_reason = "MinimumReplicasAvailable" if exec_ok else "ReplicasUnavailable"
        exec_msg = f"{deployment.available}/{deployment.desired} executor(s) available"
    executors = cond(EXECUTORS_AVAILABLE, exec_ok, exec_reason, exec_msg)
    ledger = cond(
        LEDGER_REACHABLE,
        ledger_error is None,
        "Connected" if ledger_error is None else "LedgerUnavailable",
        "ledger answered" if ledger_error is None else ledger_error,
    )
    accepted = cond(SPEC_ACCEPTED, True, "Accepted", "the operator accepted the spec")
    applied = cond(
        CHILDREN_APPLIED,
        apply_error is None,
        "Applied" if apply_error is None else "ApplyFailed",
        "executor Deployment, ConfigMap, Service and PodDisruptionBudget applied"
        if apply_error is None
        else apply_error,
    )
    ready_ok = exec_ok and ledger_error is None and apply_error is None
    if ready_ok:
        ready_reason, ready_msg = ("Paused", "paused by spec") if spec.paused else ("Ready", "ready")
    elif apply_error is not None:
        ready_reason, ready_msg = "ApplyFailed", apply_error
    elif ledger_error is not None:
        ready_reason, ready_msg = "LedgerUnavailable", "the ledger cannot be reached"
    else:
        ready_reason, ready_msg = exec_reason, exec_msg
    ready = cond(READY, ready_ok, ready_reason, ready_msg)

    counts = counts if counts is not None else prev.trades
    followed_list = list(followed) if followed is not None else list(prev.followed_traders)
    return TradingStrategyStatus(
        observed_generation=generation,
        conditions=[ready, accepted, applied, executors, ledger, paused],
        replicas=deployment.replicas,
        ready_replicas=deployment.ready,
        available_replicas=deployment.available,
        executors=f"{deployment.ready}/{deployment.desired}",
        followed_traders=followed_list,
        followed_trader_count=len(followed_list),
        trades=counts,
        trades_summary=counts.summary(),
        vault_count=vault_count if vault_count is not None else prev.vault_count,
        config_hash=config_hash,
    )


def refused_strategy_status(
    *,
    previous: TradingStrategyStatus | None,
    generation: int | None,
    reason: str,
    message: str,
    now: datetime,
) -> TradingStrategyStatus:
    """The status of a strategy the operator refuses (no executor is built for it): SpecAccepted and
    Ready False with the refusal; the other figures are kept as they were."""
    prev = previous or TradingStrategyStatus()

    def cond(type_: str) -> Condition:
        return set_condition(prev.conditions, type_, ConditionStatus.FALSE, reason, message, now=now,
                             generation=generation)

    kept = [c for c in prev.conditions if c.type not in (READY, SPEC_ACCEPTED)]
    return prev.model_copy(update={
        "observed_generation": generation,
        "conditions": [cond(READY), cond(SPEC_ACCEPTED), *kept],
    })


def followed_change(before: Sequence[FollowedTrader], after: Sequence[FollowedTrader]) -> str | None:
    """The message of the FollowedTradersChanged Event, or None when the followed set is the same."""
    old, new = [t.wallet for t in before], [t.wallet for t in after]
    if set(old) == set(new):
        return None
    started = [w for w in new if w not in old]
    stopped = [w for w in old if w not in new]
    parts = [f"following {len(new)} trader(s)"]
    if started:
        parts.append("now following " + ", ".join(started))
    if stopped:
        parts.append("no longer following " + ", ".join(stopped))
    return "; ".join(parts)


