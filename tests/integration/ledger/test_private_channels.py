"""Notifications stay inside their namespace (migration 0016, docs/security.md "Notifications"), on
the real Postgres server with logins made as the operator makes them.

Postgres lets any role LISTEN or NOTIFY on any channel it can name, and notifications are not under
row-level security, so the ledger names its channels by a secret: a namespace's executor login may
learn only its own namespace's admissions channel, hears nothing of another namespace on any name
it can try (the old fixed ones included), and cannot wake another namespace's executors.
"""

from __future__ import annotations

import uuid

import psycopg
import psycopg.errors
from psycopg import sql

from tests.integration.ledger.helpers import intent, ledger_as, refused
from xorj.domain.trades import ReasonCode, TradeState
from xorj.ledger import AsyncAdmissionListener, Ledger, TradeListener, TradeNotification
from xorj.ledger.reader_roles import ensure_reader_login
from xorj.ledger.records import AlertSeverity
from xorj.ledger.roles import ensure_signer_login

A, B = "team-a", "team-b"
FIXED_NAMES = ("xorj_trades", "xorj_admissions", "xorj_alerts")  # the names of migrations 0001-0015


def _channel(conn: psycopg.Connection, kind: str) -> str:
    return conn.execute("SELECT ledger_channel(%s)", (kind,)).fetchone()[0]


def _listen(conn: psycopg.Connection, *names: str) -> None:
    for name in names:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))


def test_a_namespace_login_hears_nothing_of_another_namespace(ledger: Ledger, ledger_owner_dsn: str,
                                                              executor_login) -> None:
    login_a, login_b = executor_login(A), executor_login(B)
    with psycopg.connect(login_a.dsn, autocommit=True) as spy, TradeListener(ledger_owner_dsn) as operator:
        own = _channel(spy, "admissions")
        _listen(spy, *FIXED_NAMES, own)
        # namespace B's trade, from admission to FAILED by B's executor, with an alert on the way
        b_id = ledger.admit_trade(intent(2, strategy=f"{B}/copy", vault="vault-b")).trade_id
        with ledger_as(login_b.dsn) as as_b:
            [claimed] = as_b.claim_trades(f"{B}/copy", "exec-b")
            as_b.raise_alert("BREAKER_OPEN", AlertSeverity.CRITICAL, "breaker", strategy=f"{B}/copy")
            as_b.fail_trade(b_id, "exec-b", ReasonCode.CANCELLED, "done", fencing_token=claimed.fencing_token)
        # Then A's own admission: a session gets notifications in commit order, so any of B's would
        # have come before this one.
        ledger.admit_trade(intent(1, strategy=f"{A}/copy", vault="vault-a"))
        heard = list(spy.notifies(timeout=5, stop_after=1))
        heard += list(spy.notifies(timeout=0.3))
        seen_by_operator = operator.wait(timeout=5, max_count=3)
    assert [(n.channel, n.payload) for n in heard] == [(own, f"{A}/copy")]
    # B's changes were announced: to the operator, on the trades channel only it can name
    assert seen_by_operator[:2] == [TradeNotification(b_id, f"{B}/copy", TradeState.PENDING),
                                    TradeNotification(b_id, f"{B}/copy", TradeState.FAILED)]


def test_a_namespace_login_cannot_learn_another_channel(ledger_owner_dsn: str, executor_login) -> None:
    login_a, login_b = executor_login(A), executor_login(B)
    signer_a = ensure_signer_login(ledger_owner_dsn, A, f"pw-{uuid.uuid4().hex}")
    reader = ensure_reader_login(ledger_owner_dsn, f"oncall_{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}")
    with psycopg.connect(login_a.dsn, autocommit=True) as as_a, \
            psycopg.connect(login_b.dsn, autocommit=True) as as_b, \
            psycopg.connect(ledger_owner_dsn, autocommit=True) as owner:
        names = {_channel(as_a, "admissions"), _channel(as_b, "admissions"), _channel(owner, "admissions"),
                 _channel(owner, "trades"), _channel(owner, "alerts")}
        assert len(names) == 5 and not names & set(FIXED_NAMES)
        for kind in ("trades", "alerts"):
            assert isinstance(refused(as_a, "SELECT ledger_channel(%s)", (kind,)),
                              psycopg.errors.InsufficientPrivilege)
        assert isinstance(refused(as_a, "SELECT ledger_channel('everything')"), psycopg.errors.InvalidParameterValue)
        for statement in ("SELECT secret FROM ledger_channel_secret",
                          f"SELECT xorj_channel('{B}', 'admissions')", "SELECT xorj_channel('', 'trades')"):
            assert isinstance(refused(as_a, statement), psycopg.errors.InsufficientPrivilege), statement
    for dsn in (signer_a.dsn, reader):
        with psycopg.connect(dsn, autocommit=True) as other:
            assert isinstance(refused(other, "SELECT ledger_channel('admissions')"),
                              psycopg.errors.InsufficientPrivilege)


async def test_an_executor_login_is_woken_by_its_own_admissions_and_by_no_forgery(
        ledger: Ledger, ledger_owner_dsn: str, executor_login) -> None:
    login_a, login_b = executor_login(A), executor_login(B)
    async with AsyncAdmissionListener(login_b.dsn, strategy=f"{B}/copy") as executor_b, \
            AsyncAdmissionListener(ledger_owner_dsn, strategy=f"{B}/copy") as owner_run:
        with psycopg.connect(login_a.dsn, autocommit=True) as forger:
            for name in (*FIXED_NAMES, _channel(forger, "admissions")):
                forger.execute("SELECT pg_notify(%s, %s)", (name, f"{B}/copy"))
        # forged wake-ups would come first: a session gets notifications in commit order
        ledger.admit_trade(intent(1, strategy=f"{A}/copy", vault="vault-a"))
        ledger.admit_trade(intent(2, strategy=f"{B}/copy", vault="vault-b"))
        assert await executor_b.wait(timeout=5, max_count=1) == [f"{B}/copy"]
        # the owner's channel carries every namespace's admissions: A's, filtered out here, then B's
        assert await owner_run.wait(timeout=5, max_count=2) == [f"{B}/copy"]
        assert await executor_b.wait(timeout=0.3) == []


def test_rotating_the_secret_renames_every_channel(ledger: Ledger, ledger_owner_dsn: str, executor_login) -> None:
    """docs/security.md's rotation: a new secret, and a listener that looks its name up again hears
    on the new name while one still on the old name hears nothing (it would claim on its poll)."""
    login_a = executor_login(A)
    with psycopg.connect(login_a.dsn, autocommit=True) as stale, psycopg.connect(login_a.dsn, autocommit=True) as fresh:
        old = _channel(stale, "admissions")
        _listen(stale, old)
        with psycopg.connect(ledger_owner_dsn, autocommit=True) as owner:
            owner.execute("UPDATE ledger_channel_secret SET secret = DEFAULT")
        new = _channel(fresh, "admissions")
        _listen(fresh, new)
        ledger.admit_trade(intent(1, strategy=f"{A}/copy", vault="vault-a"))
        heard = [(n.channel, n.payload) for n in fresh.notifies(timeout=5, stop_after=1)]
        assert new != old and heard == [(new, f"{A}/copy")]
        assert list(stale.notifies(timeout=0.3)) == []
