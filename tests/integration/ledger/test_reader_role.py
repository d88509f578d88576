"""The read-only ledger login of migration 0011 (what `kubectl xorj scores`/`status` connect with), on
the real Postgres server: it reads the trader scores and the halt, and nothing of any tenant, and it
writes nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.integration.ledger.helpers import intent
from xorj.errors import InvalidInputError
from xorj.kubectl.errors import PluginError
from xorj.kubectl.ledger import LedgerReader
from xorj.ledger import Ledger
from xorj.ledger.reader_roles import ensure_reader_login
from xorj.ledger.records import AlertSeverity, StoredTraderScore


@pytest.fixture
def reader_dsn(ledger_owner_dsn: str) -> str:
    return ensure_reader_login(ledger_owner_dsn, f"oncall_{uuid.uuid4().hex[:10]}", "reader-" + uuid.uuid4().hex)


def test_a_reader_reads_scores_and_the_halt(ledger: Ledger, reader_dsn: str) -> None:
    ledger.upsert_trader_scores([StoredTraderScore("walletA", 61.5, "ELIGIBLE", rank=1, normalization="fixed"),
                                 StoredTraderScore("walletB", 0.0, "INSUFFICIENT_HISTORY", normalization="fixed")])
    ledger.set_trading_halt(True, reason="drill", actor="test")
    reader = LedgerReader(reader_dsn)
    assert [(s.wallet, s.score, s.rank) for s in reader.scores()] == [("walletA", 61.5, 1), ("walletB", 0.0, None)]
    assert [s.wallet for s in reader.scores(status="ELIGIBLE")] == ["walletA"]
    halt = reader.halt()
    assert halt.halted and halt.reason == "drill" and halt.set_by == "test"


@pytest.mark.parametrize("statement", [
    "SELECT count(*) FROM trades",
    "SELECT count(*) FROM attempts",
    "SELECT count(*) FROM trade_events",
    "SELECT count(*) FROM alerts",
    "SELECT count(*) FROM ledger_executor_logins",
    "SELECT count(*) FROM chain_reconciliation_findings",
    "UPDATE trading_halt SET halted = false",
    "DELETE FROM trader_scores",
    "INSERT INTO trader_scores (wallet, score, status) VALUES ('x', 1, 'ELIGIBLE')",
    "CREATE TABLE mine (x int)",
])
def test_a_reader_sees_no_tenant_data_and_writes_nothing(ledger: Ledger, reader_dsn: str, statement: str) -> None:
    ledger.admit_trade(intent(1, strategy="team-a/copy"))
    ledger.raise_alert("RPC_FAILURE", AlertSeverity.WARNING, "x", strategy="team-a/copy")
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_reader_errors_never_show_the_password(ledger_owner_dsn: str, reader_dsn: str) -> None:
    wrong = reader_dsn.replace("password=reader-", "password=wrong-")
    assert wrong != reader_dsn
    with pytest.raises(PluginError) as err:
        LedgerReader(wrong).scores()
    line = err.value.one_line()
    assert "cannot connect to the ledger" in line
    assert "wrong-" not in line and "reader-" not in line


def test_a_login_name_is_checked(ledger_owner_dsn: str) -> None:
    with pytest.raises(InvalidInputError, match="login"):
        ensure_reader_login(ledger_owner_dsn, "Robert'); DROP", "pw")
