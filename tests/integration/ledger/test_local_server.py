"""The local Postgres server itself: restarts keep address and data; ``xorj dev db`` round trip."""

from __future__ import annotations

import os
import subprocess

import psycopg

from xorj.devenv.postgres import PostgresServer
from xorj.ledger.migrate import load_migrations


def test_restart_and_crash_keep_the_port_and_every_committed_row(disposable_postgres_server: PostgresServer):
    server = disposable_postgres_server
    port = server.port
    dsn = server.create_database("keep")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n integer)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 100)")

    server.restart()
    assert server.port == port and server.is_running()
    server.kill()
    assert not server.is_running()
    server.start()
    assert server.port == port
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 100
        # Test settings: fsync off (see xorj.devenv.postgres), commits still synchronous.
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"


def _xorj(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["xorj", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_dev_db_commands_round_trip(tmp_path):
    env = {**os.environ, "XORJ_CACHE_DIR": str(tmp_path / "cache")}
    try:
        assert _xorj("dev", "db", "status", env=env).returncode == 1
        up = _xorj("dev", "db", "up", env=env)
        assert up.returncode == 0, up.stderr
        dsn = up.stdout.strip().splitlines()[-1]
        assert dsn.startswith("postgresql://postgres@127.0.0.1:") and dsn.endswith("/xorj")
        assert _xorj("dev", "db", "up", env=env).stdout.strip() == dsn  # idempotent
        assert _xorj("dev", "db", "dsn", env=env).stdout.strip() == dsn
        status = _xorj("dev", "db", "status", env=env)
        assert status.returncode == 0 and f"migrations applied: {[m.version for m in load_migrations()]}" in status.stdout
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM trades").fetchone()[0] == 0
    finally:
        down = _xorj("dev", "db", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert _xorj("dev", "db", "status", env=env).returncode == 1
    dsn_when_down = _xorj("dev", "db", "dsn", env=env)
    assert dsn_when_down.returncode == 1 and "xorj dev db up" in dsn_when_down.stderr
    # The data survives down and comes back with up; --purge removes it.
    again = _xorj("dev", "db", "up", env=env)
    assert again.returncode == 0 and again.stdout.strip() == dsn
    purge = _xorj("dev", "db", "down", "--purge", env=env)
    assert purge.returncode == 0, purge.stderr
    removed = purge.stderr.strip().splitlines()[-1].removeprefix("[db] removed ")
    assert not os.path.exists(removed)
