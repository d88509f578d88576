"""Migrations: applied once, under the advisory lock, even when processes start together."""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path

import psycopg
import pytest

from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import LedgerError
from xorj.ledger.migrate import applied_versions, load_migrations, migrate

from .helpers import migrate_worker


def _run_together(target, argument_sets, tmp_path: Path) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # after every process has imported and is waiting
    outs = [tmp_path / f"out-{i}" for i in range(len(argument_sets))]
    procs = [ctx.Process(target=target, args=(*args, start_at, str(out))) for args, out in zip(argument_sets, outs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    return [out.read_text() for out in outs]


def test_fresh_database_is_migrated_once_and_then_left_alone(postgres_server):
    dsn = postgres_server.create_database("migrate_once")
    everything = [m.version for m in load_migrations()]
    assert migrate(dsn) == everything
    assert migrate(dsn) == []
    assert applied_versions(dsn) == everything


def test_two_processes_migrating_at_once_apply_each_migration_once(postgres_server, tmp_path):
    # A slow first migration keeps the lock held while the second process arrives; the second
    # migration would fail if it ran twice (duplicate key), and so would the CREATE TABLE.
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_slow_table.sql").write_text(
        "CREATE TABLE probe (id integer PRIMARY KEY); SELECT pg_sleep(1.5);"
    )
    (migrations / "0002_one_row.sql").write_text("INSERT INTO probe (id) VALUES (1);")
    dsn = postgres_server.create_database("migrate_race")

    results = _run_together(migrate_worker, [(dsn, str(migrations)), (dsn, str(migrations))], tmp_path)

    applied = sorted(results, key=len)
    assert applied == ["", "1,2"], f"each version must be applied by exactly one process, got {results}"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 1
        assert conn.execute("SELECT version FROM xorj_schema_migrations ORDER BY 1").fetchall() == [(1,), (2,)]


def test_two_processes_starting_on_the_real_migrations(postgres_server, tmp_path):
    dsn = postgres_server.create_database("migrate_race_real")
    results = _run_together(migrate_worker, [(dsn, None), (dsn, None)], tmp_path)
    everything = ",".join(str(m.version) for m in load_migrations())
    assert sorted(results) == ["", everything]


def test_an_edited_applied_migration_is_refused(postgres_server, tmp_path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_table.sql").write_text("CREATE TABLE edited (id integer);")
    dsn = postgres_server.create_database("migrate_edited")
    assert migrate(dsn, directory=migrations) == [1]
    (migrations / "0001_table.sql").write_text("CREATE TABLE edited (id bigint);")
    with pytest.raises(LedgerError, match="0001_table was changed after it was applied"):
        migrate(dsn, directory=migrations)


def test_a_badly_named_migration_file_is_refused(tmp_path):
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(LedgerError, match="1_first.sql: name must be NNNN_lowercase_name.sql"):
        load_migrations(tmp_path)


def _check_values(dsn: str, constraint: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        definition = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (constraint,)
        ).fetchone()[0]
    return set(re.findall(r"'([A-Z_]+)'::text", definition))


def test_sql_checks_list_exactly_the_domain_states_reasons_and_outcomes(ledger_dsn):
    assert _check_values(ledger_dsn, "trades_state_valid") == {s.value for s in TradeState}
    assert _check_values(ledger_dsn, "trades_reason_valid") == {r.value for r in ReasonCode}
    assert _check_values(ledger_dsn, "attempts_reason_valid") == {r.value for r in ReasonCode}
    assert _check_values(ledger_dsn, "attempts_send_failure_valid") == {r.value for r in ReasonCode}
    assert _check_values(ledger_dsn, "attempts_outcome_valid") == {o.value for o in AttemptOutcome}


def test_upgrading_moves_a_send_failure_out_of_the_detail_text(postgres_server, tmp_path):
    """An attempt stored before 0009 carried its send failure as the detail's first word; after the
    upgrade it is in attempts.send_failure, so a trade taken over across the upgrade is decided the same."""
    from xorj.ledger import Ledger
    from xorj.ledger.migrate import MIGRATIONS_DIR

    before = tmp_path / "before_0009"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) < 9:
            (before / path.name).write_text(path.read_text())
    dsn = postgres_server.create_database("upgrade_0009")
    migrate(dsn, directory=before)
    with psycopg.connect(dsn) as conn:
        trade_id = conn.execute(
            """INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount,
                                   state, submitted_at)
               VALUES ('ns/a', 'v', 'lead', 't', 'in', 'out', 5, 'SUBMITTED', now()) RETURNING id""").fetchone()[0]
        for no, detail in [(1, "RPC_TIMEOUT: never accepted (3 send(s) failed); finalized height 9 > last valid 8"),
                           (2, "unseen after expiry: finalized height 19 > last valid 18 (1 send(s) accepted)")]:
            conn.execute(
                """INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height, slippage_bps,
                                         outcome, reason, detail, resolved_at)
                   VALUES (%s, %s, %s, 'tx', 8, 100, 'EXPIRED', 'BLOCKHASH_EXPIRED', %s, now())""",
                (trade_id, no, f"sig-{no}", detail))
    assert migrate(dsn) == [m.version for m in load_migrations() if m.version >= 9]
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        first, second = ledger.get_trade(trade_id).attempts
    assert first.send_failure is ReasonCode.RPC_TIMEOUT and first.decisive_reason is ReasonCode.RPC_TIMEOUT
    assert second.send_failure is None and second.decisive_reason is ReasonCode.BLOCKHASH_EXPIRED
