"""The trade state machine: PENDING -> SUBMITTED -> CONFIRMED | FAILED.

Pure logic, no I/O. The ledger stores exactly these states and reason codes; every transition the
ledger writes is first checked here. (Contract shared by ledger, executor and operator: do not rename.)
"""

from __future__ import annotations

import enum

from xorj.errors import IllegalTransitionError


class TradeState(str, enum.Enum):
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TradeState.CONFIRMED, TradeState.FAILED})

# The only transitions that exist. PENDING -> FAILED covers refusals before any send (risk limits,
# cancellation, a quote that cannot be had); SUBMITTED -> SUBMITTED is not a transition: a new attempt
# inside SUBMITTED is recorded as an attempt, not a state change.
ALLOWED_TRANSITIONS: dict[TradeState, frozenset[TradeState]] = {
    TradeState.PENDING: frozenset({TradeState.SUBMITTED, TradeState.FAILED}),
    TradeState.SUBMITTED: frozenset({TradeState.CONFIRMED, TradeState.FAILED}),
    TradeState.CONFIRMED: frozenset(),
    TradeState.FAILED: frozenset(),
}


class ReasonCode(str, enum.Enum):
    """Why an attempt or a trade failed. Every failure class has exactly one code."""

    RPC_TIMEOUT = "RPC_TIMEOUT"
    RPC_ERROR = "RPC_ERROR"
    LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    BLOCKHASH_EXPIRED = "BLOCKHASH_EXPIRED"
    RISK_LIMIT = "RISK_LIMIT"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    PROGRAM_ERROR = "PROGRAM_ERROR"
    MALFORMED_RESPONSE = "MALFORMED_RESPONSE"
    QUOTE_UNAVAILABLE = "QUOTE_UNAVAILABLE"
    CANCELLED = "CANCELLED"


class AttemptOutcome(str, enum.Enum):
    """The fate of one signed transaction. PENDING until the chain (or expiry) decides."""

    PENDING = "PENDING"
    LANDED = "LANDED"  # landed and succeeded: the trade is CONFIRMED by this attempt
    FAILED_ON_CHAIN = "FAILED_ON_CHAIN"  # landed with an error (fee paid): slippage or program error
    EXPIRED = "EXPIRED"  # blockhash expired with the signature unknown: never landed, safe to re-sign
    NOT_SENT = "NOT_SENT"  # refused before broadcast (e.g. simulation said insufficient funds)


def check_transition(current: TradeState, target: TradeState) -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> target`` exists."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransitionError(f"illegal trade transition {current.value} -> {target.value}")
