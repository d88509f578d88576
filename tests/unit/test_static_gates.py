"""The static gates, run with the tests (`make test`): ruff's lint over the repository; mypy strict over
the domain, the chain adapters, the executor and the ledger; vulture's dead-code check and pylint's similarity
check over the package. The rules and packages are pyproject.toml's ([tool.ruff], [tool.mypy]), the
versions those its `dev` extra pins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The package `xorj` as the repository's two distributions hold it: the product, and the development tools'
# subpackages (devtools/xorj itself is a namespace portion, no module of its own).
PACKAGE_DIRS = ("operator/xorj", "devtools/xorj/devenv", "devtools/xorj/chaos")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check:\n{result.stdout}{result.stderr}"


def test_mypy_strict_finds_nothing_in_the_domain(tmp_path: Path) -> None:
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy"))
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
    assert "no issues found in" in result.stdout  # the packages of [tool.mypy] were checked


# Decorated functions that a framework calls by name: kopf's handlers, click's commands and groups,
# pydantic's validators.
_REGISTERED_BY_DECORATOR = "@kopf.*,@*.command,@*.group,@model_validator,@field_validator"


def _chaos_entry_points(experiments: Path) -> str:
    """A vulture whitelist of the xorj functions the Chaos Toolkit experiments call by module and name,
    so that an action or probe no experiment names is reported as dead."""
    found: set[tuple[str, str]] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            provider = node.get("provider")
            if isinstance(provider, dict) and str(provider.get("module", "")).startswith("xorj."):
                found.add((provider["module"], provider["func"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for experiment in sorted(experiments.glob("*.json")):
        walk(json.loads(experiment.read_text()))
    return "".join(f"from {module} import {func}\n{func}\n" for module, func in sorted(found))


def test_vulture_finds_no_dead_code_in_the_package(tmp_path: Path) -> None:
    entry_points = tmp_path / "chaos_entry_points.py"
    entry_points.write_text(_chaos_entry_points(REPO / "experiments"))
    assert "no_duplicate_trades" in entry_points.read_text()  # the experiments were read
    # The tests are read as callers (a fixture's or harness's API is used by them); only findings in
    # the package fail the gate. 60 is vulture's lowest confidence: unused functions, classes,
    # methods, attributes and variables, not only imports and unreachable code.
    result = _run("vulture", *PACKAGE_DIRS, "tests", str(entry_points), "--min-confidence", "60",
                  "--ignore-decorators", _REGISTERED_BY_DECORATOR)
    in_package = [line for line in result.stdout.splitlines() if line.startswith(tuple(f"{d}/" for d in PACKAGE_DIRS))]
    assert result.returncode in (0, 3) and not result.stderr, f"vulture failed:\n{result.stderr}"
    assert not in_package, "vulture: dead code (remove it, or whitelist a by-name use in " \
        "tests/unit/vulture_whitelist.py):\n" + "\n".join(in_package)


# Six lines: the lowest length at which the package is free of copies today, once the trade intent's
# fields (ledger/records.py, excused there) are set aside; at five, the watcher's two delivery loops
# (watcher/sources.py, watcher/websocket.py) are reported.
DUPLICATE_MIN_LINES = 6


def test_pylint_finds_no_duplicated_code_in_the_package() -> None:
    result = _run("pylint", "--persistent=n", "--disable=all", "--enable=duplicate-code",
                  f"--min-similarity-lines={DUPLICATE_MIN_LINES}", *PACKAGE_DIRS)
    assert result.returncode == 0 and "R0801" not in result.stdout, \
        f"pylint's similarity check:\n{result.stdout}{result.stderr}"
