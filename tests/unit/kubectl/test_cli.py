"""The console script: registered for kubectl to find, errors on one line with a hint, exit codes."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from xorj.kubectl import cli

REPO = Path(__file__).resolve().parents[3]


def test_the_package_installs_kubectl_xorj() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-xorj"] == "xorj.kubectl.cli:main"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
        sys.exit(0)
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["halt"], 1, "needs --all"),
    (["trades", "--state", "DONE"], 1, "--state"),
    (["trades", "--since", "last week"], 1, "--since"),
    (["scores"], 1, "XORJ_LEDGER_READER_DSN"),
    (["status"], 2, "Missing argument"),
    (["explain", "x", "--cluster", "localnet"], 2, "localnet"),
    (["frobnicate"], 2, "No such command"),
])
def test_errors_are_one_line_with_a_hint(capsys: pytest.CaptureFixture[str], args: list[str], code: int,
                                         needle: str) -> None:
    rc, out, err = _run(capsys, *args)
    assert rc == code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "(hint: " in lines[0] and needle in lines[0]
    assert "Traceback" not in err


def test_a_missing_kubeconfig_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    rc, _, err = _run(capsys, "trades")
    assert rc == 1 and err.count("\n") == 1 and "kubeconfig" in err and "--kubeconfig" in err


def test_help_describes_what_scores_reads(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "scores", "--help")
    assert rc == 0 and "trader_scores" in out and "TraderPool" in out
