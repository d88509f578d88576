"""The slippage retry policy: which slippage each attempt of a trade is signed with, and when to stop.

Pure logic, no I/O. The ladder (docs/design.md invariant 4, issue 2):

- attempt 1 is signed at ``initial_bps``;
- only an attempt that failed with SLIPPAGE_EXCEEDED raises the next attempt's slippage, by
  ``step_bps``, never above ``cap_bps`` (a retry at the cap still gets a fresh quote);
- BLOCKHASH_EXPIRED (never landed) re-signs at the same slippage, as do failures that happened before
  any broadcast for transient off-chain reasons (RPC_TIMEOUT, RPC_ERROR, QUOTE_UNAVAILABLE);
- every other reason (PROGRAM_ERROR, INSUFFICIENT_FUNDS, RISK_LIMIT, ...) gives up at once;
- no trade ever has more than ``max_attempts`` attempts.

Defaults come from the reference system: 1 % initial, profile caps 0.5 / 1 / 2 %, an absolute cap of
5 % that no configuration can raise, 3 attempts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, Trade
from xorj.errors import InvalidInputError

# The hard ceiling: a policy may lower its absolute cap, never raise it above 5 %.
ABSOLUTE_CAP_BPS = 500
DEFAULT_INITIAL_BPS = 100
DEFAULT_STEP_BPS = 50
DEFAULT_MAX_ATTEMPTS = 3
# The cap when nothing chose one: the TradingStrategy's documented default (spec.slippage.capBps),
# which the operator has always rendered for every executor; an executor run without one falls back
# on it too. (The aggressive profile's cap; a profile, when named, still sets its own.)
DEFAULT_CAP_BPS = 200

RAISE_SLIPPAGE_REASONS = frozenset({ReasonCode.SLIPPAGE_EXCEEDED})
# Retried at the same slippage: the transaction never landed, so the market did not refuse our price.
SAME_SLIPPAGE_REASONS = frozenset(
    {ReasonCode.BLOCKHASH_EXPIRED, ReasonCode.RPC_TIMEOUT, ReasonCode.RPC_ERROR, ReasonCode.QUOTE_UNAVAILABLE}
)
RETRYABLE_REASONS = RAISE_SLIPPAGE_REASONS | SAME_SLIPPAGE_REASONS


class RiskProfile(str, enum.Enum):
    CONSERVATIVE = "conservative"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"


PROFILE_CAP_BPS: dict[RiskProfile, int] = {
    RiskProfile.CONSERVATIVE: 50,
    RiskProfile.MODERATE: 100,
    RiskProfile.AGGRESSIVE: 200,
}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name}: must be an integer, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise InvalidInputError(f"{name}: must be positive, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class SlippagePolicy:
    """Validated on construction; errors name the field and the rule."""

    initial_bps: int = DEFAULT_INITIAL_BPS
    step_bps: int = DEFAULT_STEP_BPS
    cap_bps: int = DEFAULT_CAP_BPS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    absolute_cap_bps: int = ABSOLUTE_CAP_BPS

    def __post_init__(self) -> None:
        for name in ("initial_bps", "step_bps", "cap_bps", "max_attempts", "absolute_cap_bps"):
            _positive_int(f"slippage.{name}", getattr(self, name))
        if self.absolute_cap_bps > ABSOLUTE_CAP_BPS:
            raise InvalidInputError(
                f"slippage.absolute_cap_bps: must be <= {ABSOLUTE_CAP_BPS} (the hard 5% ceiling), "
                f"got {self.absolute_cap_bps}"
            )
        if self.initial_bps > self.cap_bps:
            raise InvalidInputError(
                f"slippage.initial_bps: must be <= cap_bps ({self.cap_bps}), got {self.initial_bps}"
            )
        if self.cap_bps > self.absolute_cap_bps:
            raise InvalidInputError(
                f"slippage.cap_bps: must be <= absolute_cap_bps ({self.absolute_cap_bps}), got {self.cap_bps}"
            )

    @classmethod
    def for_profile(cls, profile: RiskProfile | str, **overrides: int) -> SlippagePolicy:
        """The profile's cap, initial 1 % lowered to that cap, default step and attempts; any field
        may be overridden (and is validated like any other)."""
        try:
            resolved = RiskProfile(profile)
        except ValueError:
            names = ", ".join(p.value for p in RiskProfile)
            raise InvalidInputError(f"slippage.profile: must be one of {names}, got {profile!r}") from None
        cap = overrides.pop("cap_bps", PROFILE_CAP_BPS[resolved])
        initial = overrides.pop("initial_bps", min(DEFAULT_INITIAL_BPS, cap) if isinstance(cap, int) else cap)
        return cls(initial_bps=initial, cap_bps=cap, **overrides)

    def bounded_by(self, max_slippage_bps: int | None) -> SlippagePolicy:
        """This policy under a trade's own slippage bound (a CopyTrade's ``maxSlippageBps``); itself
        when the trade set none (None or 0)."""
        if max_slippage_bps is None or max_slippage_bps == 0:
            return self
        bound = _positive_int("max_slippage_bps", max_slippage_bps)
        cap = min(self.cap_bps, bound)
        return SlippagePolicy(
            initial_bps=min(self.initial_bps, cap),
            step_bps=self.step_bps,
            cap_bps=cap,
            max_attempts=self.max_attempts,
            absolute_cap_bps=self.absolute_cap_bps,
        )


class SlippageAction(str, enum.Enum):
    RETRY = "RETRY"
    GIVE_UP = "GIVE_UP"


@dataclass(frozen=True, slots=True)
class SlippageDecision:
    """What to do after an attempt failed: sign attempt ``next_attempt`` at ``slippage_bps``, or fail
    the trade with ``reason`` (``detail`` says why, for the ledger and the CopyTrade status)."""

    action: SlippageAction
    slippage_bps: int | None
    next_attempt: int | None
    reason: ReasonCode | None
    detail: str

    @property
    def retry(self) -> bool:
        return self.action is SlippageAction.RETRY


def ladder_bps(policy: SlippagePolicy, attempt_number: int) -> int:
    """Attempt ``attempt_number``'s slippage when every earlier attempt failed on slippage."""
    n = _positive_int("attempt_number", attempt_number)
    return min(policy.initial_bps + (n - 1) * policy.step_bps, policy.cap_bps)


