"""The static gates, run with the tests (`make test`): ruff's lint over the repository and mypy strict
over the domain and the chain adapters, with the rules and packages pyproject.toml sets ([tool.ruff], [tool.mypy]) and the
versions its `dev` extra pins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check:\n{result.stdout}{result.stderr}"


def test_mypy_strict_finds_nothing_in_the_domain(tmp_path: Path) -> None:
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy"))
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
    assert "no issues found in" in result.stdout  # the packages of [tool.mypy] were checked
