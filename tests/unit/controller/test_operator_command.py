"""`xorj operator` refuses to start without its ledger DSN, with a clear one-line error, and keeps the
client libraries it never uses out of its process."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from xorj.cli import cli


def test_operator_needs_the_ledger_dsn(monkeypatch) -> None:
    monkeypatch.delenv("XORJ_LEDGER_DSN", raising=False)
    result = CliRunner().invoke(cli, ["operator", "--standalone"])
    assert result.exit_code != 0
    assert "XORJ_LEDGER_DSN is not set" in result.output


def test_crds_command_is_registered() -> None:
    result = CliRunner().invoke(cli, ["crds", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


# In a fresh interpreter: this test process may have imported kopf or the client already.
_IMPORT_AS_THE_OPERATOR = """
import sys
from xorj.commands.operator import UNUSED_CLIENTS, keep_unused_clients_out
keep_unused_clients_out()
import kopf
import xorj.controller.handlers
loaded = sorted(m for m in sys.modules if sys.modules[m] is not None
                and m.split(".")[0] in (*UNUSED_CLIENTS, "requests", "oauthlib", "websocket"))
logins = sorted(h.id for h in kopf.get_default_registry()._activities.get_all_handlers()
                if h.activity.value == "authentication" and not h._fallback)
print(loaded, logins)
"""


def test_the_operator_process_keeps_the_kubernetes_client_out() -> None:
    """`xorj operator` never uses the `kubernetes` client kopf would import (~11 MiB of RSS): its
    handlers import without it, and the only login is the operator's own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", _IMPORT_AS_THE_OPERATOR], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip().splitlines()[-1] == "[] ['login']"
