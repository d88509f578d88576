"""A CopyTrade's status: its admission, and its ledger trade mirrored (state, attempts, outcome), and
how long a terminal one is kept. Pure: no I/O; the clock is a parameter."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from xorj.controller.conditions import condition_status, set_condition
from xorj.controller.models import AttemptStatus, ConditionStatus, CopyTradeStatus, VaultTradeCounts
from xorj.domain.trades import Trade, TradeState
from xorj.redaction import redact_urls

# condition types
ADMITTED = "Admitted"
TERMINAL = "Terminal"


class FanOutCounts(Protocol):
    """A lead swap's trades of one strategy per state (the ledger's ``FanOutCounts`` is one)."""

    @property
    def total(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def submitted(self) -> int: ...
    @property
    def confirmed(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def last_finished_at(self) -> datetime | None: ...


class Admission(Protocol):
    """The outcome of admitting a trade into the ledger, as the status shows it (the ledger's
    ``AdmitResult`` is one; the builders do not depend on the ledger)."""

    @property
    def created(self) -> bool: ...
    def describe(self) -> str: ...


def admission_fields(result: Admission, copytrade: str, owner: str | None) -> dict[str, str]:
    """status.admission/admissionMessage for an admission result. ``owner`` is the CopyTrade
    ("namespace/name") the ledger recorded for the trade, when it is not this one."""
    if result.created:
        return {"admission": "Admitted", "admissionMessage": result.describe()}
    if owner and owner != copytrade:
        msg = f"duplicate of {owner}: {result.describe()}"
    else:
        msg = result.describe()
    return {"admission": "Duplicate", "admissionMessage": msg}


def copytrade_status(
    *,
    trade: Trade,
    previous: CopyTradeStatus | None,
    generation: int | None,
    now: datetime,
) -> CopyTradeStatus:
    """The CopyTrade's status mirroring its ledger trade. Admission fields are carried over."""
    prev = previous or CopyTradeStatus()
    attempts = [
        AttemptStatus(
            number=a.attempt_no,
            signature=a.signature,
            slippage_bps=a.slippage_bps,
            outcome=a.outcome,
            reason=a.reason.value if a.reason else None,
            created_at=a.created_at,
        )
        for a in trade.attempts
    ]
    conds = prev.conditions
    admitted = set_condition(
        conds,
        ADMITTED,
        ConditionStatus.TRUE,
        prev.admission or "Admitted",
        prev.admission_message or f"trade {trade.trade_id} in the ledger",
        now=now,
        generation=generation,
    )
    terminal = trade.state.is_terminal
    if trade.state is TradeState.CONFIRMED:
        t_reason, t_msg = "Confirmed", f"confirmed by {trade.final_signature}"
    elif trade.state is TradeState.FAILED:
        reason = trade.reason.value if trade.reason else "Unknown"
        t_reason, t_msg = "Failed", f"failed: {reason}" + (f" ({redact_urls(trade.detail)})" if trade.detail else "")
    else:
        t_reason, t_msg = "InProgress", f"trade is {trade.state.value}"
    terminal_cond = set_condition(
        conds, TERMINAL, condition_status(terminal), t_reason, t_msg, now=now, generation=generation
    )
    return CopyTradeStatus(
        phase=trade.state,
        trade_id=str(trade.trade_id),
        admission=prev.admission,
        admission_message=prev.admission_message,
        attempts=attempts,
        attempt_count=len(attempts),
        final_signature=trade.final_signature,
        error_reason=trade.reason.value if trade.reason else None,
        # details are written redacted by executors; redacted again here for older rows
        error_message=(redact_urls(trade.detail)
                       if trade.state is TradeState.FAILED and trade.detail is not None else None),
        created_at=trade.created_at,
        submitted_at=trade.submitted_at,
        finished_at=trade.finished_at,
        observed_generation=generation,
        conditions=[admitted, terminal_cond],
    )


def fanout_phase(counts: FanOutCounts) -> TradeState:
    """A many-vault CopyTrade's phase: SUBMITTED while any trade is out, else PENDING while any waits;
    once all are terminal, CONFIRMED only if every vault's trade confirmed, else FAILED (how many
    confirmed is in status.vaults and the Terminal condition)."""
    if counts.submitted:
        return TradeState.SUBMITTED
    if counts.pending:
        return TradeState.PENDING
    return TradeState.CONFIRMED if counts.confirmed == counts.total else TradeState.FAILED


def with_fanout(status: CopyTradeStatus, counts: FanOutCounts | None, *, now: datetime) -> CopyTradeStatus:
    """``status`` (its own vault's trade mirrored) with the fan-out's counts and aggregate phase, when
    the lead swap fanned out to more than one vault; unchanged for a one-vault strategy. The per-field
    detail (tradeId, attempts, finalSignature, error*) stays the strategy's own vault's trade's;
    ``finishedAt`` is the fan-out's: when its last vault's trade finished (none before), so the TTL
    (:func:`ttl_remaining`) counts from there and no vault's trade loses its CopyTrade early."""
    if counts is None or counts.total <= 1:
        return status
    phase = fanout_phase(counts)
    terminal = phase.is_terminal
    if not terminal:
        t_reason, t_msg = "InProgress", (f"{counts.pending + counts.submitted} of {counts.total} vaults' trades "
                                         "in progress")
    elif phase is TradeState.CONFIRMED:
        t_reason, t_msg = "Confirmed", f"all {counts.total} vaults' trades confirmed"
    else:
        t_reason = "PartiallyConfirmed" if counts.confirmed else "Failed"
        t_msg = f"{counts.confirmed} of {counts.total} vaults' trades confirmed, {counts.failed} failed"
    previous = status.conditions
    generation = status.observed_generation
    conditions = [c for c in previous if c.type != TERMINAL] + [set_condition(
        previous, TERMINAL, condition_status(terminal), t_reason, t_msg, now=now, generation=generation)]
    vaults = VaultTradeCounts(total=counts.total, pending=counts.pending, submitted=counts.submitted,
                              confirmed=counts.confirmed, failed=counts.failed,
                              summary=f"{counts.confirmed}/{counts.total}")
    return status.model_copy(update={"phase": phase, "vaults": vaults, "conditions": conditions,
                                     # a terminal trade always has finished_at; the own trade's is only a fallback
                                     "finished_at": (counts.last_finished_at or status.finished_at) if terminal else None})


def ttl_remaining(
    finished_at: datetime | None, ttl_seconds: int | None, now: datetime
) -> float | None:
    """Seconds until a terminal CopyTrade may be deleted; None when it never expires."""
    if finished_at is None or ttl_seconds is None:
        return None
    return max(0.0, ttl_seconds - (now - finished_at).total_seconds())
