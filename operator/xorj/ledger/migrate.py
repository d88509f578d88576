"""Versioned SQL migrations, applied on start under a Postgres advisory lock.

Files are ``NNNN_name.sql`` in ``xorj/ledger/migrations``; each is applied once, in version order, in
its own transaction together with its row in ``xorj_schema_migrations``. Every process applies
migrations on start: the session-level advisory lock serialises them, so when several start together
one applies the pending files and the others wait, then find nothing left to do. An applied file that
was edited afterwards is refused (its checksum no longer matches): migrations are append-only.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from xorj.errors import LedgerError
from xorj.ledger.pool import translated_errors

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary but fixed: every xorj process contends on this one advisory lock key.
MIGRATION_LOCK_KEY = 0x786F726A_6D696772  # "xorjmigr"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, ordered by version; a badly named or duplicate file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise LedgerError(f"migration file {path.name}: name must be NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise LedgerError(f"migration file {path.name}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def migrate(dsn: str, *, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the pending migrations; return the versions this call applied (empty if none were due)."""
    migrations = load_migrations(directory)
    applied_now: list[int] = []
    with translated_errors(), psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS xorj_schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                version: checksum
                for version, checksum in conn.execute("SELECT version, checksum FROM xorj_schema_migrations")
            }
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise LedgerError(
                            f"migration {migration.version:04d}_{migration.name} was changed after it was "
                            "applied; add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO xorj_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.version)
                log.info("applied ledger migration", extra={"version": migration.version, "migration": migration.name})
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def applied_versions(dsn: str) -> list[int]:
    """Versions recorded in ``xorj_schema_migrations`` (empty for a database never migrated)."""
    with translated_errors(), psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass('xorj_schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        return [row[0] for row in conn.execute("SELECT version FROM xorj_schema_migrations ORDER BY version")]
