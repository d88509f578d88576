"""A Vault's status: whether it is in the ledger's vault registry (Registered) and gets trades (Ready),
with the reason. Pure: no I/O; the clock is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from xorj.controller.conditions import condition_status, set_condition
from xorj.controller.models import ConditionStatus, TradingStrategySpec, VaultSpec, VaultStatus

# condition types
REGISTERED = "Registered"
READY = "Ready"

# condition reasons
ACTIVE = "Active"
PAUSED = "Paused"
LIMITS_NOT_TIGHTER = "LimitsNotTighter"
STRATEGY_NOT_FOUND = "StrategyNotFound"
KEY_IN_USE = "KeyInUse"


@dataclass(frozen=True)
class VaultOutcome:
    """What the reconcile found: ``registered`` in the ledger, and Ready's reason and message."""

    registered: bool
    reason: str
    message: str

    @property
    def ready(self) -> bool:
        return self.registered and self.reason in (ACTIVE, LIMITS_NOT_TIGHTER)


def registered_outcome(spec: VaultSpec, strategy: TradingStrategySpec) -> VaultOutcome:
    """A registered vault's Ready: paused, active, or active with overrides that do not tighten the
    strategy's limits (they have no effect: the strategy's own limit is checked as well)."""
    if spec.paused:
        return VaultOutcome(True, PAUSED, "spec.paused: no new trades for this vault")
    looser = spec.limits.to_domain(paused=False).looser_than(strategy.risk.to_domain())
    if looser:
        fields = ", ".join(f"spec.limits.{f}" for f in looser)
        return VaultOutcome(True, LIMITS_NOT_TIGHTER,
                            f"{fields} above the strategy's spec.risk: the strategy's limit applies (a vault's "
                            "limits may only tighten it)")
    return VaultOutcome(True, ACTIVE, f"gets a trade for each lead swap of TradingStrategy {spec.strategy}")


def vault_status(*, outcome: VaultOutcome, previous: VaultStatus | None, generation: int | None,
                 now: datetime) -> VaultStatus:
    prev = previous.conditions if previous is not None else []
    registered = set_condition(
        prev, REGISTERED, condition_status(outcome.registered), "InLedger" if outcome.registered else outcome.reason,
        "in the ledger's vault registry" if outcome.registered else outcome.message, now=now, generation=generation)
    ready = set_condition(prev, READY, ConditionStatus.TRUE if outcome.ready else ConditionStatus.FALSE,
                          outcome.reason, outcome.message, now=now, generation=generation)
    return VaultStatus(observed_generation=generation, conditions=[registered, ready])
