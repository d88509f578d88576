"""Admission is idempotent on (strategy, vault, lead signature); broken constraints are clear errors."""

from __future__ import annotations

import dataclasses
import threading

import psycopg
import pytest

from xorj.domain.trades import ReasonCode, TradeState
from xorj.errors import (
    IllegalTransitionError,
    InvalidInputError,
    LedgerConstraintError,
    LedgerError,
    RefusedTransitionError,
    TradeNotFoundError,
)
from xorj.ledger import Ledger, StoredTraderScore

from .helpers import current_token, intent, raw_tx


def test_admission_creates_a_pending_trade_with_its_audit_row(ledger: Ledger):
    result = ledger.admit_trade(intent(1), actor="operator")
    assert result.created and result.existing_state is None
    trade = ledger.get_trade(result.trade_id)
    assert trade.state is TradeState.PENDING
    assert trade.key == intent(1).key and trade.amount == 1_000_000 and trade.attempts == ()
    assert ledger.get_trade(intent(1).key).trade_id == result.trade_id
    [event] = ledger.trade_events(result.trade_id)
    assert (event.from_state, event.to_state, event.actor) == (None, TradeState.PENDING, "operator")


def test_a_replayed_intent_is_a_no_op_that_says_so(ledger: Ledger):
    first = ledger.admit_trade(intent(7))
    trade = ledger.claim_trades("alpha", "ex-1", limit=1)[0]
    ledger.record_attempt(trade.trade_id, "ex-1", "sig-a", raw_tx("a"), 500, 100, fencing_token=trade.fencing_token)

    replay = ledger.admit_trade(dataclasses.replace(intent(7), amount=999))  # same key, other fields differ
    assert replay.trade_id == first.trade_id
    assert replay.created is False
    assert replay.existing_state is TradeState.SUBMITTED
    assert "replay" in replay.describe() and "nothing changed" in replay.describe()
    stored = ledger.get_trade(first.trade_id)
    assert stored.amount == 1_000_000 and stored.state is TradeState.SUBMITTED
    assert len(ledger.trade_events(first.trade_id)) == 2  # admission + submission, nothing for the replay
    assert ledger.counts_by_state("alpha")[TradeState.SUBMITTED] == 1
    assert sum(ledger.counts_by_state("alpha").values()) == 1


def test_the_same_lead_trade_for_another_vault_or_strategy_is_a_new_trade(ledger: Ledger):
    a = ledger.admit_trade(intent(1))
    b = ledger.admit_trade(dataclasses.replace(intent(1), vault="vault-2"))
    c = ledger.admit_trade(dataclasses.replace(intent(1), strategy="beta"))
    assert a.created and b.created and c.created
    assert len({a.trade_id, b.trade_id, c.trade_id}) == 3


