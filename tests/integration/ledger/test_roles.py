"""Least privilege in the ledger (issue 11 item 5), on the real Postgres server.

The operator's role owns and migrates the schema without being a superuser; each namespace's executor
login, made as the operator makes it, can do every statement an executor makes on its own namespace's
trades and nothing else: not read, claim or rewrite another namespace's trades, not run programs on the
server, not create, alter or drop anything. Every login but the setup superuser must come over TLS;
``sslmode=verify-full`` connects with the server's CA and is refused with another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import psycopg.errors
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.fixtures.postgres import LEDGER_OWNER, LEDGER_OWNER_PASSWORD
from tests.integration.ledger.helpers import intent, ledger_as, raw_tx, refused
from xorj.devenv.tls import issue
from xorj.domain.risk import ALLOWED
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import LeaseLostError, TradeNotFoundError
from xorj.ledger import Ledger
from xorj.ledger.records import AlertSeverity, NewAlert
from xorj.ledger.roles import (
    drop_executor_login,
    ensure_executor_login,
    executor_login_name,
    generate_password,
    with_credentials,
)

A, B = "team-a", "team-b"


@pytest.fixture
def two_tenants(ledger: Ledger, executor_login):
    """One PENDING trade in each of two namespaces, and each namespace's executor login."""
    a_id = ledger.admit_trade(intent(1, strategy=f"{A}/copy", vault="vault-a")).trade_id
    b_id = ledger.admit_trade(intent(2, strategy=f"{B}/copy", vault="vault-b")).trade_id
    return a_id, b_id, executor_login(A), executor_login(B)


def test_the_operators_role_owns_the_schema_and_is_not_a_superuser(ledger_owner_dsn: str) -> None:
    with psycopg.connect(ledger_owner_dsn) as conn:
        role = conn.execute("SELECT rolname, rolsuper, rolcreaterole, rolbypassrls, rolcreatedb "
                            "FROM pg_roles WHERE rolname = current_user").fetchone()
        owners = {r[0] for r in conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
            "('trades', 'attempts', 'trade_events', 'alerts', 'xorj_schema_migrations', 'ledger_executor_logins')")}
        can_run_programs = conn.execute(
            "SELECT pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')").fetchone()[0]
    assert role == (LEDGER_OWNER, False, True, False, False)
    assert owners == {LEDGER_OWNER}  # the migrations ran as this role
    assert not can_run_programs


def test_a_namespace_login_sees_claims_and_writes_only_its_namespace(ledger: Ledger, two_tenants) -> None:
    a_id, b_id, login_a, _ = two_tenants
    with ledger_as(login_a.dsn) as as_a:
        assert as_a.claim_trades(f"{B}/copy", "thief", limit=10) == []
        assert as_a.find_trade(b_id) is None
        with pytest.raises(TradeNotFoundError):
            as_a.fail_trade(b_id, "thief", ReasonCode.CANCELLED, "rewritten", fencing_token=1)
        with pytest.raises(TradeNotFoundError):
            as_a.record_attempt(b_id, "thief", "sig-thief", raw_tx("thief"), 100, 50, fencing_token=1)
        assert as_a.counts_by_state() == {**{s: 0 for s in TradeState}, TradeState.PENDING: 1}
        assert [t.trade_id for t in as_a.claim_trades(f"{A}/copy", "exec-a")] == [a_id]
    trade_b = ledger.get_trade(b_id)
    assert (trade_b.state, trade_b.lease_owner, trade_b.attempts) == (TradeState.PENDING, None, ())