def next_slippage(
    policy: SlippagePolicy,
    attempt_number: int,
    last_reason: ReasonCode,
    last_bps: int | None = None,
) -> SlippageDecision:
    """Decide after attempt ``attempt_number`` (1-based) failed with ``last_reason`` at ``last_bps``.

    ``last_bps`` defaults to :func:`ladder_bps` of that attempt, which is right only when no earlier
    retry kept its slippage; callers that know the attempt's slippage should pass it
    (:func:`decide_retry` does, from the trade).
    """
    n = _positive_int("attempt_number", attempt_number)
    if not isinstance(last_reason, ReasonCode):
        raise InvalidInputError(f"last_reason: must be a ReasonCode, got {last_reason!r}")
    current = ladder_bps(policy, n) if last_bps is None else _positive_int("last_bps", last_bps)
    # A slippage above the cap (an attempt signed under an older, looser policy) is brought back down.
    current = min(current, policy.cap_bps, policy.absolute_cap_bps)
    if last_reason not in RETRYABLE_REASONS:
        return SlippageDecision(
            SlippageAction.GIVE_UP, None, None, last_reason, f"{last_reason.value} is not retried"
        )
    if n >= policy.max_attempts:
        return SlippageDecision(
            SlippageAction.GIVE_UP,
            None,
            None,
            last_reason,
            f"{last_reason.value} on attempt {n}: max_attempts {policy.max_attempts} reached",
        )
    if last_reason in RAISE_SLIPPAGE_REASONS:
        raised = min(current + policy.step_bps, policy.cap_bps)
        detail = (
            f"{last_reason.value} at {current} bps: retry at {raised} bps"
            if raised > current
            else f"{last_reason.value} at {current} bps: retry at the cap {raised} bps with a fresh quote"
        )
        return SlippageDecision(SlippageAction.RETRY, raised, n + 1, None, detail)
    return SlippageDecision(
        SlippageAction.RETRY, current, n + 1, None, f"{last_reason.value}: re-sign at {current} bps"
    )


def decide_retry(policy: SlippagePolicy, trade: Trade) -> SlippageDecision:
    """:func:`next_slippage` for a trade whose last attempt is resolved and did not land, with the
    policy bounded by the trade's own ``max_slippage_bps``, on the attempt's decisive reason (an
    expired attempt the RPC never accepted is judged by its send failure)."""
    last: Attempt | None = trade.last_attempt
    if last is None or not last.is_resolved or last.outcome is AttemptOutcome.LANDED:
        raise InvalidInputError(
            f"trade {trade.trade_id}: decide_retry needs a last attempt that is resolved and did not land"
        )
    return next_slippage(policy.bounded_by(trade.max_slippage_bps), last.attempt_no, last.decisive_reason,
                         last.slippage_bps)


__all__ = [
    "ABSOLUTE_CAP_BPS",
    "DEFAULT_CAP_BPS",
    "DEFAULT_INITIAL_BPS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_STEP_BPS",
    "PROFILE_CAP_BPS",
    "RAISE_SLIPPAGE_REASONS",
    "RETRYABLE_REASONS",
    "SAME_SLIPPAGE_REASONS",
    "RiskProfile",
    "SlippageAction",
    "SlippageDecision",
    "SlippagePolicy",
    "decide_retry",
    "ladder_bps",
    "next_slippage",
]
