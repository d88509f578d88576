"""CI's chaos run: `xorj chaos run` (the experiments tagged `ci`) against a local chaos environment it
starts itself (real Postgres, chain, TCP proxy and `xorj executor` processes). Fails on any deviation.
The cluster experiments run with `xorj chaos run --all --env <demo.json>` (see README)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# Fourteen experiments, eight of which wait in the background for Alertmanager to see their alert fire
# and resolve (within the local environment's 30 s fault window after the faults clear): about 10
# minutes on two busy cores.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.chain, pytest.mark.timeout(2700)]
ALERTMANAGER_EXPERIMENTS = ("circuit-breaker", "ledger-partition", "watcher-killed")


def test_ci_chaos_suite_passes_with_no_duplicates_or_orphans(tmp_path):
    out = tmp_path / "chaos"
    result = subprocess.run(["xorj", "chaos", "run", "--out", str(out)], capture_output=True, text=True,
                            timeout=2600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    journals = sorted((out / "journals").glob("*.json"))
    ci = [p.stem for p in sorted((REPO / "experiments").glob("*.json"))
          if "ci" in json.loads(p.read_text()).get("tags", [])]
    assert [p.stem for p in journals] == ci
    table = (out / "report.md").read_text()
    for name in ci:
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "passed" and cells[5] == "0" and cells[6] == "0", row
        assert int(cells[2]) >= 10, f"{name}: load during faults must be many trades: {row}"
    # the experiments that ask Alertmanager report when their alert fired and resolved
    for name in ALERTMANAGER_EXPERIMENTS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        fired, resolved = [c.strip() for c in row.strip("|").split("|")][8:10]
        assert float(fired) >= 0 and float(resolved) >= 0, row
    # a timeline per experiment, drawn from the trades' ledger timestamps the final probe recorded
    page = (out / "report.html").read_text()
    for name in ci:
        assert f"<section class='timeline' id='{name}'>" in page and f"src='pictures/{name}.svg'" in page
        picture = (out / "pictures" / f"{name}.svg").read_text()
        assert 'id="trades-' in picture and "trades of the run by state (ledger timestamps)" in picture, name
        assert 'id="fault-shade-' in picture or name == "lead-trade-delivered-twice", f"{name}: no fault window drawn"