def test_raw_sql_of_a_namespace_login_cannot_touch_another_namespace(ledger: Ledger, two_tenants) -> None:
    a_id, b_id, login_a, _ = two_tenants
    with psycopg.connect(login_a.dsn, autocommit=True) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM trades")] == [a_id]
        cur = conn.execute("UPDATE trades SET state = 'FAILED', reason = 'CANCELLED', detail = 'x' WHERE id = %s",
                           (b_id,))
        assert cur.rowcount == 0
        cur = conn.execute("UPDATE trades SET lease_owner = 'thief', lease_expires_at = now() + interval '1 hour' "
                           "WHERE state = 'PENDING'")
        assert cur.rowcount == 1  # its own trade only
        for statement, params in [
            ("INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height, slippage_bps) "
             "VALUES (%s, 1, 'sig-x', '\\x01', 1, 1)", (b_id,)),
            ("INSERT INTO trade_events (trade_id, strategy, to_state) VALUES (%s, %s, 'FAILED')", (b_id, f"{B}/copy")),
            ("INSERT INTO trade_events (trade_id, strategy, to_state) VALUES (%s, %s, 'FAILED')", (b_id, f"{A}/copy")),
            ("INSERT INTO alerts (kind, severity, strategy, message) VALUES ('k', 'info', %s, 'm')", (f"{B}/copy",)),
            ("INSERT INTO alerts (kind, severity, strategy, trade_id, message) VALUES ('k', 'info', %s, %s, 'm')",
             (f"{A}/copy", b_id)),
        ]:
            assert isinstance(refused(conn, statement, params), psycopg.errors.InsufficientPrivilege), statement
        assert isinstance(refused(conn, "SELECT executor_group FROM ledger_roles"),
                          psycopg.errors.InsufficientPrivilege)
        # SET ROLE to its group does not change whose namespace it is: the policies read session_user
        group = conn.execute("SELECT rolname FROM pg_roles WHERE pg_has_role(session_user, oid, 'MEMBER') "
                             "AND NOT rolcanlogin").fetchone()[0]
        conn.execute(f'SET ROLE "{group}"')
        assert [r[0] for r in conn.execute("SELECT id FROM trades")] == [a_id]
        conn.execute("RESET ROLE")
    trade_b = ledger.get_trade(b_id)
    assert (trade_b.state, trade_b.lease_owner, trade_b.attempts) == (TradeState.PENDING, None, ())
    assert ledger.trade_events(b_id)[-1].to_state is TradeState.PENDING


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/xorj-pwned'",
    "COPY trades FROM PROGRAM 'echo'",
    "SELECT pg_read_file('/etc/passwd')",
    "CREATE TABLE stolen (x int)",
    "CREATE TEMP TABLE ledger_executor_logins (login name, namespace text)",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "ALTER TABLE trades DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE trades ADD COLUMN x int",
    "DROP POLICY trades_namespace ON trades",
    "DROP TABLE attempts",
    "TRUNCATE trades",
    "DELETE FROM trades",
    "DELETE FROM attempts",
    "INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount) "
    "VALUES ('team-a/copy', 'v', 's', 'l', 'i', 'o', 1)",
    "UPDATE trades SET amount = 1",
    "UPDATE trades SET output_mint = 'AttackerMint'",
    "UPDATE trades SET vault = 'other-vault'",
    "UPDATE trades SET strategy = 'team-b/copy'",
    "UPDATE alerts SET delivered_at = now()",
    "INSERT INTO ledger_executor_logins (login, namespace) VALUES (session_user, 'team-b')",
    "UPDATE ledger_executor_logins SET namespace = 'team-b'",
    "SELECT * FROM trader_scores",
    "SELECT * FROM xorj_schema_migrations",
    "ALTER ROLE CURRENT_USER CREATEROLE",
    "ALTER ROLE CURRENT_USER BYPASSRLS",
    "SET ROLE xorj_ledger_owner",
    "CREATE ROLE sneaky LOGIN",
    "ALTER SYSTEM SET ssl = off",
])
def test_a_namespace_login_cannot_escalate_or_change_the_schema(
    ledger: Ledger, ledger_dsn: str, two_tenants, statement: str
) -> None:
    _, _, login_a, _ = two_tenants
    with psycopg.connect(login_a.dsn, autocommit=True) as conn:
        error = refused(conn, statement)
    assert isinstance(error, psycopg.errors.InsufficientPrivilege), f"{statement}: {type(error).__name__}: {error}"
    with psycopg.connect(ledger_dsn) as setup:
        assert setup.execute("SELECT count(*) FROM trades").fetchone()[0] == 2
        assert setup.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'trades'::regclass").fetchone() == (True,)


