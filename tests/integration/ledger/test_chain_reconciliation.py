"""The reconciler's tables (migration 0006) on the real Postgres: a finding is stored once whoever
reports it again, the cursor moves by compare-and-set, a late finalization closes its finding, a
person's resolution sticks; the operator's login uses them, an executor's login cannot."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from xorj.domain.reconciliation import Finding, FindingClass
from xorj.errors import InvalidInputError
from xorj.ledger.chain_reconciliation import ReconciliationStore
from xorj.ledger.records import TradeIntent
from xorj.ledger.repository import Ledger

VAULT = "Vau1t11111111111111111111111111111111111111"


def admit(ledger: Ledger, namespace: str = "ns") -> int:
    return ledger.admit_trade(TradeIntent(strategy=f"{namespace}/s", vault=VAULT, lead_signature="lead-1",
                                          lead_trader="L", input_mint="A", output_mint="B", amount=5)).trade_id


def finding(signature: str, cls: FindingClass = FindingClass.UNKNOWN_TRANSACTION, trade_id: int | None = None):
    return Finding(cls, VAULT, signature, f"detail of {signature}", trade_id=trade_id, slot=7, strategy="ns/s")


@pytest.fixture
def store(ledger_owner_dsn):
    with Ledger.connect(ledger_owner_dsn, apply_migrations=False) as owner_ledger:
        yield ReconciliationStore(owner_ledger)


def test_a_finding_is_stored_once_with_one_alert(store, ledger, ledger_dsn):
    trade_id = admit(ledger)
    first = store.record_findings([finding("sig-a"), finding("sig-b", FindingClass.UNRECORDED_LANDING, trade_id)])
    assert [(f.finding_class, f.signature) for f in first] == [
        (FindingClass.UNKNOWN_TRANSACTION, "sig-a"), (FindingClass.UNRECORDED_LANDING, "sig-b")]
    again = store.record_findings([finding("sig-a"), finding("sig-b", FindingClass.UNRECORDED_LANDING, trade_id)])
    assert again == []
    (stored_a, stored_b) = store.findings(vaults=[VAULT])
    assert stored_a.last_seen_at >= stored_a.first_seen_at and stored_b.trade_id == trade_id
    assert store.open_counts() == {FindingClass.UNKNOWN_TRANSACTION: 1, FindingClass.UNRECORDED_LANDING: 1,
                                   FindingClass.CONFIRMED_NOT_FINAL: 0}
    with psycopg.connect(ledger_dsn) as conn:
        alerts = conn.execute("SELECT kind, severity, trade_id FROM alerts ORDER BY id").fetchall()
    assert alerts == [("CHAIN_RECONCILIATION", "critical", None), ("CHAIN_RECONCILIATION", "critical", trade_id)]


def test_the_cursor_moves_by_compare_and_set(store, ledger):
    trade_id = admit(ledger)
    cursor = store.cursor(VAULT, baseline_margin=timedelta(seconds=60))
    assert cursor.signature is None
    assert cursor.not_before == ledger.get_trade(trade_id).created_at - timedelta(seconds=60)
    assert store.advance_cursor(VAULT, None, "s1")
    assert not store.advance_cursor(VAULT, None, "s2")  # a concurrent pass moved it first: ours changes nothing
    assert store.cursor(VAULT, baseline_margin=timedelta(0)).signature == "s1"
    assert store.cursor(VAULT, baseline_margin=timedelta(0)).not_before == cursor.not_before  # kept


def test_late_finalization_closes_the_finding_and_a_resolution_sticks(store, ledger):
    trade_id = admit(ledger)
    store.record_findings([finding("fin", FindingClass.CONFIRMED_NOT_FINAL, trade_id), finding("stolen")])
    store.mark_verified(trade_id, "fin", 99)
    (open_one,) = store.findings(vaults=[VAULT])
    assert open_one.signature == "stolen"
    closed = [f for f in store.findings(open_only=False) if f.signature == "fin"][0]
    assert "finalized later (slot 99)" in closed.resolution
    with pytest.raises(InvalidInputError, match="note"):
        store.resolve(open_one.finding_id, "  ", actor="alice")
    with pytest.raises(InvalidInputError, match="no finding"):
        store.resolve(10_000, "x", actor="alice")
    resolved = store.resolve(open_one.finding_id, "our own key rotation test", actor="alice")
    assert resolved.resolution == "alice: our own key rotation test"
    assert store.record_findings([finding("stolen")]) == []  # seen again: stays resolved, not re-opened
    assert store.findings(vaults=[VAULT]) == []


def test_executor_logins_cannot_touch_the_reconcilers_tables(ledger, executor_login):
    admit(ledger)
    login = executor_login("ns")
    with psycopg.connect(login.dsn, autocommit=True) as conn:
        for table in ("chain_reconciliation_cursors", "chain_reconciliation_findings",
                      "chain_reconciliation_verified"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table}")


def test_the_finding_class_check_lists_the_domain_classes(ledger_dsn):
    with psycopg.connect(ledger_dsn) as conn:
        (definition,) = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'chain_reconciliation_findings_class_valid'").fetchone()
    import re

    assert set(re.findall(r"'([A-Z_]+)'", definition)) == {c.value for c in FindingClass}
