"""The ledger's cluster-wide halt, poison-trade counting and refused admissions, on the real Postgres."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.ledger.helpers import claimed, current_token, intent, raw_tx
from xorj.domain.risk import DailyUsage, RiskDecision, RiskRule
from xorj.domain.trades import ReasonCode, TradeState
from xorj.errors import LeaseLostError
from xorj.ledger import Ledger
from xorj.ledger.records import AlertSeverity, NewAlert


def _allow(usage: DailyUsage) -> RiskDecision:
    return RiskDecision(True, None, "allowed")


def test_halt_refuses_every_reservation_until_lifted(ledger: Ledger):
    first = claimed(ledger, 1)
    assert ledger.trading_halt().halted is False
    halt = ledger.set_trading_halt(True, reason="incident 42", actor="operator/test")
    assert (halt.halted, halt.reason, halt.set_by) == (True, "incident 42", "operator/test")
    try:
        refusal = ledger.reserve_daily_share(first, "ex", Decimal(10), _allow, fencing_token=current_token(ledger, first))
        assert not refusal.allowed and refusal.rule is RiskRule.GLOBAL_KILL_SWITCH
        assert "incident 42" in refusal.message
        assert ledger.get_trade(first).risk_reserved_at is None  # nothing counted
        # setting the same state again changes nothing, not even the time it was set
        assert ledger.set_trading_halt(True, reason="incident 42", actor="someone else") == halt
    finally:
        ledger.set_trading_halt(False, reason=None, actor="operator/test")
    assert ledger.reserve_daily_share(first, "ex", Decimal(10), _allow, fencing_token=current_token(ledger, first)).allowed


def test_halt_also_refuses_a_counted_trade_next_attempt(ledger: Ledger):
    trade_id = claimed(ledger, 1)
    assert ledger.reserve_daily_share(trade_id, "ex", Decimal(10), _allow, fencing_token=current_token(ledger, trade_id)).allowed
    ledger.set_trading_halt(True, reason="stop", actor="t")
    try:
        assert not ledger.reserve_daily_share(trade_id, "ex", Decimal(10), _allow, fencing_token=current_token(ledger, trade_id)).allowed
    finally:
        ledger.set_trading_halt(False, reason=None, actor="t")


def test_a_trade_crashing_n_times_is_failed_as_poison_with_an_alert(ledger: Ledger):
    trade_id = claimed(ledger, 1)
    for crash in (1, 2):
        trade = ledger.record_crash(trade_id, "ex", f"RuntimeError: boom {crash}", poison_after=3, fencing_token=current_token(ledger, trade_id))
        assert trade.state is TradeState.PENDING and trade.crash_count == crash
        # handed back at once: claimable again
        assert [t.trade_id for t in ledger.claim_trades("alpha", "ex", limit=5)] == [trade_id]
    trade = ledger.record_crash(trade_id, "ex", "RuntimeError: boom 3", poison_after=3, fencing_token=current_token(ledger, trade_id))
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.POISON_TRADE
    assert "3 time(s)" in trade.detail and "boom 3" in trade.detail
    assert trade.lease_owner is None
    assert ledger.claim_trades("alpha", "ex", limit=5) == []
    alerts = [a for a in ledger.pending_alerts() if a.trade_id == trade_id]
    assert [(a.kind, a.severity) for a in alerts] == [("POISON_TRADE", AlertSeverity.CRITICAL)]


def test_a_crash_is_not_counted_without_the_lease(ledger: Ledger):
    trade_id = claimed(ledger, 1)
    with pytest.raises(LeaseLostError):
        ledger.record_crash(trade_id, "someone-else", "RuntimeError", poison_after=1, fencing_token=current_token(ledger, trade_id))
    assert ledger.get_trade(trade_id).crash_count == 0


def test_a_poison_trade_whose_attempt_may_land_stays_open_and_alerts_once(ledger: Ledger):
    trade_id = claimed(ledger, 1)
    ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("sig-1"), 1000, 100, fencing_token=current_token(ledger, trade_id))
    for _ in range(3):
        trade = ledger.record_crash(trade_id, "ex", "RuntimeError: boom", poison_after=2, fencing_token=current_token(ledger, trade_id))
        assert trade.state is TradeState.SUBMITTED  # the swap may still happen: never FAILED blind
        ledger.claim_trades("alpha", "ex", limit=5)
    alerts = [a for a in ledger.pending_alerts() if a.trade_id == trade_id]
    assert len(alerts) == 1 and alerts[0].kind == "POISON_TRADE" and "may still land" in alerts[0].message


def test_a_refused_admission_is_failed_at_once_and_never_claimable(ledger: Ledger):
    refused = intent(7)
    alert = NewAlert("ADMISSION_REFUSED", AlertSeverity.WARNING, "leader not followed", strategy="alpha")
    result = ledger.admit_refused(refused, ReasonCode.LEADER_NOT_FOLLOWED, "not followed", actor="op",
                                  alert=alert)
    assert result.created
    trade = ledger.get_trade(result.trade_id)
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.LEADER_NOT_FOLLOWED
    assert ledger.claim_trades("alpha", "ex", limit=5) == []
    assert [e.to_state for e in ledger.trade_events(result.trade_id)] == [TradeState.PENDING, TradeState.FAILED]
    assert any(a.trade_id == result.trade_id and a.kind == "ADMISSION_REFUSED" for a in ledger.pending_alerts())
    replay = ledger.admit_refused(refused, ReasonCode.LEADER_NOT_FOLLOWED, "not followed")
    assert not replay.created and replay.existing_state is TradeState.FAILED
    assert ledger.admit_trade(refused).existing_state is TradeState.FAILED