def test_a_namespace_login_makes_every_executor_statement(ledger: Ledger, executor_login) -> None:
    """The executor's whole life on its own trades, through the same Ledger methods it calls."""
    strategy = f"{A}/copy"
    ids = [ledger.admit_trade(intent(n, strategy=strategy, vault="vault-a")).trade_id for n in (1, 2, 3, 4)]
    login = executor_login(A)
    with ledger_as(login.dsn) as ex:
        assert ex.ping()
        claimed = ex.claim_trades(strategy, "exec-a", limit=10, lease_seconds=60)
        assert [t.trade_id for t in claimed] == ids
        token = {t.trade_id: t.fencing_token for t in claimed}
        assert ex.heartbeat(token, "exec-a", 60) == set(ids)
        first, second, third, fourth = ids
        # risk gate, write-ahead attempt, expiry, next attempt, confirmation
        assert ex.reserve_daily_share(first, "exec-a", Decimal(10), lambda usage: ALLOWED,
                                      fencing_token=token[first]).allowed
        assert ex.vault_activity("vault-a", ex.get_trade(first).created_at).trade_count == 1
        ex.record_attempt(first, "exec-a", "sig-1a", raw_tx("1a"), 1_000, 50, quote_out_amount=5,
                          fencing_token=token[first])
        ex.resolve_attempt("sig-1a", "exec-a", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, "expired",
                           fencing_token=token[first])
        ex.record_attempt(first, "exec-a", "sig-1b", raw_tx("1b"), 2_000, 60, fencing_token=token[first])
        # the idempotent repeat
        ex.record_attempt(first, "exec-a", "sig-1b", raw_tx("1b"), 2_000, 60, fencing_token=token[first])
        ex.resolve_attempt("sig-1b", "exec-a", AttemptOutcome.LANDED, fencing_token=token[first])
        assert ex.get_trade(first).state is TradeState.CONFIRMED
        # a failure with its alert in the same transaction
        ex.record_attempt(second, "exec-a", "sig-2", raw_tx("2"), 1_000, 50, fencing_token=token[second])
        ex.resolve_attempt("sig-2", "exec-a", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED,
                           fencing_token=token[second])
        ex.fail_trade(second, "exec-a", ReasonCode.SLIPPAGE_EXCEEDED, "cap reached", fencing_token=token[second],
                      alert=NewAlert("TRADE_FAILED", AlertSeverity.WARNING, "failed", strategy, second))
        # confirm_trade directly, release, an alert of its own
        ex.record_attempt(third, "exec-a", "sig-3", raw_tx("3"), 1_000, 50, fencing_token=token[third])
        ex.confirm_trade(third, "exec-a", "sig-3", fencing_token=token[third])
        assert ex.release(third, "exec-a", fencing_token=token[third]) is False  # terminal: nothing to hand back
        # a processing crash at the poison limit: FAILED POISON_TRADE with its alert
        assert ex.record_crash(fourth, "exec-a", "boom", poison_after=1,
                               fencing_token=token[fourth]).reason is ReasonCode.POISON_TRADE
        ex.raise_alert("BREAKER_OPEN", AlertSeverity.CRITICAL, "breaker", strategy=strategy)
        # the executor reads what its breaker counts: confirmed, failed (slippage), confirmed, failed (poison)
        events = ex.breaker_events(strategy, ex.get_trade(first).created_at, datetime.now(UTC))
        assert [e.success for e in events] == [True, False, True, False]
        with pytest.raises(LeaseLostError):
            ex.fail_trade(third, "exec-a", ReasonCode.CANCELLED, fencing_token=token[third])
    assert [ledger.get_trade(i).state for i in ids] == [TradeState.CONFIRMED, TradeState.FAILED, TradeState.CONFIRMED,
                                                         TradeState.FAILED]
    assert [e.actor for e in ledger.trade_events(first)] == [None, "exec-a", "exec-a"]
    assert {a.kind for a in ledger.pending_alerts()} == {"TRADE_FAILED", "BREAKER_OPEN", "POISON_TRADE"}


