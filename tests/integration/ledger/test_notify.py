"""LISTEN/NOTIFY: admissions and transitions are announced on the ledger's trades channel at commit,
and only then; admissions of PENDING trades also on the admissions channel, once per strategy per
transaction. (Who may learn which channel's name: test_private_channels.py.)"""

from __future__ import annotations

import psycopg
import pytest

from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import LeaseLostError, LedgerUnavailableError
from xorj.ledger import AsyncAdmissionListener, AsyncTradeListener, Ledger, TradeListener, TradeNotification
from xorj.ledger import transactions as tx

from .helpers import current_token, intent, raw_tx


def test_listener_receives_every_transition_in_order(ledger: Ledger, ledger_dsn):
    with TradeListener(ledger_dsn, strategy="alpha") as listener:
        trade_id = ledger.admit_trade(intent(1)).trade_id
        ledger.admit_trade(intent(1))  # replay: no change, no notification
        ledger.admit_trade(intent(2, strategy="beta"))  # filtered out by strategy
        ledger.claim_trades("alpha", "ex", limit=1)  # a lease is not a state change
        ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1, 1, fencing_token=current_token(ledger, trade_id))
        ledger.confirm_trade(trade_id, "ex", "sig-1", fencing_token=current_token(ledger, trade_id))
        received = listener.wait(timeout=5, max_count=3)
        received += listener.wait(timeout=0.5)
    assert received == [
        TradeNotification(trade_id, "alpha", TradeState.PENDING),
        TradeNotification(trade_id, "alpha", TradeState.SUBMITTED),
        TradeNotification(trade_id, "alpha", TradeState.CONFIRMED),
    ]


def test_a_rolled_back_write_notifies_nothing(ledger: Ledger, ledger_dsn):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    with TradeListener(ledger_dsn) as listener:
        with pytest.raises(LeaseLostError):
            ledger.fail_trade(trade_id, "not-the-owner", ReasonCode.RPC_TIMEOUT, fencing_token=1)
        assert listener.wait(timeout=0.5) == []


async def test_async_listener(ledger: Ledger, ledger_dsn):
    async with AsyncTradeListener(ledger_dsn, strategy="alpha") as listener:
        trade_id = ledger.admit_trade(intent(1)).trade_id
        ledger.claim_trades("alpha", "ex", limit=1)
        ledger.fail_trade(trade_id, "ex", ReasonCode.RISK_LIMIT, "kill switch", fencing_token=current_token(ledger, trade_id))
        received = await listener.wait(timeout=5, max_count=2)
    assert [(n.trade_id, n.state) for n in received] == [(trade_id, TradeState.PENDING), (trade_id, TradeState.FAILED)]


def test_a_listener_whose_connection_dies_raises_ledger_unavailable(ledger_dsn):
    with TradeListener(ledger_dsn) as listener, psycopg.connect(ledger_dsn, autocommit=True) as admin:
        admin.execute(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"""
        )
        with pytest.raises(LedgerUnavailableError):
            listener.wait(timeout=5)


def test_attempt_changes_inside_submitted_are_announced_without_duplicates(ledger: Ledger, ledger_dsn):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    ledger.claim_trades("alpha", "ex", limit=1)
    ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1, 100, fencing_token=current_token(ledger, trade_id))
    with TradeListener(ledger_dsn, strategy="alpha") as listener:
        # Neither is a state change: the trade stays SUBMITTED, but its attempts changed.
        ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, fencing_token=current_token(ledger, trade_id))
        ledger.record_attempt(trade_id, "ex", "sig-2", raw_tx("2"), 2, 100, fencing_token=current_token(ledger, trade_id))
        received = listener.wait(timeout=5, max_count=2)
        # Landing resolves the attempt and confirms the trade in one transaction: one notification.
        ledger.resolve_attempt("sig-2", "ex", AttemptOutcome.LANDED, fencing_token=current_token(ledger, trade_id))
        received += listener.wait(timeout=5, max_count=1)
        received += listener.wait(timeout=0.5)
    assert received == [
        TradeNotification(trade_id, "alpha", TradeState.SUBMITTED),
        TradeNotification(trade_id, "alpha", TradeState.SUBMITTED),
        TradeNotification(trade_id, "alpha", TradeState.CONFIRMED),
    ]


async def test_admissions_wake_once_per_strategy_per_transaction_and_nothing_else_does(ledger: Ledger, ledger_dsn):
    def a_fan_out():  # five trades of alpha and one of beta, admitted in ONE transaction
        for n in range(5):
            yield from tx.admit_trade(intent(n, vault=f"vault-{n}"))
        yield from tx.admit_trade(intent(9, strategy="beta"))

    async with AsyncAdmissionListener(ledger_dsn, strategy="alpha") as listener:
        ledger.run(a_fan_out())
        assert await listener.wait(timeout=2) == ["alpha"]  # five admissions, one wake-up

        trade = ledger.claim_trades("alpha", "ex", limit=1)[0]  # state changes and attempts: no wake-up
        ledger.record_attempt(trade.trade_id, "ex", "sig-1", raw_tx("1"), 1, 1, fencing_token=trade.fencing_token)
        ledger.confirm_trade(trade.trade_id, "ex", "sig-1", fencing_token=trade.fencing_token)
        ledger.admit_trade(intent(1, vault="vault-1"))  # a replay admits nothing
        ledger.admit_trade(intent(22, strategy="beta"))  # another strategy's admission
        assert await listener.wait(timeout=1) == []

        ledger.admit_trade(intent(21))
        assert await listener.wait(timeout=2) == ["alpha"]
