"""The on-demand and weekly entry points of the `full` chaos set: `make chaos-full` runs
scripts/chaos-full, .ci/weekly runs `make chaos-full`, and the script refuses an unknown part before
starting anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_chaos_full_runs_the_script_after_bootstrap():
    # Outside any make: under `make test` the inherited MAKELEVEL/MAKEFLAGS add "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    dry = subprocess.run(["make", "-n", "chaos-full"], cwd=REPO, capture_output=True, text=True, timeout=30,
                         check=True, env=env)
    assert dry.stdout.splitlines()[-2:] == ["scripts/bootstrap", "scripts/chaos-full"]


def test_weekly_ci_entry_runs_make_chaos_full():
    weekly = REPO / ".ci" / "weekly"
    assert weekly.stat().st_mode & 0o111, ".ci/weekly must be executable"
    assert weekly.read_text().rstrip().splitlines()[-1] == "exec make chaos-full"


def test_script_refuses_an_unknown_part(tmp_path):
    result = subprocess.run([str(REPO / "scripts" / "chaos-full"), str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "XORJ_CHAOS_FULL_PARTS": "remote"})
    assert result.returncode == 2
    assert "unknown part 'remote'" in result.stderr
