"""The ledger partition is a real cut: through the proxy a live Postgres session dies and new ones are
refused (reset) or hang (blackhole) until the path is restored."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest

from xorj.chaos.actions import _http

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def proxy(postgres_server, tmp_path):
    state_file = tmp_path / "proxy.json"
    process = subprocess.Popen([sys.executable, "-m", "xorj.chaos.proxy", "--target",
                                f"127.0.0.1:{postgres_server.port}", "--state-file", str(state_file)])
    deadline = time.monotonic() + 20
    while not state_file.exists():
        assert time.monotonic() < deadline and process.poll() is None, "proxy did not start"
        time.sleep(0.05)
    state = json.loads(state_file.read_text())
    yield (f"postgresql://postgres@127.0.0.1:{state['listen_port']}/postgres",
           f"http://127.0.0.1:{state['control_port']}")
    process.terminate()
    process.wait(10)


def test_cut_kills_sessions_and_refuses_new_ones_until_restored(proxy):
    dsn, control = proxy
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert _http(control + "/cut", "POST", {"mode": "reset"})["cut"] is True
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3)
    _http(control + "/restore", "POST", {})
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_blackhole_hangs_new_sessions_and_rejects_bad_modes(proxy):
    dsn, control = proxy
    _http(control + "/cut", "POST", {"mode": "blackhole"})
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)
    assert time.monotonic() - started >= 1.5  # the client waited for its own timeout: nothing answered
    with pytest.raises(Exception, match="mode must be one of"):
        _http(control + "/cut", "POST", {"mode": "sideways"})
    _http(control + "/restore", "POST", {})
    with psycopg.connect(dsn, connect_timeout=3):
        pass