def test_racing_admissions_of_one_key_create_one_trade(ledger: Ledger):
    barrier = threading.Barrier(6)
    results = []

    def admit():
        barrier.wait()
        results.append(ledger.admit_trade(intent(42)))

    threads = [threading.Thread(target=admit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len({r.trade_id for r in results}) == 1


@pytest.mark.parametrize(
    ("change", "constraint", "field"),
    [
        ({"amount": 0}, "trades_amount_positive", "amount"),
        ({"amount": -5}, "trades_amount_positive", "amount"),
        ({"max_slippage_bps": 20_000}, "trades_max_slippage_bps_range", "max_slippage_bps"),
        ({"strategy": ""}, "trades_strategy_not_empty", "strategy"),
        ({"lead_signature": ""}, "trades_lead_signature_not_empty", "lead_signature"),
    ],
)
def test_bad_intents_are_refused_naming_constraint_and_field(ledger: Ledger, change, constraint, field):
    with pytest.raises(LedgerConstraintError) as caught:
        ledger.admit_trade(dataclasses.replace(intent(1), **change))
    assert constraint in str(caught.value) and field in str(caught.value)
    assert sum(ledger.counts_by_state().values()) == 0


def test_attempt_constraints_are_clear_errors(ledger: Ledger):
    one = ledger.admit_trade(intent(1)).trade_id
    two = ledger.admit_trade(intent(2)).trade_id
    ledger.claim_trades("alpha", "ex", limit=2)
    ledger.record_attempt(one, "ex", "sig-1", raw_tx("1"), 100, 50, fencing_token=current_token(ledger, one))

    with pytest.raises(LedgerConstraintError, match=r"attempts_signature_unique.*\(signature\)=\(sig-1\) already exists") as caught:
        ledger.record_attempt(two, "ex", "sig-1", raw_tx("other bytes"), 100, 50, fencing_token=current_token(ledger, two))
    assert caught.value.constraint == "attempts_signature_unique"  # what callers branch on, not the text
    # A signature of another trade only the database can see: its constraint is the error, by name.
    # Rules of the trade itself are the state machine's (xorj.domain.trades), applied before any
    # write and naming the field; the SQL constraints stay under them as the safety net (below).
    with pytest.raises(RefusedTransitionError, match="attempt sig-1 is still unresolved"):
        ledger.record_attempt(one, "ex", "sig-2", raw_tx("2"), 100, 50, fencing_token=current_token(ledger, one))
    with pytest.raises(InvalidInputError, match="attempt.slippage_bps: must be >= 0"):
        ledger.record_attempt(two, "ex", "sig-3", raw_tx("3"), 100, -1, fencing_token=current_token(ledger, two))
    with pytest.raises(InvalidInputError, match="attempt.raw_tx: must be the non-empty"):
        ledger.record_attempt(two, "ex", "sig-4", b"", 100, 50, fencing_token=current_token(ledger, two))
    # Nothing of the refused writes remains: trade two is still PENDING without attempts.
    assert ledger.get_trade(two).state is TradeState.PENDING and ledger.get_trade(two).attempts == ()


def test_sql_refuses_illegal_states_and_transitions_even_bypassing_the_repository(ledger: Ledger, ledger_dsn):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    with psycopg.connect(ledger_dsn) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="illegal trade transition PENDING -> CONFIRMED"):
            conn.execute("UPDATE trades SET state = 'CONFIRMED', final_signature = 'x' WHERE id = %s", (trade_id,))
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="trades_state_valid"):
            conn.execute(
                """INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint,
                                       amount, state) VALUES ('a', 'v', 's', 'l', 'i', 'o', 1, 'LANDED')"""
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="trades_failed_has_reason"):
            conn.execute("UPDATE trades SET state = 'FAILED' WHERE id = %s", (trade_id,))
        conn.rollback()
        insert = """INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                          slippage_bps, outcome, reason, send_failure, resolved_at)
                    VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %s, CASE WHEN %s = 'PENDING' THEN NULL ELSE now() END)"""
        conn.execute(insert, (trade_id, 1, "net-1", b"tx", 50, "PENDING", None, None, "PENDING"))
        for values, constraint in [
            ((trade_id, 2, "net-2", b"tx", 50, "PENDING", None, None, "PENDING"), "attempts_one_pending_per_trade"),
            ((trade_id, 2, "net-2", b"tx", -1, "EXPIRED", "BLOCKHASH_EXPIRED", None, "EXPIRED"),
             "attempts_slippage_bps_range"),
            ((trade_id, 2, "net-2", b"", 50, "EXPIRED", "BLOCKHASH_EXPIRED", None, "EXPIRED"), "attempts_raw_tx_not_empty"),
            ((trade_id, 2, "net-2", b"tx", 50, "EXPIRED", "BLOCKHASH_EXPIRED", "SOON", "EXPIRED"),
             "attempts_send_failure_valid"),
            ((trade_id, 2, "net-2", b"tx", 50, "FAILED_ON_CHAIN", "PROGRAM_ERROR", "RPC_TIMEOUT", "FAILED_ON_CHAIN"),
             "attempts_send_failure_only_expired"),
        ]:
            with pytest.raises(psycopg.errors.IntegrityError) as caught, conn.transaction():
                conn.execute(insert, values)
            assert caught.value.diag.constraint_name == constraint


def test_repository_refuses_transitions_the_state_machine_does_not_allow(ledger: Ledger):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    ledger.claim_trades("alpha", "ex", limit=1)
    ledger.fail_trade(trade_id, "ex", ReasonCode.RISK_LIMIT, "max_trade_notional: 10 > 5", fencing_token=current_token(ledger, trade_id))
    trade = ledger.get_trade(trade_id)
    assert (trade.state, trade.reason, trade.detail) == (TradeState.FAILED, ReasonCode.RISK_LIMIT, "max_trade_notional: 10 > 5")
    assert trade.lease_owner is None
    with pytest.raises(LedgerError, match="only PENDING trades can be"):
        ledger.cancel_trade(trade_id, "user deleted the CopyTrade")

    pending = ledger.admit_trade(intent(2)).trade_id
    ledger.claim_trades("alpha", "ex", limit=1)
    with pytest.raises(IllegalTransitionError, match="PENDING -> CONFIRMED"):
        ledger.confirm_trade(pending, "ex", "sig-never-recorded", fencing_token=current_token(ledger, pending))
    assert ledger.get_trade(pending).state is TradeState.PENDING


def test_unknown_ids_are_not_found(ledger: Ledger):
    with pytest.raises(TradeNotFoundError):
        ledger.get_trade(12345)
    with pytest.raises(TradeNotFoundError):
        ledger.resolve_attempt("no-such-signature", "ex", "EXPIRED", fencing_token=1)


def test_trader_scores_are_upserted_and_range_checked(ledger: Ledger):
    assert ledger.upsert_trader_scores(
        [StoredTraderScore("Pro", 80.55, "ELIGIBLE", rank=1),
         StoredTraderScore("Gambler", 3.0, "INSUFFICIENT_TRADES", rank=2)]
    ) == 2
    ledger.upsert_trader_scores([StoredTraderScore("Pro", 71.2, "ELIGIBLE", rank=1, sharpe=1.5)])
    listed = ledger.list_trader_scores()
    assert [(s.wallet, s.score) for s in listed] == [("Pro", 71.2), ("Gambler", 3.0)]
    assert listed[0].sharpe == 1.5 and listed[0].computed_at is not None
    assert [s.wallet for s in ledger.list_trader_scores(min_score=50)] == ["Pro"]
    with pytest.raises(LedgerConstraintError, match="trader_scores_score_range.*score"):
        ledger.upsert_trader_scores([StoredTraderScore("Broken", 150.0, "ELIGIBLE")])
    with pytest.raises(LedgerConstraintError, match="trader_scores_score_range"):
        ledger.upsert_trader_scores([StoredTraderScore("NaN", float("nan"), "ELIGIBLE")])
