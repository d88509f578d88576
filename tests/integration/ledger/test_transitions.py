"""Transitions: one transaction each, audited, with the write-ahead attempt record; alerts outbox;
the reads risk limits and circuit breakers use."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from xorj.domain.risk import UNCOUNTED_FAILURES, BreakerEvent, CircuitBreaker
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import InvalidInputError, LedgerError
from xorj.ledger import AlertSeverity, Ledger, NewAlert

from .helpers import claimed, current_token, raw_tx


def test_write_ahead_attempt_moves_pending_to_submitted_once(ledger: Ledger):
    trade_id = claimed(ledger)
    first = ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1_000, 100, quote_out_amount=42, fencing_token=current_token(ledger, trade_id))
    assert (first.attempt_no, first.outcome, first.raw_tx, first.quote_out_amount) == (1, AttemptOutcome.PENDING, raw_tx("1"), 42)
    trade = ledger.get_trade(trade_id)
    assert trade.state is TradeState.SUBMITTED and trade.submitted_at is not None
    assert trade.pending_attempt == first

    # Repeating the same record (e.g. after a COMMIT whose answer was lost) returns the stored attempt.
    assert ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1_000, 100, quote_out_amount=42, fencing_token=current_token(ledger, trade_id)) == first

    expired = ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, "height 1001", fencing_token=current_token(ledger, trade_id))
    assert (expired.outcome, expired.reason, expired.detail) == (AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, "height 1001")
    assert expired.resolved_at is not None
    assert ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, fencing_token=current_token(ledger, trade_id)) == expired  # no-op
    with pytest.raises(LedgerError, match="already EXPIRED; it cannot become FAILED_ON_CHAIN"):
        ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.PROGRAM_ERROR, fencing_token=current_token(ledger, trade_id))

    second = ledger.record_attempt(trade_id, "ex", "sig-2", raw_tx("2"), 1_200, 100, fencing_token=current_token(ledger, trade_id))
    assert second.attempt_no == 2
    confirmed = ledger.confirm_trade(trade_id, "ex", "sig-2", fencing_token=current_token(ledger, trade_id))
    assert confirmed.state is TradeState.CONFIRMED and confirmed.final_signature == "sig-2"
    assert [a.outcome for a in confirmed.attempts] == [AttemptOutcome.EXPIRED, AttemptOutcome.LANDED]
    assert confirmed.lease_owner is None and confirmed.finished_at is not None

    events = ledger.trade_events(trade_id)
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, TradeState.PENDING),
        (TradeState.PENDING, TradeState.SUBMITTED),
        (TradeState.SUBMITTED, TradeState.CONFIRMED),
    ]
    assert events[1].attempt_signature == "sig-1" and events[2].attempt_signature == "sig-2"
    assert events[2].actor == "ex"


def test_an_expired_attempts_send_failure_is_a_column_and_the_state_machine_checks_it(ledger: Ledger):
    trade_id = claimed(ledger)
    ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 10, 100, fencing_token=current_token(ledger, trade_id))
    with pytest.raises(InvalidInputError, match="attempt.send_failure: only an EXPIRED attempt"):
        ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.PROGRAM_ERROR, "0x1",
                               send_failure=ReasonCode.RPC_TIMEOUT, fencing_token=current_token(ledger, trade_id))
    expired = ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                                     "never accepted (3 send(s) failed)", send_failure=ReasonCode.RPC_TIMEOUT,
                                     fencing_token=current_token(ledger, trade_id))
    [stored] = ledger.get_trade(trade_id).attempts
    assert stored == expired and stored.send_failure is ReasonCode.RPC_TIMEOUT
    assert stored.decisive_reason is ReasonCode.RPC_TIMEOUT and not stored.detail.startswith("RPC_TIMEOUT")


def test_landed_resolution_confirms_the_trade(ledger: Ledger):
    trade_id = claimed(ledger)
    ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 10, 100, fencing_token=current_token(ledger, trade_id))
    landed = ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.LANDED, fencing_token=current_token(ledger, trade_id))
    assert landed.outcome is AttemptOutcome.LANDED
    assert ledger.get_trade(trade_id).state is TradeState.CONFIRMED


def test_a_trade_cannot_fail_while_an_attempt_may_still_land(ledger: Ledger):
    trade_id = claimed(ledger)
    ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 10, 100, fencing_token=current_token(ledger, trade_id))
    with pytest.raises(LedgerError, match="attempt sig-1 may still land"):
        ledger.fail_trade(trade_id, "ex", ReasonCode.RPC_TIMEOUT, fencing_token=current_token(ledger, trade_id))
    assert ledger.get_trade(trade_id).state is TradeState.SUBMITTED
    ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED, "0x1771", fencing_token=current_token(ledger, trade_id))
    failed = ledger.fail_trade(trade_id, "ex", ReasonCode.SLIPPAGE_EXCEEDED, "cap reached", fencing_token=current_token(ledger, trade_id))
    assert (failed.state, failed.reason) == (TradeState.FAILED, ReasonCode.SLIPPAGE_EXCEEDED)
    assert ledger.fail_trade(trade_id, "ex", ReasonCode.SLIPPAGE_EXCEEDED, fencing_token=current_token(ledger, trade_id)).state is TradeState.FAILED  # no-op


def test_resolving_to_pending_is_refused(ledger: Ledger):
    with pytest.raises(InvalidInputError, match="outcome"):
        ledger.resolve_attempt("sig", "ex", AttemptOutcome.PENDING, fencing_token=1)


def test_failure_and_its_alert_commit_together(ledger: Ledger):
    trade_id = claimed(ledger)
    alert = NewAlert("RISK_REFUSAL", AlertSeverity.WARNING, "daily volume limit reached", "alpha", trade_id)
    ledger.fail_trade(trade_id, "ex", ReasonCode.RISK_LIMIT, "daily_volume_usd: 1200 > 1000", alert=alert, fencing_token=current_token(ledger, trade_id))
    [stored] = ledger.pending_alerts()
    assert (stored.kind, stored.severity, stored.trade_id, stored.strategy) == ("RISK_REFUSAL", AlertSeverity.WARNING, trade_id, "alpha")

    # A refused failure leaves no alert behind either.
    other = claimed(ledger, 2)
    ledger.record_attempt(other, "ex", "sig-x", raw_tx("x"), 1, 1, fencing_token=current_token(ledger, other))
    with pytest.raises(LedgerError):
        ledger.fail_trade(other, "ex", ReasonCode.RPC_TIMEOUT, alert=alert, fencing_token=current_token(ledger, other))
    assert len(ledger.pending_alerts()) == 1


def test_alert_outbox_delivers_each_alert_once(ledger: Ledger):
    a = ledger.raise_alert("RPC_FAILURE", AlertSeverity.CRITICAL, "RPC unreachable for 60s", strategy="alpha")
    b = ledger.raise_alert("BREAKER_OPEN", "warning", "5 failures in 10 min", strategy="alpha")
    assert [x.alert_id for x in ledger.pending_alerts()] == [a.alert_id, b.alert_id]
    assert ledger.mark_delivered([a.alert_id]) == 1
    assert ledger.mark_delivered([a.alert_id]) == 0
    assert [x.alert_id for x in ledger.pending_alerts()] == [b.alert_id]
    with pytest.raises(InvalidInputError, match="severity"):
        ledger.raise_alert("X", "loud", "message")
    with pytest.raises(LedgerError, match="alerts_message_not_empty"):
        ledger.raise_alert("X", "info", "")


def test_vault_activity_counts_sent_trades_since_a_time(ledger: Ledger):
    since = datetime.now(UTC) - timedelta(minutes=1)
    sent = claimed(ledger, 1, notional_usd=Decimal("120.5"))
    ledger.record_attempt(sent, "ex", "sig-1", raw_tx("1"), 1, 1, fencing_token=current_token(ledger, sent))
    also_sent = claimed(ledger, 2, notional_usd=Decimal(30))
    ledger.record_attempt(also_sent, "ex", "sig-2", raw_tx("2"), 1, 1, fencing_token=current_token(ledger, also_sent))
    claimed(ledger, 3, notional_usd=Decimal(999))  # PENDING, never sent
    claimed(ledger, 4, vault="vault-2", notional_usd=Decimal(5))
    activity = ledger.vault_activity("vault-1", since)
    assert activity == (Decimal("150.5"), 2)
    assert activity.volume_usd == Decimal("150.5") and activity.trade_count == 2
    assert ledger.vault_activity("vault-1", datetime.now(UTC) + timedelta(minutes=1)) == (Decimal(0), 0)


def test_breaker_events_are_the_counted_outcomes_oldest_first_with_runs_of_successes_reduced(ledger: Ledger):
    since = datetime.now(UTC) - timedelta(minutes=1)

    def confirm(n: int) -> int:
        trade_id = claimed(ledger, n)
        token = current_token(ledger, trade_id)
        ledger.record_attempt(trade_id, "ex", f"sig-{n}", raw_tx(str(n)), 1, 1, fencing_token=token)
        ledger.confirm_trade(trade_id, "ex", f"sig-{n}", fencing_token=token)
        return trade_id

    def fail(n: int, reason: ReasonCode) -> int:
        trade_id = claimed(ledger, n)
        ledger.fail_trade(trade_id, "ex", reason, "x", fencing_token=current_token(ledger, trade_id))
        return trade_id

    confirm(1)
    confirm(2)
    fail(3, ReasonCode.RISK_LIMIT)  # a refusal, not a failure: neither counted nor ending the run
    confirm(4)
    fail(5, ReasonCode.PROGRAM_ERROR)
    fail(6, ReasonCode.CANCELLED)
    fail(7, ReasonCode.RPC_TIMEOUT)
    confirm(8)
    claimed(ledger, 9)  # still PENDING: not an outcome
    events = ledger.breaker_events("alpha", since, datetime.now(UTC) + timedelta(seconds=5))
    # 1, 2 and 4 are one run of successes: only its last is read
    assert [e.success for e in events] == [True, False, False, True]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert ledger.breaker_events("beta", since, datetime.now(UTC)) == []
    assert ledger.breaker_events("alpha", since, since) == []  # nothing before ``until`` yet


@pytest.mark.parametrize("seed", range(6))
def test_the_breakers_status_from_the_reduced_events_equals_its_status_from_every_outcome(ledger: Ledger, seed: int):
    """The reduction is exact: for random outcome sequences (ties included), breaker settings and
    moments, CircuitBreaker.status of breaker_events equals its status of every counted outcome."""
    rng = random.Random(seed)
    reasons = [ReasonCode.PROGRAM_ERROR, ReasonCode.RPC_TIMEOUT, ReasonCode.RISK_LIMIT, ReasonCode.CANCELLED]
    for n in range(1, 41):
        trade_id = claimed(ledger, n)
        token = current_token(ledger, trade_id)
        if rng.random() < 0.55:
            ledger.record_attempt(trade_id, "ex", f"sig-{n}", raw_tx(str(n)), 1, 1, fencing_token=token)
            ledger.confirm_trade(trade_id, "ex", f"sig-{n}", fencing_token=token)
        else:
            ledger.fail_trade(trade_id, "ex", rng.choice(reasons), "x", fencing_token=token)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(ledger._pool.conninfo, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM trade_events WHERE to_state IN ('CONFIRMED', 'FAILED') ORDER BY id")]
        for event_id in ids:  # seconds apart or tied, in an order other than the ids'
            conn.execute("UPDATE trade_events SET at = %s WHERE id = %s",
                         (base + timedelta(seconds=rng.randrange(0, 120, rng.choice([1, 5]))), event_id))
        every = [BreakerEvent(at, state == "CONFIRMED") for at, state, reason in conn.execute(
            "SELECT at, to_state, reason FROM trade_events WHERE to_state IN ('CONFIRMED', 'FAILED') ORDER BY at, id")
            if reason is None or ReasonCode(reason) not in UNCOUNTED_FAILURES]
    reduced_somewhere = False
    for _ in range(8):
        breaker = CircuitBreaker(failures_in_window=rng.randint(2, 6), window=timedelta(seconds=rng.randint(5, 60)),
                                 failures_in_a_row=rng.randint(1, 4), open_for=timedelta(seconds=rng.randint(3, 40)))
        now = base + timedelta(seconds=rng.randint(0, 130))
        reduced = ledger.breaker_events("alpha", base - timedelta(seconds=1), now)
        seen = [e for e in every if e.at <= now]
        assert breaker.status(reduced, now) == breaker.status(seen, now), (breaker, now)
        reduced_somewhere |= len(reduced) < len(seen)
    assert reduced_somewhere  # the runs of successes were there to reduce