def test_logins_are_per_database_so_databases_on_one_server_do_not_collide(
    postgres_server, ledger: Ledger, ledger_dsn: str, ledger_owner_dsn: str
) -> None:
    other_db = "ledger_roles_other"
    postgres_server.drop_database(other_db)
    postgres_server.create_database(other_db, template="xorj_ledger_template", owner=LEDGER_OWNER)
    try:
        other_owner_dsn = postgres_server.dsn_for(other_db, user=LEDGER_OWNER, password=LEDGER_OWNER_PASSWORD)
        here = ensure_executor_login(ledger_owner_dsn, A, generate_password())
        there = ensure_executor_login(other_owner_dsn, A, generate_password())
        assert here.login != there.login
        assert here.login == executor_login_name(conninfo_to_dict(ledger_dsn)["dbname"], A)
        ledger.admit_trade(intent(1, strategy=f"{A}/copy"))
        # the other database's login for the same namespace reaches nothing here
        foreign = with_credentials(here.dsn, there.login, conninfo_to_dict(there.dsn)["password"])
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(foreign, connect_timeout=5).close()
    finally:
        postgres_server.drop_database(other_db)


def test_ensuring_a_login_again_changes_its_password_and_keeps_one_login(ledger_owner_dsn: str) -> None:
    first = ensure_executor_login(ledger_owner_dsn, A, generate_password())
    second = ensure_executor_login(ledger_owner_dsn, A, generate_password())
    assert first.login == second.login
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(first.dsn, connect_timeout=5).close()
    with psycopg.connect(second.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_executor_logins").fetchone()[0] == 1
    assert "password" not in repr(second) and conninfo_to_dict(second.dsn)["password"] not in repr(second)


def test_tls_verify_full_connects_and_a_wrong_ca_or_plain_tcp_is_refused(
    postgres_server, executor_login, tmp_path
) -> None:
    login = executor_login(A)
    params = conninfo_to_dict(login.dsn)
    assert params["sslmode"] == "verify-full"
    with psycopg.connect(login.dsn) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    other_ca, _, _ = issue(["127.0.0.1"])
    (tmp_path / "other-ca.crt").write_bytes(other_ca)
    wrong_ca = with_credentials(login.dsn, login.login, params["password"], sslrootcert=str(tmp_path / "other-ca.crt"))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong_ca, connect_timeout=5).close()
    # the right CA, but a name the certificate does not carry
    wrong_name = with_credentials(login.dsn, login.login, params["password"], host="ledger.example",
                                  hostaddr="127.0.0.1")
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(wrong_name, connect_timeout=5).close()
    plain = with_credentials(login.dsn, login.login, params["password"], sslmode="disable")
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        psycopg.connect(plain, connect_timeout=5).close()


def test_a_dropped_login_loses_its_namespace_and_cannot_log_in(ledger: Ledger, ledger_owner_dsn: str) -> None:
    ledger.admit_trade(intent(1, strategy=f"{A}/copy"))
    login = ensure_executor_login(ledger_owner_dsn, A, generate_password())
    with psycopg.connect(login.dsn, autocommit=True) as still_connected:
        assert drop_executor_login(ledger_owner_dsn, A) is True
        # its open session keeps its connection but no privilege (the role it runs as is gone)
        assert isinstance(refused(still_connected, "SELECT count(*) FROM trades"),
                          psycopg.errors.InsufficientPrivilege)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(login.dsn, connect_timeout=5).close()
    assert drop_executor_login(ledger_owner_dsn, A) is False
