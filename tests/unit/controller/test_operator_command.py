"""`xorj operator` refuses to start without its ledger DSN, with a clear one-line error."""

from __future__ import annotations

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
