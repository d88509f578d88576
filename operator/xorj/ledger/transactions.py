"""Every ledger operation on trades, attempts, the halt and alerts, each one transaction body written
once (:mod:`xorj.ledger.statements`): the blocking :class:`~xorj.ledger.repository.Ledger` and the
asyncio :class:`~xorj.ledger.aio.AsyncLedger` run the same bodies.

Each state change of a trade or an attempt is made by the domain's transition function
(:mod:`xorj.domain.trades`: submit, resolve_attempt, land, confirm, fail, cancel) on the locked trade
first, and the body writes what it returns, together with the audit row in ``trade_events``,
announced by a NOTIFY on the ledger's trades channel (a trigger, so it is sent only if the transaction commits).
The SQL constraints re-check the same rules as a safety net.

Executor writes are fenced: they name the ``owner`` that claimed the trade and the ``fencing_token``
its claim returned, and raise :class:`LeaseLostError` (changing nothing) unless that owner still holds
a live lease under that very claim: a newer claim of the trade, even by the same owner name, has a
larger token and fences out every earlier one. Repeating a write that already took effect (same
attempt signature, same final signature, same failure reason) is a no-op returning the current
record, so a caller that lost its connection during COMMIT can simply ask again once the ledger is
back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from xorj.domain import trades
from xorj.domain.risk import UNCOUNTED_FAILURES, BreakerEvent, DailyShare, RiskCheck, RiskDecision, RiskRefusedError
from xorj.domain.trades import Attempt, AttemptOutcome, IdempotencyKey, ReasonCode, Trade, TradeState
from xorj.errors import (
    IllegalTransitionError,
    InvalidInputError,
    LeaseLostError,
    LedgerError,
    RefusedTransitionError,
    TradeNotFoundError,
    XorjError,
)
from xorj.ledger import daily_limits, outbox, queue
from xorj.ledger.records import (
    AdmitResult,
    Alert,
    AlertSeverity,
    NewAlert,
    TradeIntent,
    TradingHalt,
)
from xorj.ledger.rows import ATTEMPT_COLUMNS, TRADE_COLUMNS, Row, fetch_attempts
from xorj.ledger.statements import Step, one, records, rowcount, rows

DEFAULT_LEASE_SECONDS = 30.0

_T = TypeVar("_T")

# -- admission -------------------------------------------------------------------------------------


def admit_trade(intent: TradeIntent, *, actor: str | None = None, detail: str | None = None) -> Step[AdmitResult]:
    """Store a new PENDING trade, or, for a replay of the same key, change nothing and say so.
    ``detail``: the audit row's (e.g. which lead-signal source copied it)."""
    row = yield from insert_trade(intent)
    if row is not None:
        yield from trade_event(row["trade_id"], intent.strategy, None, TradeState.PENDING, actor=actor, detail=detail)
        return AdmitResult(trade_id=row["trade_id"], created=True, existing_state=None)
    return (yield from _replay(intent))


def admit_refused(
    intent: TradeIntent, reason: ReasonCode, detail: str, *, actor: str | None = None,
    alert: NewAlert | None = None,
) -> Step[AdmitResult]:
    """Store the trade already FAILED with ``reason`` (admission refused it, e.g. LEADER_NOT_FOLLOWED):
    PENDING and FAILED are written in one transaction, so no executor can ever claim it; ``alert``,
    if given, goes to the outbox with it. A replay of the key changes nothing and says so."""
    reason = ReasonCode(reason)
    row = yield from insert_trade(intent)
    if row is None:
        return (yield from _replay(intent))
    yield from trade_event(row["trade_id"], intent.strategy, None, TradeState.PENDING, actor=actor)
    alert = None if alert is None else NewAlert(alert.kind, alert.severity, alert.message, alert.strategy,
                                                row["trade_id"])
    [trade] = yield from queue.with_attempts([row])
    yield from _apply(trade, trades.fail(trade, reason, detail, at=row["created_at"]), actor or "admission")
    if alert is not None:
        yield from outbox.insert(alert)
    return AdmitResult(trade_id=row["trade_id"], created=True, existing_state=None)


def cancel_trade(trade_id: int, detail: str, *, actor: str = "operator") -> Step[Trade]:
    """Fail a PENDING trade with CANCELLED, whoever holds its lease (nothing was sent for it yet: the
    write-ahead attempt record moves a trade to SUBMITTED before any send). The lease is cleared, so
    the executor's next write on it is fenced."""
    row, _ = yield from queue.lock_for_owner(trade_id, None, None)
    [trade] = yield from queue.with_attempts([row])
    if trade.state is TradeState.FAILED and trade.reason is ReasonCode.CANCELLED:
        return trade
    return (yield from _apply(trade, _refused(trades.cancel, trade, detail, at=row["locked_at"]), actor))


