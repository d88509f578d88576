"""The trade model and its state machine: PENDING -> SUBMITTED -> CONFIRMED | FAILED.

Pure logic, no I/O. :class:`Trade` and :class:`Attempt` are the one trade model of the package: the
ledger builds them from its rows as they are (their fields are its columns), the executor and the
operator work on them. Every state change the ledger writes is computed here first (:func:`submit`,
:func:`resolve_attempt`, :func:`land`, :func:`confirm`, :func:`fail`, :func:`cancel`); the ledger's
SQL constraints re-check the same rules as a safety net. (Contract shared by ledger, executor and
operator: do not rename.)
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from xorj.errors import IllegalTransitionError, InvalidInputError


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
    # The swap API's transaction does something the trade does not need (drains, approves, hands
    # over authority, wrong mint or amount, excess fees, a validity window the RPC disputes): never signed.
    SWAP_REJECTED = "SWAP_REJECTED"
    # The quote itself is unusable for this trade (non-finite numbers, a minimum out below the
    # slippage bound, a price impact past the limit).
    QUOTE_REJECTED = "QUOTE_REJECTED"
    # The trade's vault is not the one whose key this executor holds.
    VAULT_MISMATCH = "VAULT_MISMATCH"
    # Processing the trade raised unexpectedly too many times: failed instead of reclaimed forever.
    POISON_TRADE = "POISON_TRADE"
    # The trade's lead trader is not one the strategy follows.
    LEADER_NOT_FOLLOWED = "LEADER_NOT_FOLLOWED"


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


# --------------------------------------------------------------------------------------------------
# Typed models and pure transitions. Everything below returns new objects; nothing mutates.
# --------------------------------------------------------------------------------------------------

# A slippage bound is a share of the quoted output: 10,000 bps is 100 %, beyond which it means nothing.
MAX_BPS = 10_000

# Outcomes after which a new attempt may be signed: the earlier transaction can no longer land
# (EXPIRED, NOT_SENT) or landed with an error that left the swap undone (FAILED_ON_CHAIN).
RETRYABLE_OUTCOMES = frozenset(
    {AttemptOutcome.EXPIRED, AttemptOutcome.FAILED_ON_CHAIN, AttemptOutcome.NOT_SENT}
)

# Which reasons may explain which attempt outcome. LANDED needs none. An expired blockhash has exactly
# one explanation. FAILED_ON_CHAIN is what the program said. NOT_SENT may be anything that stopped us
# before the broadcast -- but never use it after a send whose fate is unknown (an RPC timeout on
# sendTransaction does NOT mean not sent): such an attempt stays PENDING until it lands or expires.
ATTEMPT_REASONS: dict[AttemptOutcome, frozenset[ReasonCode]] = {
    AttemptOutcome.PENDING: frozenset(),
    AttemptOutcome.LANDED: frozenset(),
    AttemptOutcome.EXPIRED: frozenset({ReasonCode.BLOCKHASH_EXPIRED}),
    AttemptOutcome.FAILED_ON_CHAIN: frozenset(
        {ReasonCode.SLIPPAGE_EXCEEDED, ReasonCode.PROGRAM_ERROR, ReasonCode.INSUFFICIENT_FUNDS}
    ),
    AttemptOutcome.NOT_SENT: frozenset(ReasonCode) - {ReasonCode.BLOCKHASH_EXPIRED},
}


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInputError(f"{name}: must be a timezone-aware datetime (UTC), got naive {value!r}")


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidInputError(
            f"{name}: must be a non-empty string without surrounding whitespace, got {value!r}"
        )


def _require_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    # bool is an int in Python; a True amount is a bug, not one base unit.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name}: must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name}: must be <= {maximum}, got {value}")


class IdempotencyKey(NamedTuple):
    """What makes two copy intents the same trade: the ledger's UNIQUE key."""

    strategy: str
    vault: str
    lead_signature: str

    def __str__(self) -> str:
        # ':' is refused inside components, so this text form is unambiguous (injective).
        return f"{self.strategy}:{self.vault}:{self.lead_signature}"


def idempotency_key(strategy: str, vault: str, lead_signature: str) -> IdempotencyKey:
    """The key under which a lead trade is copied at most once per (strategy, vault).

    Components are taken verbatim (base58 is case-sensitive) and refused, not normalised, when they
    carry whitespace or ':': silently trimming on one path and not another would make duplicates.
    """
    for name, value in (("strategy", strategy), ("vault", vault), ("lead_signature", lead_signature)):
        _require_text(name, value)
        if ":" in value or any(ch.isspace() for ch in value):
            raise InvalidInputError(f"{name}: must not contain ':' or whitespace, got {value!r}")
    return IdempotencyKey(strategy, vault, lead_signature)


def _as_enum(name: str, enum_type: type[enum.Enum], value: object, *, optional: bool = False) -> Any:
    """``value`` as a member of ``enum_type``: a member, or its stored text (a ledger column)."""
    if value is None and optional:
        return None
    try:
        return enum_type(value)
    except ValueError:
        names = ", ".join(str(m.value) for m in enum_type)
        raise InvalidInputError(f"{name}: must be one of {names}, got {value!r}") from None


def _as_int(name: str, value: object, *, optional: bool = False) -> Any:
    """``value`` as an int: an int, or a whole Decimal (numeric(20,0) columns hold u64 amounts)."""
    if value is None and optional:
        return None
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


def _require_optional_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if value is not None:
        _require_int(name, value, minimum=minimum, maximum=maximum)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One signed transaction of a trade, stored before its first send (write-ahead). Its signature is
    known before the send; its raw bytes are what every rebroadcast sends (never rebuilt ones).

    The fields are the ledger's columns of ``attempts``: the ledger builds this from a row as is.
    """

    trade_id: int
    attempt_no: int  # 1-based, consecutive within a trade
    signature: str
    raw_tx: bytes
    last_valid_block_height: int
    slippage_bps: int
    quote_out_amount: int | None = None
    outcome: AttemptOutcome = AttemptOutcome.PENDING
    reason: ReasonCode | None = None
    # For an EXPIRED attempt the RPC never accepted: the send failure seen most (RPC_TIMEOUT,
    # INSUFFICIENT_FUNDS, ...). It, not the expiry, decides whether a new attempt is worth signing.
    send_failure: ReasonCode | None = None
    detail: str | None = None
    created_at: datetime | None = None
    resolved_at: datetime | None = None
    attempt_id: int | None = None  # the ledger's row id; None until stored

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "outcome", _as_enum("attempt.outcome", AttemptOutcome, self.outcome))
        set_(self, "reason", _as_enum("attempt.reason", ReasonCode, self.reason, optional=True))
        set_(self, "send_failure", _as_enum("attempt.send_failure", ReasonCode, self.send_failure, optional=True))
        set_(self, "quote_out_amount", _as_int("attempt.quote_out_amount", self.quote_out_amount, optional=True))
        if isinstance(self.raw_tx, (bytearray, memoryview)):
            set_(self, "raw_tx", bytes(self.raw_tx))
        _require_int("attempt.trade_id", self.trade_id, minimum=1)
        _require_optional_int("attempt.attempt_id", self.attempt_id, minimum=1)
        _require_int("attempt.attempt_no", self.attempt_no, minimum=1)
        _require_text("attempt.signature", self.signature)
        if not isinstance(self.raw_tx, bytes) or not self.raw_tx:
            raise InvalidInputError("attempt.raw_tx: must be the non-empty signed transaction bytes")
        _require_int("attempt.slippage_bps", self.slippage_bps, minimum=0, maximum=MAX_BPS)
        _require_int("attempt.last_valid_block_height", self.last_valid_block_height, minimum=0)
        _require_optional_int("attempt.quote_out_amount", self.quote_out_amount, minimum=1)
        allowed = ATTEMPT_REASONS[self.outcome]
        if allowed and self.reason is None:
            raise InvalidInputError(f"attempt.reason: required when outcome is {self.outcome.value}")
        if not allowed and self.reason is not None:
            raise InvalidInputError(
                f"attempt.reason: must be empty when outcome is {self.outcome.value}, got {self.reason.value}"
            )
        if self.reason is not None and self.reason not in allowed:
            raise InvalidInputError(
                f"attempt.reason: {self.reason.value} cannot explain outcome {self.outcome.value} "
                f"(allowed: {', '.join(sorted(r.value for r in allowed))})"
            )
        if self.send_failure is not None and self.outcome is not AttemptOutcome.EXPIRED:
            raise InvalidInputError(
                f"attempt.send_failure: only an EXPIRED attempt has one (outcome {self.outcome.value})"
            )
        _require_aware("attempt.created_at", self.created_at)
        _require_aware("attempt.resolved_at", self.resolved_at)

    @property
    def is_pending(self) -> bool:
        return self.outcome is AttemptOutcome.PENDING

    @property
    def is_resolved(self) -> bool:
        return not self.is_pending

    @property
    def decisive_reason(self) -> ReasonCode:
        """The reason the retry policy decides on. An expired attempt the RPC never accepted is judged
        by why it was refused: a persistent timeout gives up as RPC_TIMEOUT, a preflight slippage
        failure raises slippage, insufficient funds gives up at once."""
        if self.outcome is AttemptOutcome.EXPIRED and self.send_failure in SEND_FAILURE_CAUSES:
            return self.send_failure
        return self.reason or ReasonCode.PROGRAM_ERROR


# The send failures that decide the retry of an attempt the RPC never accepted (see decisive_reason).
SEND_FAILURE_CAUSES = frozenset(
    {ReasonCode.RPC_TIMEOUT, ReasonCode.RPC_ERROR, ReasonCode.INSUFFICIENT_FUNDS,
     ReasonCode.SLIPPAGE_EXCEEDED, ReasonCode.PROGRAM_ERROR}
)


@dataclass(frozen=True, slots=True)
class Trade:
    """One copy of one lead trade into one vault, with its attempts (oldest first).

    The fields are the ledger's columns of ``trades`` (plus the attempts): the ledger builds this from
    a row as is. Construction checks every invariant, so a Trade rebuilt from ledger rows is either
    consistent or refused with the broken rule named. Amounts are integers in the mint's base units;
    USD values are Decimals; timestamps are timezone-aware (the database clock).
    """

    trade_id: int
    strategy: str
    vault: str
    lead_signature: str
    lead_trader: str
    input_mint: str
    output_mint: str
    amount: int  # base units of input_mint (lamports for SOL, 10^-decimals of an SPL token)
    max_slippage_bps: int | None = None  # the CopyTrade's slippage bound, if it set one
    notional_usd: Decimal | None = None  # USD value stated at admission
    copytrade: str | None = None  # "namespace/name" of the CopyTrade resource mirroring this trade
    state: TradeState = TradeState.PENDING
    reason: ReasonCode | None = None
    detail: str | None = None
    final_signature: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: tuple[Attempt, ...] = ()
    # When the risk gate approved the trade and counted it against its vault's daily limits (None:
    # not yet approved, or sent before approvals were recorded).
    risk_reserved_at: datetime | None = None
    # The notional (USD) the risk gate approved it at: computed by the executor from the price source,
    # never the CopyTrade's claim (None until approved).
    risk_reserved_usd: Decimal | None = None
    # Times an executor's processing of it raised unexpectedly (the poison-trade counter).
    crash_count: int = 0
    # The token of the trade's latest claim (None: never claimed). Every executor write on the trade
    # must present it: a claim or takeover issues a larger one, which fences out the earlier holder
    # even when it has the same owner name.
    fencing_token: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "state", _as_enum("trade.state", TradeState, self.state))
        set_(self, "reason", _as_enum("trade.reason", ReasonCode, self.reason, optional=True))
        set_(self, "amount", _as_int("trade.amount", self.amount))
        if not isinstance(self.attempts, tuple):
            # A list would make the frozen trade mutable through the back door.
            set_(self, "attempts", tuple(self.attempts))
        _require_int("trade.trade_id", self.trade_id, minimum=1)
        for name in ("strategy", "vault", "lead_signature", "lead_trader", "input_mint", "output_mint"):
            _require_text(f"trade.{name}", getattr(self, name))
        if self.input_mint == self.output_mint:
            raise InvalidInputError(f"trade.output_mint: must differ from input_mint ({self.input_mint})")
        _require_int("trade.amount", self.amount, minimum=1)
        _require_optional_int("trade.max_slippage_bps", self.max_slippage_bps, minimum=0, maximum=MAX_BPS)
        for name in ("notional_usd", "risk_reserved_usd"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value < 0):
                raise InvalidInputError(f"trade.{name}: must be a finite Decimal >= 0 or None, got {value!r}")
        _require_int("trade.crash_count", self.crash_count, minimum=0)
        _require_optional_int("trade.fencing_token", self.fencing_token, minimum=1)
        for ts in ("lease_expires_at", "created_at", "updated_at", "submitted_at", "finished_at", "risk_reserved_at"):
            _require_aware(f"trade.{ts}", getattr(self, ts))
        violation = invariant_violation(self)
        if violation is not None:
            raise InvalidInputError(violation)

    @property
    def key(self) -> IdempotencyKey:
        return IdempotencyKey(self.strategy, self.vault, self.lead_signature)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def pending_attempt(self) -> Attempt | None:
        """The one attempt whose fate is still open, if any (there is never more than one)."""
        last = self.last_attempt
        return last if last is not None and last.is_pending else None

    def attempt_by_signature(self, signature: str) -> Attempt | None:
        return next((a for a in self.attempts if a.signature == signature), None)


def invariant_violation(trade: Trade) -> str | None:
    """The first broken trade invariant as a sentence naming the field and rule, or None.

    The invariants (docs/design.md): attempts numbered 1..n with distinct signatures, all of this
    trade; at most one unresolved attempt, and only as the last; at most one LANDED attempt; PENDING
    has no attempts; SUBMITTED has at least one; CONFIRMED has exactly one LANDED attempt, the last,
    whose signature is final; FAILED has a reason and no unresolved or LANDED attempt; only terminal
    trades carry a finish time, and only FAILED trades a reason; a terminal trade holds no lease.
    """
    attempts = trade.attempts
    for index, attempt in enumerate(attempts, start=1):
        if not isinstance(attempt, Attempt):
            return f"trade.attempts[{index - 1}]: must be an Attempt, got {type(attempt).__name__}"
        if attempt.attempt_no != index:
            return (f"trade.attempts: attempt_no must run 1..n in order, found {attempt.attempt_no} "
                    f"at position {index}")
        if attempt.trade_id != trade.trade_id:
            return f"trade.attempts: attempt {attempt.signature} belongs to trade {attempt.trade_id}"
    signatures = [a.signature for a in attempts]
    if len(set(signatures)) != len(signatures):
        return "trade.attempts: signatures must be distinct"
    if any(a.is_pending for a in attempts[:-1]):
        return "trade.attempts: only the last attempt may be unresolved (at most one in flight)"
    landed = [a for a in attempts if a.outcome is AttemptOutcome.LANDED]
    if len(landed) > 1:
        return f"trade.attempts: at most one LANDED attempt, found {len(landed)}"
    if landed and landed[0] is not attempts[-1]:
        return "trade.attempts: no attempt may follow a LANDED attempt"
    if trade.state is TradeState.PENDING and attempts:
        return "trade.attempts: a PENDING trade has no attempts"
    if trade.state is not TradeState.PENDING and trade.state is not TradeState.FAILED and not attempts:
        return f"trade.attempts: a {trade.state.value} trade has at least one attempt"
    if trade.state is TradeState.CONFIRMED:
        if not landed:
            return "trade.state: CONFIRMED requires exactly one LANDED attempt"
        if trade.final_signature != landed[0].signature:
            return "trade.final_signature: must be the signature of the LANDED attempt"
    elif trade.final_signature is not None:
        return f"trade.final_signature: only a CONFIRMED trade has one (state {trade.state.value})"
    if trade.state is TradeState.FAILED:
        if trade.reason is None:
            return "trade.reason: a FAILED trade must have a reason"
        if trade.pending_attempt is not None:
            return "trade.state: a trade with an unresolved attempt cannot be FAILED (it may still land)"
        if landed:
            return "trade.state: a trade with a LANDED attempt cannot be FAILED (it must be CONFIRMED)"
    elif trade.reason is not None:
        return f"trade.reason: only a FAILED trade has a reason (state {trade.state.value})"
    if trade.finished_at is not None and not trade.state.is_terminal:
        return f"trade.finished_at: only a CONFIRMED or FAILED trade has one (state {trade.state.value})"
    if trade.state.is_terminal and trade.lease_owner is not None and trade.lease_expires_at is not None:
        return f"trade.lease_owner: a {trade.state.value} trade holds no lease"
    return None


def new_trade(
    *,
    trade_id: int,
    strategy: str,
    vault: str,
    lead_trader: str,
    lead_signature: str,
    input_mint: str,
    output_mint: str,
    amount: int,
    max_slippage_bps: int | None = None,
    at: datetime,
) -> Trade:
    """A PENDING trade created at ``at``."""
    _require_aware("at", at)
    idempotency_key(strategy, vault, lead_signature)  # same component rules as the ledger key
    return Trade(
        trade_id=trade_id,
        strategy=strategy,
        vault=vault,
        lead_trader=lead_trader,
        lead_signature=lead_signature,
        input_mint=input_mint,
        output_mint=output_mint,
        amount=amount,
        max_slippage_bps=max_slippage_bps,
        created_at=at,
        updated_at=at,
    )


def _refuse(trade: Trade, action: str, rule: str) -> IllegalTransitionError:
    return IllegalTransitionError(f"trade {trade.trade_id}: cannot {action} in state {trade.state.value}: {rule}")


def submit(trade: Trade, attempt: Attempt, *, at: datetime, max_attempts: int | None = None) -> Trade:
    """Record a freshly signed attempt (before its first send): PENDING -> SUBMITTED, or a new attempt
    while SUBMITTED once the previous one is resolved EXPIRED / FAILED_ON_CHAIN / NOT_SENT.

    ``attempt`` must be unresolved, numbered ``len(trade.attempts) + 1``, with a signature new to the
    trade and slippage within ``trade.max_slippage_bps`` (when set); ``max_attempts`` if given.
    """
    _require_aware("at", at)
    if trade.state.is_terminal:
        raise _refuse(trade, "submit an attempt", "terminal states are absorbing")
    if trade.state is not TradeState.SUBMITTED:
        check_transition(trade.state, TradeState.SUBMITTED)
    else:
        last = trade.last_attempt
        assert last is not None  # invariant: SUBMITTED has an attempt
        if last.is_pending:
            raise _refuse(trade, "submit an attempt", f"attempt {last.signature} is still unresolved")
        if last.outcome not in RETRYABLE_OUTCOMES:
            raise _refuse(
                trade, "submit an attempt", f"attempt {last.signature} is {last.outcome.value}, confirm it instead"
            )
    if attempt.is_resolved:
        raise InvalidInputError(f"attempt.outcome: a new attempt must be PENDING, got {attempt.outcome.value}")
    if attempt.trade_id != trade.trade_id:
        raise InvalidInputError(f"attempt.trade_id: must be {trade.trade_id}, got {attempt.trade_id}")
    expected = len(trade.attempts) + 1
    if attempt.attempt_no != expected:
        raise InvalidInputError(f"attempt.attempt_no: must be {expected} (next in sequence), got {attempt.attempt_no}")
    if max_attempts is not None and attempt.attempt_no > max_attempts:
        raise _refuse(trade, "submit an attempt", f"attempt {attempt.attempt_no} exceeds max_attempts {max_attempts}")
    if trade.attempt_by_signature(attempt.signature) is not None:
        raise InvalidInputError(f"attempt.signature: {attempt.signature} is already an attempt of this trade")
    if trade.max_slippage_bps and attempt.slippage_bps > trade.max_slippage_bps:
        raise InvalidInputError(
            f"attempt.slippage_bps: {attempt.slippage_bps} exceeds trade max_slippage_bps {trade.max_slippage_bps}"
        )
    recorded = dataclasses.replace(attempt, created_at=attempt.created_at or at, resolved_at=None)
    return dataclasses.replace(
        trade,
        state=TradeState.SUBMITTED,
        attempts=(*trade.attempts, recorded),
        updated_at=at,
        submitted_at=trade.submitted_at or at,
    )


def resolve_attempt(
    trade: Trade,
    signature: str,
    outcome: AttemptOutcome,
    reason: ReasonCode | None = None,
    detail: str | None = None,
    *,
    send_failure: ReasonCode | None = None,
    at: datetime,
) -> Trade:
    """Record what became of the unresolved attempt ``signature``. The trade stays SUBMITTED: a LANDED
    attempt is then confirmed with :func:`confirm` (or use :func:`land`), a failed one retried or
    failed by the caller. EXPIRED defaults its reason to BLOCKHASH_EXPIRED. A resolved attempt is
    never resolved again."""
    _require_aware("at", at)
    if not isinstance(outcome, AttemptOutcome) or outcome is AttemptOutcome.PENDING:
        raise InvalidInputError(
            f"outcome: an attempt is resolved to LANDED, FAILED_ON_CHAIN, EXPIRED or NOT_SENT, got {outcome!r}"
        )
    if trade.state.is_terminal:
        raise _refuse(trade, "resolve an attempt", "terminal states are absorbing")
    attempt = trade.attempt_by_signature(signature)
    if attempt is None:
        raise InvalidInputError(f"signature: {signature} is not an attempt of trade {trade.trade_id}")
    if attempt.is_resolved:
        raise _refuse(
            trade, "resolve an attempt",
            f"attempt {signature} is already {attempt.outcome.value}; it cannot become {outcome.value}",
        )
    if trade.state is not TradeState.SUBMITTED:  # cannot happen: an unresolved attempt makes it SUBMITTED
        raise _refuse(trade, "resolve an attempt", "only a SUBMITTED trade has an unresolved attempt")
    if outcome is AttemptOutcome.EXPIRED and reason is None:
        reason = ReasonCode.BLOCKHASH_EXPIRED
    resolved = dataclasses.replace(
        attempt, outcome=outcome, reason=reason, send_failure=send_failure, detail=detail, resolved_at=at
    )
    return dataclasses.replace(trade, attempts=(*trade.attempts[:-1], resolved), updated_at=at)


def confirm(trade: Trade, signature: str, *, at: datetime) -> Trade:
    """SUBMITTED -> CONFIRMED by the LANDED attempt ``signature``, which becomes the final signature."""
    _require_aware("at", at)
    if trade.state.is_terminal:
        raise _refuse(trade, "confirm", "terminal states are absorbing")
    check_transition(trade.state, TradeState.CONFIRMED)
    attempt = trade.attempt_by_signature(signature)
    if attempt is None or attempt.outcome is not AttemptOutcome.LANDED:
        recorded = "not an attempt" if attempt is None else f"recorded {attempt.outcome.value}"
        raise _refuse(trade, "confirm", f"attempt {signature} is {recorded}; it cannot confirm the trade")
    return dataclasses.replace(
        trade, state=TradeState.CONFIRMED, final_signature=signature, updated_at=at, finished_at=at,
        lease_owner=None, lease_expires_at=None,
    )


def land(trade: Trade, signature: str, *, at: datetime) -> Trade:
    """Resolve the unresolved attempt ``signature`` as LANDED and confirm the trade: one ledger write."""
    check_transition(trade.state, TradeState.CONFIRMED)
    return confirm(resolve_attempt(trade, signature, AttemptOutcome.LANDED, at=at), signature, at=at)


def fail(trade: Trade, reason: ReasonCode, detail: str | None = None, *, at: datetime) -> Trade:
    """PENDING or SUBMITTED -> FAILED with ``reason`` (and e.g. the risk rule that refused, as detail).

    Refused while an attempt is unresolved (it may still land: wait for LANDED or EXPIRED) or after an
    attempt LANDED (the swap happened: confirm it)."""
    _require_aware("at", at)
    if not isinstance(reason, ReasonCode):
        raise InvalidInputError(f"reason: must be a ReasonCode, got {reason!r}")
    if trade.state.is_terminal:
        raise _refuse(trade, "fail", "terminal states are absorbing")
    check_transition(trade.state, TradeState.FAILED)
    last = trade.last_attempt
    if last is not None and last.is_pending:
        raise _refuse(
            trade, "fail",
            f"attempt {last.signature} may still land; resolve that attempt (EXPIRED, FAILED_ON_CHAIN or "
            "NOT_SENT) first",
        )
    if last is not None and last.outcome is AttemptOutcome.LANDED:
        raise _refuse(trade, "fail", f"attempt {last.signature} LANDED; confirm it instead")
    return dataclasses.replace(
        trade, state=TradeState.FAILED, reason=reason, detail=detail, updated_at=at, finished_at=at,
        lease_owner=None, lease_expires_at=None,
    )


def cancel(trade: Trade, detail: str | None = None, *, at: datetime) -> Trade:
    """PENDING -> FAILED with CANCELLED. Only a PENDING trade can be cancelled: nothing was sent for it
    yet (the write-ahead attempt record moves a trade to SUBMITTED before any send); a SUBMITTED trade
    may have a transaction out, which only an executor can settle."""
    if trade.state is not TradeState.PENDING:
        raise _refuse(trade, "cancel", "only PENDING trades can be cancelled")
    return fail(trade, ReasonCode.CANCELLED, detail, at=at)


__all__ = [
    "ALLOWED_TRANSITIONS",
    "ATTEMPT_REASONS",
    "MAX_BPS",
    "RETRYABLE_OUTCOMES",
    "SEND_FAILURE_CAUSES",
    "TERMINAL_STATES",
    "Attempt",
    "AttemptOutcome",
    "IdempotencyKey",
    "ReasonCode",
    "Trade",
    "TradeState",
    "cancel",
    "check_transition",
    "confirm",
    "fail",
    "idempotency_key",
    "invariant_violation",
    "land",
    "new_trade",
    "resolve_attempt",
    "submit",
]