def cancel_pending(strategy: str, detail: str, *, actor: str = "operator", vault: str | None = None,
                   lead_signature: str | None = None, copytrade: str | None = None) -> Step[list[int]]:
    """Cancel every PENDING trade of ``strategy`` (only those of ``vault``, of ``lead_signature`` and
    admitted by ``copytrade``, for each given), as :func:`cancel_trade` does one; returns their ids.
    SUBMITTED trades are left alone: a transaction may be out, only an executor can settle them."""
    # FOR UPDATE re-checks the state of a row it had to wait for: a trade an executor moved to
    # SUBMITTED meanwhile drops out
    pending = yield from rows(f"""SELECT {TRADE_COLUMNS}, now() AS locked_at FROM trades
                                   WHERE strategy = %(s)s AND state = 'PENDING'
                                     AND (%(v)s::text IS NULL OR vault = %(v)s)
                                     AND (%(l)s::text IS NULL OR lead_signature = %(l)s)
                                     AND (%(c)s::text IS NULL OR copytrade = %(c)s) ORDER BY id FOR UPDATE""",
                              {"s": strategy, "v": vault, "l": lead_signature, "c": copytrade})
    for row, trade in zip(pending, (yield from queue.with_attempts(pending)), strict=True):
        yield from _apply(trade, _refused(trades.cancel, trade, detail, at=row["locked_at"]), actor)
    return [row["trade_id"] for row in pending]


# -- work queue ------------------------------------------------------------------------------------


def claim_trades(strategy: str, owner: str, limit: int = 10,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Step[list[Trade]]:
    """Lease up to ``limit`` PENDING/SUBMITTED trades of ``strategy`` with no live lease, oldest first,
    with their attempts (raw signed bytes included, so recovery resumes the stored attempts). Each
    trade's ``fencing_token`` is the new claim's: pass it with every write under this claim."""
    return (yield from queue.claim(strategy, owner, limit, lease_seconds))


def heartbeat(leases: Mapping[int, int], owner: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Step[set[int]]:
    """Extend ``owner``'s live leases among ``leases`` (trade id -> fencing token of the claim it
    works under); return the ids it still holds under those claims."""
    return (yield from queue.heartbeat(leases, owner, lease_seconds))


def release(trade_id: int, owner: str, *, fencing_token: int) -> Step[bool]:
    """Hand a trade back to the queue now. False if ``owner`` did not hold a live lease on it under
    the claim with ``fencing_token``."""
    return (yield from queue.release(trade_id, owner, fencing_token))


# -- executor writes (fenced) ----------------------------------------------------------------------


def reserve_daily_share(trade_id: int, owner: str, notional_usd: Decimal, decide: RiskCheck, *,
                        fencing_token: int) -> Step[RiskDecision]:
    """The risk gate's check and count, atomic per vault: ``decide`` (the pure risk check) is given
    the vault's usage today and, if it allows the trade, the trade is counted against the vault's
    daily limits at ``notional_usd`` in the same transaction, serialised with every other check of
    the vault (:mod:`xorj.ledger.daily_limits`). Returns the decision; a refusal changes nothing.

    A trade already counted (approved earlier, or sent) is checked with no new usage: its next
    attempt, or a takeover by another executor, is not another trade.
    """
    row, held = yield from queue.lock_for_owner(trade_id, owner, fencing_token)
    if not held:
        raise queue.lease_lost(row, owner, fencing_token, "reserve_daily_share")
    return (yield from daily_limits.reserve(row, notional_usd, decide))


def record_attempt(trade_id: int, owner: str, signature: str, raw_tx: bytes, last_valid_block_height: int,
                   slippage_bps: int, quote_out_amount: int | None = None, *, fencing_token: int,
                   share: DailyShare | None = None) -> Step[Attempt]:
    """The write-ahead record of a signed transaction: COMMIT this before the first send.

    Moves a PENDING trade to SUBMITTED in the same transaction. Recording the same signature and
    bytes again is a no-op returning the stored attempt. With ``share``, the trade's daily-limit
    check is decided and counted first, in this transaction (:func:`xorj.ledger.daily_limits.reserve`):
    a refusal raises :class:`~xorj.domain.risk.RiskRefusedError` and records nothing.
    """
    row, held = yield from queue.lock_for_owner(trade_id, owner, fencing_token, recorded=(signature, bytes(raw_tx)))
    if row["recorded_attempt_id"] is not None:  # already recorded: a repeat changes nothing
        return (yield from _attempt(row["recorded_attempt_id"]))
    if not held:
        raise queue.lease_lost(row, owner, fencing_token, "record_attempt")
    if share is not None:
        decision = yield from daily_limits.reserve(row, share.notional_usd, share.decide)
        if not decision.allowed:
            raise RiskRefusedError(decision)
    [trade] = yield from queue.with_attempts([row])
    new = Attempt(trade_id=trade_id, attempt_no=len(trade.attempts) + 1, signature=signature,
                  raw_tx=bytes(raw_tx), last_valid_block_height=last_valid_block_height,
                  slippage_bps=slippage_bps, quote_out_amount=quote_out_amount)
    submitted = _refused(trades.submit, trade, new, at=row["locked_at"])
    [attempt] = yield from fetch_attempts(
        f"""INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                  slippage_bps, quote_out_amount)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING {ATTEMPT_COLUMNS}""",
        (trade_id, new.attempt_no, new.signature, new.raw_tx, new.last_valid_block_height,
         new.slippage_bps, new.quote_out_amount),
    )
    yield from _apply(trade, submitted, owner, signature=signature)
    return attempt


@dataclass(frozen=True)
class AttemptRecord:
    """One write-ahead record (the arguments of :func:`record_attempt`), for :func:`record_attempts`."""

    trade_id: int
    owner: str
    signature: str
    raw_tx: bytes
    last_valid_block_height: int
    slippage_bps: int
    quote_out_amount: int | None
    fencing_token: int
    share: DailyShare | None = field(default=None, compare=False)  # the daily-limit check it must pass


# What refuses one record of a batch before it writes anything (the row lock it took is harmless).
_REFUSALS = (LeaseLostError, RefusedTransitionError, TradeNotFoundError, InvalidInputError, RiskRefusedError)


def record_attempts(batch: Sequence[AttemptRecord]) -> Step[dict[AttemptRecord, Attempt | XorjError]]:
    """The write-ahead records of several trades (those one executor signed at about the same time)
    in ONE transaction of a few set-based statements, whatever the batch's size: every trade row
    locked at once in id order (:func:`xorj.ledger.queue.lock_many`), their attempts read at once,
    each record checked as :func:`record_attempt` checks it, then every new attempt inserted in one
    statement and every trade moved (with its audit row) in one statement. A record refused on its
    own (lease lost, transition refused, unknown trade, bad input) is that record's result and writes
    nothing; the others commit. A database error (a broken constraint, a lost connection) fails the
    whole transaction: nothing of it is written, and the caller may record each alone.

    The daily shares the records carry are decided and counted first, all in one go
    (:func:`xorj.ledger.daily_limits.reserve_many`): a record whose share is refused gets
    :class:`~xorj.domain.risk.RiskRefusedError` and writes nothing."""
    ordered = sorted(set(batch), key=lambda r: (r.trade_id, r.signature))
    results: dict[AttemptRecord, Attempt | XorjError] = {}
    locked = yield from _lock_batch([queue.ClaimedWrite(r.trade_id, r.owner, r.fencing_token, r.signature,
                                                        bytes(r.raw_tx)) for r in ordered])
    if not locked:
        return (yield from _each_alone(ordered, lambda r: record_attempt(
            r.trade_id, r.owner, r.signature, r.raw_tx, r.last_valid_block_height, r.slippage_bps,
            r.quote_out_amount, fencing_token=r.fencing_token, share=r.share)))
    risk_refused = yield from _reserve_shares(ordered, locked)
    trades_now = yield from _locked_trades(locked)
    recorded: dict[AttemptRecord, int] = {}
    new: list[tuple[AttemptRecord, Trade, Trade, Attempt]] = []
    for record, row in zip(ordered, locked, strict=True):
        try:
            if row is None:
                raise TradeNotFoundError(f"trade {record.trade_id} does not exist")
            if row["recorded_attempt_id"] is not None:  # already recorded: a repeat changes nothing
                recorded[record] = row["recorded_attempt_id"]
                continue
            if not row["lease_held"]:
                raise queue.lease_lost(row, record.owner, record.fencing_token, "record_attempt")
            if record.trade_id in risk_refused:
                raise risk_refused[record.trade_id]
            trade = trades_now[record.trade_id]
            attempt = Attempt(trade_id=record.trade_id, attempt_no=len(trade.attempts) + 1,
                              signature=record.signature, raw_tx=bytes(record.raw_tx),
                              last_valid_block_height=record.last_valid_block_height,
                              slippage_bps=record.slippage_bps, quote_out_amount=record.quote_out_amount)
            submitted = _refused(trades.submit, trade, attempt, at=row["locked_at"])
        except _REFUSALS as refused:
            results[record] = refused
            continue
        trades_now[record.trade_id] = submitted  # a second record of the trade in this batch sees this one
        new.append((record, trade, submitted, attempt))
    if new:
        stored = yield from fetch_attempts(
            f"""INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                      slippage_bps, quote_out_amount)
                SELECT * FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::bytea[], %s::bigint[], %s::int[],
                                     %s::bigint[])
                RETURNING {ATTEMPT_COLUMNS}""",
            ([a.trade_id for *_, a in new], [a.attempt_no for *_, a in new], [a.signature for *_, a in new],
             [a.raw_tx for *_, a in new], [a.last_valid_block_height for *_, a in new],
             [a.slippage_bps for *_, a in new], [a.quote_out_amount for *_, a in new]))
        by_signature = {a.signature: a for a in stored}
        yield from _apply_many([_Change(before, after, record.owner, record.signature)
                                for record, before, after, _ in new])
        for record, *_ in new:
            results[record] = by_signature[record.signature]
    if recorded:
        found = yield from fetch_attempts(f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ANY(%s)",
                                          ([int(i) for i in recorded.values()],))
        by_id = {a.attempt_id: a for a in found}
        for record, attempt_id in recorded.items():
            results[record] = by_id[attempt_id]
    return results


def _reserve_shares(ordered: Sequence[AttemptRecord], locked: Sequence[Row | None]
                    ) -> Step[dict[int, RiskRefusedError]]:
    """The daily shares of a batch's records, decided and counted in one go: one per trade (its first
    record's), for trades found, held under the record's claim and not recorded yet (a repeat was
    checked when it was first recorded). Returns the refused trades."""
    checks: dict[int, daily_limits.BatchCheck] = {}
    for record, row in zip(ordered, locked, strict=True):
        if record.share is not None and row is not None and row["lease_held"] \
                and row["recorded_attempt_id"] is None and record.trade_id not in checks:
            checks[record.trade_id] = daily_limits.BatchCheck(row, record.share.notional_usd, record.share.decide)
    if not checks:
        return {}
    decisions = yield from daily_limits.reserve_many(list(checks.values()))
    return {trade_id: RiskRefusedError(decision)
            for trade_id, decision in zip(checks, decisions, strict=True) if not decision.allowed}


def _locked_trades(locked: Sequence[Row | None]) -> Step[dict[int, Trade]]:
    """The trades of rows :func:`xorj.ledger.queue.lock_many` locked, with their attempts (one query)."""
    unique = {row["trade_id"]: row for row in locked if row is not None}
    return {t.trade_id: t for t in (yield from queue.with_attempts(list(unique.values())))}


_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def _lock_batch(writes: Sequence[queue.ClaimedWrite]) -> Step[list[Any]]:
    """Every write's trade row locked in one statement (:func:`xorj.ledger.queue.lock_many`); [] when
    the batch holds a malformed token (the caller then runs each alone, so only that one is refused)."""
    try:
        return (yield from queue.lock_many(writes))
    except InvalidInputError:
        if len(writes) == 1:
            raise
        return []


def _each_alone(items: Sequence[_Item], one: Callable[[_Item], Step[_Result]]
                ) -> Step[dict[_Item, _Result | XorjError]]:
    """``one`` for each item in turn, in the same transaction; a refusal is that item's result."""
    results: dict[_Item, _Result | XorjError] = {}
    for item in items:
        try:
            results[item] = yield from one(item)
        except _REFUSALS as refused:
            results[item] = refused
    return results


@dataclass(frozen=True)
class Confirmation:
    """One confirmation (the arguments of :func:`confirm_trade`), for :func:`confirm_trades`."""

    trade_id: int
    owner: str
    signature: str
    fencing_token: int


def confirm_trades(batch: Sequence[Confirmation]) -> Step[dict[Confirmation, Trade | XorjError]]:
    """The confirmations of several trades in ONE transaction of a few set-based statements (every
    row locked at once in id order, their attempts read at once, every attempt resolved, every trade
    moved with its audit row, and the confirmed trades read back, each in one statement), each
    checked as :func:`confirm_trade` checks it; one refused on its own is that trade's result and
    writes nothing."""
    ordered = sorted(set(batch), key=lambda c: (c.trade_id, c.signature))
    results: dict[Confirmation, Trade | XorjError] = {}
    locked = yield from _lock_batch([queue.ClaimedWrite(c.trade_id, c.owner, c.fencing_token) for c in ordered])
    if not locked:
        return (yield from _each_alone(ordered, lambda c: confirm_trade(c.trade_id, c.owner, c.signature,
                                                                        fencing_token=c.fencing_token)))
    trades_now = yield from _locked_trades(locked)
    changes: list[tuple[Confirmation, _Change]] = []
    for confirmation, row in zip(ordered, locked, strict=True):
        try:
            if row is None:
                raise TradeNotFoundError(f"trade {confirmation.trade_id} does not exist")
            trade = trades_now[confirmation.trade_id]
            if trade.state is TradeState.CONFIRMED and trade.final_signature == confirmation.signature:
                results[confirmation] = trade
                continue
            if not row["lease_held"]:
                raise queue.lease_lost(row, confirmation.owner, confirmation.fencing_token, "confirm_trade")
            _refused(trades.check_transition, trade.state, TradeState.CONFIRMED)
            attempt = trade.attempt_by_signature(confirmation.signature)
            if attempt is None:
                raise TradeNotFoundError(
                    f"trade {confirmation.trade_id} has no attempt with signature {confirmation.signature}")
            confirm = trades.land if attempt.is_pending else trades.confirm
            confirmed = _refused(confirm, trade, confirmation.signature, at=row["locked_at"])
        except _REFUSALS as refused:
            results[confirmation] = refused
            continue
        trades_now[confirmation.trade_id] = confirmed
        changes.append((confirmation, _Change(trade, confirmed, confirmation.owner, confirmation.signature)))
    if changes:
        yield from _apply_many([change for _, change in changes])
        reread = yield from get_trades([c.trade_id for c, _ in changes])
        for confirmation, _ in changes:
            results[confirmation] = reread[confirmation.trade_id]
    return results


def resolve_attempt(signature: str, owner: str, outcome: AttemptOutcome, reason: ReasonCode | None = None,
                    detail: str | None = None, *, send_failure: ReasonCode | None = None,
                    fencing_token: int) -> Step[Attempt]:
    """Record the fate of an attempt (FAILED_ON_CHAIN, EXPIRED, NOT_SENT; LANDED also confirms the
    trade, as :func:`confirm_trade`). The trade stays SUBMITTED otherwise: the caller then records a
    new attempt or fails the trade. ``send_failure``: for an EXPIRED attempt the RPC never
    accepted, the send failure seen most. Resolving again with the same outcome is a no-op."""
    outcome = AttemptOutcome(outcome)
    if outcome is AttemptOutcome.PENDING:
        raise InvalidInputError("outcome: an attempt is resolved to LANDED, FAILED_ON_CHAIN, EXPIRED or NOT_SENT")
    reason = None if reason is None else ReasonCode(reason)
    send_failure = None if send_failure is None else ReasonCode(send_failure)
    found = yield from one("SELECT trade_id FROM attempts WHERE signature = %s", (signature,))
    if found is None:
        raise TradeNotFoundError(f"no attempt with signature {signature}")
    row, held = yield from queue.lock_for_owner(found["trade_id"], owner, fencing_token)
    [trade] = yield from queue.with_attempts([row])
    attempt = trade.attempt_by_signature(signature)
    assert attempt is not None  # found above, and attempts are never deleted
    if attempt.outcome is outcome:
        return attempt
    if not held:
        raise queue.lease_lost(row, owner, fencing_token, "resolve_attempt")
    if outcome is AttemptOutcome.LANDED:
        resolved = _refused(trades.land, trade, signature, at=row["locked_at"])
    else:
        resolved = _refused(trades.resolve_attempt, trade, signature, outcome, reason, detail,
                            send_failure=send_failure, at=row["locked_at"])
    yield from _apply(trade, resolved, owner, signature=signature)
    return (yield from _attempt(attempt.attempt_id))


def confirm_trade(trade_id: int, owner: str, signature: str, *, fencing_token: int) -> Step[Trade]:
    """SUBMITTED -> CONFIRMED by the attempt ``signature`` (marked LANDED); the lease is cleared.
    Confirming again with the same signature is a no-op."""
    row, held = yield from queue.lock_for_owner(trade_id, owner, fencing_token)
    [trade] = yield from queue.with_attempts([row])
    if trade.state is TradeState.CONFIRMED and trade.final_signature == signature:
        return trade
    if not held:
        raise queue.lease_lost(row, owner, fencing_token, "confirm_trade")
    _refused(trades.check_transition, trade.state, TradeState.CONFIRMED)
    attempt = trade.attempt_by_signature(signature)
    if attempt is None:
        raise TradeNotFoundError(f"trade {trade_id} has no attempt with signature {signature}")
    confirm = trades.land if attempt.is_pending else trades.confirm
    return (yield from _apply(trade, _refused(confirm, trade, signature, at=row["locked_at"]), owner,
                              signature=signature))


def fail_trade(trade_id: int, owner: str, reason: ReasonCode, detail: str | None = None, *, fencing_token: int,
               alert: NewAlert | None = None) -> Step[Trade]:
    """PENDING|SUBMITTED -> FAILED with ``reason`` (e.g. RISK_LIMIT with the refusing rule in
    ``detail``); the lease is cleared and ``alert``, if given, goes to the outbox in the same
    transaction. Refused while an attempt's fate is unknown: resolve it first. Failing again with
    the same reason is a no-op."""
    reason = ReasonCode(reason)
    row, held = yield from queue.lock_for_owner(trade_id, owner, fencing_token)
    [trade] = yield from queue.with_attempts([row])
    if trade.state is TradeState.FAILED and trade.reason is reason:
        return trade
    if not held:
        raise queue.lease_lost(row, owner, fencing_token, "fail_trade")
    failed = yield from _apply(trade, _refused(trades.fail, trade, reason, detail, at=row["locked_at"]), owner)
    if alert is not None:
        yield from outbox.insert(alert)
    return failed


def record_crash(trade_id: int, owner: str, detail: str, *, poison_after: int, fencing_token: int) -> Step[Trade]:
    """Count one unexpected exception in ``owner``'s processing of the trade and hand the trade back
    (its lease ends now). At ``poison_after`` crashes the trade is FAILED with POISON_TRADE and a
    CRITICAL alert instead of being reclaimed forever, unless an attempt of it may still land: a
    trade cannot fail then (the swap may yet happen), so it stays claimable and one CRITICAL alert
    asks a person to look. Raises LeaseLostError (changing nothing) if ``owner`` lost the lease or the
    claim with ``fencing_token`` was replaced."""
    if poison_after < 1:
        raise InvalidInputError(f"poison_after: must be >= 1 (got {poison_after!r})")
    row, held = yield from queue.lock_for_owner(trade_id, owner, fencing_token)
    if TradeState(row["state"]).is_terminal:
        return (yield from load(trade_id))
    if not held:
        raise queue.lease_lost(row, owner, fencing_token, "record_crash")
    crashes = row["crash_count"] + 1
    yield from rowcount("UPDATE trades SET crash_count = %s, lease_expires_at = now(), updated_at = now() "
                        "WHERE id = %s", (crashes, trade_id))
    if crashes < poison_after:
        return (yield from load(trade_id))
    text = f"processing raised {crashes} time(s) (limit {poison_after}); last: {detail}"[:1000]
    trade = yield from load(trade_id)
    unresolved = trade.pending_attempt
    if unresolved is None:
        failed = yield from _apply(trade, _refused(trades.fail, trade, ReasonCode.POISON_TRADE, text,
                                                   at=row["locked_at"]), owner)
        yield from outbox.insert(NewAlert("POISON_TRADE", AlertSeverity.CRITICAL,
                                          f"trade {trade_id} FAILED {ReasonCode.POISON_TRADE.value}: {text}"[:1000],
                                          strategy=row["strategy"], trade_id=trade_id))
        return failed
    if crashes == poison_after:
        yield from outbox.insert(NewAlert(
            "POISON_TRADE", AlertSeverity.CRITICAL,
            f"trade {trade_id}: {text}; attempt {unresolved.signature} may still land, so the "
            "trade cannot be failed: it stays claimable until that attempt is settled"[:1000],
            strategy=row["strategy"], trade_id=trade_id))
    return trade


# -- cluster-wide halt -----------------------------------------------------------------------------

_HALT = "SELECT halted, reason, set_by, set_at FROM trading_halt WHERE singleton"


def trading_halt() -> Step[TradingHalt]:
    """Whether every executor must refuse every trade now (read by the risk gate with each check)."""
    return _halt_from_row((yield from one(_HALT)))


def set_trading_halt(halted: bool, *, reason: str | None, actor: str) -> Step[TradingHalt]:
    """Turn the cluster-wide halt on or off (the operator enforces its setting with this). Setting
    the state it already has changes nothing (not even ``set_at``)."""
    row = yield from one(
        """UPDATE trading_halt SET halted = %(halted)s, reason = %(reason)s, set_by = %(actor)s,
                                  set_at = now()
            WHERE singleton AND (halted, coalesce(reason, '')) IS DISTINCT FROM (%(halted)s,
                                                                             coalesce(%(reason)s, ''))
           RETURNING halted, reason, set_by, set_at""",
        {"halted": bool(halted), "reason": reason, "actor": actor},
    )
    if row is None:
        row = yield from one(_HALT)
    return _halt_from_row(row)


# -- reads -----------------------------------------------------------------------------------------


def find_trade(ref: int | IdempotencyKey) -> Step[Trade | None]:
    """The trade with its attempts, by id or idempotency key; None if there is none."""
    if isinstance(ref, IdempotencyKey):
        row = yield from one(
            f"SELECT {TRADE_COLUMNS} FROM trades WHERE strategy = %s AND vault = %s AND lead_signature = %s",
            (ref.strategy, ref.vault, ref.lead_signature),
        )
    else:
        row = yield from one(f"SELECT {TRADE_COLUMNS} FROM trades WHERE id = %s", (int(ref),))
    return None if row is None else (yield from queue.with_attempts([row]))[0]


def get_trade(ref: int | IdempotencyKey) -> Step[Trade]:
    """The trade with its attempts, by id or idempotency key; :class:`TradeNotFoundError` if none."""
    trade = yield from find_trade(ref)
    if trade is None:
        raise TradeNotFoundError(f"no trade {ref}")
    return trade


def get_trades(trade_ids: Sequence[int]) -> Step[dict[int, Trade | XorjError]]:
    """Several trades with their attempts in two queries; a missing one is a TradeNotFoundError."""
    found = yield from rows(f"SELECT {TRADE_COLUMNS} FROM trades WHERE id = ANY(%s)",
                            ([int(i) for i in trade_ids],))
    by_id: dict[int, Trade | XorjError] = {t.trade_id: t for t in (yield from queue.with_attempts(found))}
    return {i: by_id.get(i) or TradeNotFoundError(f"no trade {i}") for i in trade_ids}


def attempt_trade(signature: str) -> Step[int | None]:
    """The trade whose attempt carries ``signature``, or None (the signer asks whether a signature it
    gave is accounted for in the ledger)."""
    row = yield from one("SELECT trade_id FROM attempts WHERE signature = %s", (signature,))
    return None if row is None else int(row["trade_id"])


def counts_by_state(strategy: str | None = None) -> Step[dict[TradeState, int]]:
    """Trades per state (every state present, zeros included); all strategies when ``strategy`` is None."""
    counts = {state: 0 for state in TradeState}
    for row in (yield from rows(
            "SELECT state, count(*) AS n FROM trades WHERE (%(s)s::text IS NULL OR strategy = %(s)s) GROUP BY state",
            {"s": strategy})):
        counts[TradeState(row["state"])] = row["n"]
    return counts


def breaker_events(strategy: str, since: datetime, until: datetime) -> Step[list[BreakerEvent]]:
    """The outcomes ``strategy``'s circuit breaker counts between ``since`` and ``until``, oldest first
    (the order :meth:`CircuitBreaker.status` replays them in), with each run of consecutive successes
    reduced to its last one.

    The reduction gives the same status: in the replay a success only resets the failures in a row or
    closes a HALF_OPEN breaker, so a run of them leaves the state its last one leaves; and the last is
    the one that can come after an OPEN breaker's cool-down. A healthy strategy's refresh therefore
    reads one row instead of every trade in the window (a fan-out confirms hundreds a second).
    Failures for the reasons in UNCOUNTED_FAILURES are not outcomes of the system's and are left out
    before the runs are formed.
    """
    return (yield from records(
        BreakerEvent,
        """SELECT at, success FROM (
               SELECT id, at, success, lead(success) OVER (ORDER BY at, id) AS next_success
                 FROM (SELECT id, at, to_state = 'CONFIRMED' AS success FROM trade_events
                        WHERE strategy = %(strategy)s AND to_state IN ('CONFIRMED', 'FAILED')
                          AND at >= %(since)s AND at <= %(until)s
                          AND (reason IS NULL OR reason <> ALL(%(uncounted)s))) AS outcome
           ) AS ordered
           WHERE NOT (success AND coalesce(next_success, false))
           ORDER BY at, id""",
        {"strategy": strategy, "since": since, "until": until,
         "uncounted": sorted(reason.value for reason in UNCOUNTED_FAILURES)},
    ))


def find_stale(now: datetime | None = None, grace: timedelta = timedelta(seconds=60),
               strategy: str | None = None) -> Step[list[Trade]]:
    """Orphan candidates: non-terminal trades with no live lease, unowned for longer than ``grace``
    (``now`` defaults to the database clock)."""
    return (yield from queue.find_stale(now, grace, strategy))


# -- alerts (outbox) -------------------------------------------------------------------------------


def raise_alert(kind: str, severity: AlertSeverity | str, message: str, *, strategy: str | None = None,
                trade_id: int | None = None) -> Step[Alert]:
    return (yield from outbox.insert(NewAlert(kind, severity, message, strategy, trade_id)))  # type: ignore[arg-type]


def deliver_next_alert(deliver: Callable[[outbox.ClaimedAlert], None],
                       skip: Sequence[int] = ()) -> Step[Alert | None]:
    """Claim the oldest undelivered alert no one else holds (and not in ``skip``), ``deliver`` it
    (idempotently: it may run again for the same alert after a crash) and mark it delivered, in
    one transaction; if ``deliver`` raises, the alert stays undelivered (and unlocked) for the
    next attempt. Returns the alert delivered, or None when nothing was waiting."""
    claimed = yield from outbox.claim_next(skip)
    if claimed is None:
        return None
    deliver(claimed)
    yield from outbox.mark_delivered([claimed.alert.alert_id])
    return claimed.alert


# -- parts of the bodies above (and of the watcher's admission, xorj.ledger.lead_signals) ---------


def load(trade_id: int) -> Step[Trade]:
    """The trade, read or locked earlier in this transaction, with its attempts."""
    row = yield from one(f"SELECT {TRADE_COLUMNS} FROM trades WHERE id = %s", (trade_id,))
    assert row is not None, f"trade {trade_id} was read or locked in this transaction"
    return (yield from queue.with_attempts([row]))[0]


def insert_trade(intent: TradeIntent) -> Step[Row | None]:
    """Insert the PENDING trade; None if its key exists (a replay)."""
    return (yield from one(
        f"""INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint,
                               amount, max_slippage_bps, notional_usd, copytrade)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT ON CONSTRAINT trades_idempotency_key DO NOTHING
           RETURNING {TRADE_COLUMNS}""",
        (
            intent.strategy, intent.vault, intent.lead_signature, intent.lead_trader, intent.input_mint,
            intent.output_mint, intent.amount, intent.max_slippage_bps, intent.notional_usd,
            intent.copytrade,
        ),
    ))


def trade_event(
    trade_id: int,
    strategy: str,
    from_state: TradeState | None,
    to_state: TradeState,
    *,
    actor: str | None = None,
    reason: ReasonCode | None = None,
    detail: str | None = None,
    signature: str | None = None,
) -> Step[int]:
    """The audit row of a transition, in the transaction making it."""
    return (yield from rowcount(
        """INSERT INTO trade_events (trade_id, strategy, from_state, to_state, reason, detail, actor, attempt_signature)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            trade_id, strategy, None if from_state is None else from_state.value, to_state.value,
            None if reason is None else reason.value, detail, actor, signature,
        ),
    ))


def _replay(intent: TradeIntent) -> Step[AdmitResult]:
    # The row exists (committed before our snapshot or by a racing admit we waited on).
    existing = yield from one(
        "SELECT id, state FROM trades WHERE strategy = %s AND vault = %s AND lead_signature = %s",
        (intent.strategy, intent.vault, intent.lead_signature),
    )
    if existing is None:  # cannot happen: ON CONFLICT saw a committed row with this key
        raise LedgerError(f"trade {intent.key} conflicted but cannot be read back")
    return AdmitResult(trade_id=existing["id"], created=False, existing_state=TradeState(existing["state"]))


def _halt_from_row(row: Row | None) -> TradingHalt:
    if row is None:  # the migration inserts the row; a missing one is a tampered ledger: fail closed
        return TradingHalt(True, "the trading_halt row is missing", None, datetime.min)
    return TradingHalt(row["halted"], row["reason"], row["set_by"], row["set_at"])


def _refused(transition: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``transition(*args, **kwargs)`` (a function of :mod:`xorj.domain.trades`), its refusal raised as
    the ledger's :class:`RefusedTransitionError` (nothing was written)."""
    try:
        return transition(*args, **kwargs)
    except IllegalTransitionError as exc:
        raise RefusedTransitionError(str(exc)) from exc


def _attempt(attempt_id: object) -> Step[Attempt]:
    [attempt] = yield from fetch_attempts(f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = %s", (attempt_id,))
    return attempt


def _apply(before: Trade, after: Trade, actor: str | None, *, signature: str | None = None) -> Step[Trade]:
    """Write what a domain transition made of the locked trade ``before``: the fate of a resolved
    attempt, then the trade's new state with its audit row (in one statement). A new attempt is
    inserted by the caller (it needs the stored row back). Timestamps are the database clock's
    ``now()``, the same instant the transition was computed at (one transaction, one ``now()``)."""
    for old, new in zip(before.attempts, after.attempts, strict=False):
        if old.is_pending and new.is_resolved:
            changed = yield from rowcount(
                """UPDATE attempts SET outcome = %s, reason = %s, send_failure = %s, detail = %s,
                                       resolved_at = now()
                    WHERE id = %s AND outcome = 'PENDING'""",
                (new.outcome.value, _code(new.reason), _code(new.send_failure), new.detail, new.attempt_id),
            )
            if changed != 1:  # cannot happen under the row lock; refuse rather than write half
                raise LedgerError(f"attempt {new.signature} was not PENDING when resolving it")
    if after.state is before.state:
        yield from rowcount("UPDATE trades SET updated_at = now() WHERE id = %s", (before.trade_id,))
        return after
    terminal = after.state.is_terminal
    changed = yield from rowcount(
        """WITH changed AS (
                UPDATE trades
                   SET state = %(to)s, reason = %(reason)s, detail = %(detail)s, final_signature = %(final)s,
                       updated_at = now(),
                       submitted_at = CASE WHEN %(to)s = 'SUBMITTED' THEN coalesce(submitted_at, now())
                                           ELSE submitted_at END,
                       finished_at = CASE WHEN %(terminal)s THEN now() END,
                       lease_owner = CASE WHEN %(terminal)s THEN NULL ELSE lease_owner END,
                       lease_expires_at = CASE WHEN %(terminal)s THEN NULL ELSE lease_expires_at END
                 WHERE id = %(id)s AND state = %(from)s
                RETURNING id, strategy)
            INSERT INTO trade_events (trade_id, strategy, from_state, to_state, reason, detail, actor, attempt_signature)
            SELECT id, strategy, %(from)s, %(to)s, %(reason)s, %(detail)s, %(actor)s, %(signature)s FROM changed""",
        {
            "id": before.trade_id, "from": before.state.value, "to": after.state.value,
            "reason": _code(after.reason), "detail": after.detail, "final": after.final_signature,
            "terminal": terminal, "actor": actor, "signature": signature,
        },
    )
    if changed != 1:  # cannot happen under the row lock; refuse rather than write half
        raise LedgerError(
            f"trade {before.trade_id} was not in state {before.state.value} when moving it to {after.state.value}"
        )
    return after if not terminal else (yield from load(before.trade_id))


@dataclass(frozen=True)
class _Change:
    """One domain transition of a locked trade to write (:func:`_apply_many`)."""

    before: Trade
    after: Trade
    actor: str | None
    signature: str | None = None


def _apply_many(changes: Sequence[_Change]) -> Step[None]:
    """:func:`_apply` for many trades in two statements, whatever their number: every attempt the
    transitions resolved, then every trade's new state with its audit row (a trade whose state stays
    only has ``updated_at`` touched, and no audit row, as :func:`_apply`). Each trade appears once."""
    resolved = [(new, change) for change in changes
                for old, new in zip(change.before.attempts, change.after.attempts, strict=False)
                if old.is_pending and new.is_resolved]
    if resolved:
        updated = yield from rowcount(
            """UPDATE attempts AS a SET outcome = r.outcome, reason = r.reason, send_failure = r.send_failure,
                                        detail = r.detail, resolved_at = now()
                 FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[])
                      AS r(id, outcome, reason, send_failure, detail)
                WHERE a.id = r.id AND a.outcome = 'PENDING'""",
            ([new.attempt_id for new, _ in resolved], [new.outcome.value for new, _ in resolved],
             [_code(new.reason) for new, _ in resolved], [_code(new.send_failure) for new, _ in resolved],
             [new.detail for new, _ in resolved]))
        if updated != len(resolved):  # cannot happen under the row locks; refuse rather than write half
            raise LedgerError(f"{len(resolved) - updated} of {len(resolved)} attempts were not PENDING when "
                              "resolving them")
    if not changes:
        return
    moved = yield from rows(
        """WITH change AS (
                SELECT * FROM unnest(%(ids)s::bigint[], %(froms)s::text[], %(tos)s::text[], %(reasons)s::text[],
                                     %(details)s::text[], %(finals)s::text[], %(terminals)s::bool[],
                                     %(actors)s::text[], %(signatures)s::text[])
                       AS c(id, from_state, to_state, reason, detail, final, terminal, actor, signature)),
            changed AS (
                UPDATE trades AS t
                   SET state = c.to_state,
                       reason = CASE WHEN c.from_state = c.to_state THEN t.reason ELSE c.reason END,
                       detail = CASE WHEN c.from_state = c.to_state THEN t.detail ELSE c.detail END,
                       final_signature = CASE WHEN c.from_state = c.to_state THEN t.final_signature
                                              ELSE c.final END,
                       updated_at = now(),
                       submitted_at = CASE WHEN c.to_state = 'SUBMITTED' THEN coalesce(t.submitted_at, now())
                                           ELSE t.submitted_at END,
                       finished_at = CASE WHEN c.from_state = c.to_state THEN t.finished_at
                                          WHEN c.terminal THEN now() END,
                       lease_owner = CASE WHEN c.terminal THEN NULL ELSE t.lease_owner END,
                       lease_expires_at = CASE WHEN c.terminal THEN NULL ELSE t.lease_expires_at END
                  FROM change c
                 WHERE t.id = c.id AND t.state = c.from_state
                RETURNING t.id, t.strategy, c.from_state, c.to_state, c.reason, c.detail, c.actor, c.signature),
            audited AS (
                INSERT INTO trade_events (trade_id, strategy, from_state, to_state, reason, detail, actor,
                                          attempt_signature)
                SELECT id, strategy, from_state, to_state, reason, detail, actor, signature FROM changed
                 WHERE from_state <> to_state)
            SELECT id FROM changed""",
        {"ids": [c.before.trade_id for c in changes], "froms": [c.before.state.value for c in changes],
         "tos": [c.after.state.value for c in changes], "reasons": [_code(c.after.reason) for c in changes],
         "details": [c.after.detail for c in changes], "finals": [c.after.final_signature for c in changes],
         "terminals": [c.after.state.is_terminal for c in changes], "actors": [c.actor for c in changes],
         "signatures": [c.signature for c in changes]})
    if len(moved) != len(changes):  # cannot happen under the row locks; refuse rather than write half
        missing = sorted({c.before.trade_id for c in changes} - {r["id"] for r in moved})
        raise LedgerError(f"trades {missing} were not in the state their transition started from")


def _code(reason: ReasonCode | None) -> str | None:
    return None if reason is None else reason.value
