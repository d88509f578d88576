"""The HA ledger losing its primary under load, end to end: `xorj dev up --ledger ha` (the chart's
Patroni StatefulSet on the real node, the operator and executor pods reaching it through its primary
Service), then `xorj chaos run ledger-primary-failover` as written (60 CopyTrades; a switchover, the
primary's pod deleted, its postmaster killed). Fails on any deviation: a duplicate (fills counted on
the chain), an orphan, a trade lost or not terminal, a trade admitted before a fault missing after it,
a trade failed through the switchover, or a fault the ledger did not recover from.

The same experiment file, unchanged, against `--ledger external-ha`: the Patroni ledger in its own
namespace, outside the operator's release (postgresql.enabled=false, ledger.existingSecret), which
the experiment finds by the location the demo records (xorj.chaos.ledger_failover)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.slow, pytest.mark.timeout(1500 + 900 + 300)]

STRATEGY = "alpha"  # examples/tradingstrategy.yaml, which `xorj dev up` applies
EXPERIMENT = "ledger-primary-failover"
FAULTS = ("switchover", "pod-delete", "postgres-kill")
LEDGER_SELECTOR = "app.kubernetes.io/component=ledger"


def _journal_output(journal: dict, name: str) -> dict:
    """The output of the last run of activity ``name`` in a chaostoolkit journal."""
    runs = [*journal.get("run", []), *(journal.get("steady_states", {}).get("after") or {}).get("probes", [])]
    found = [r for r in runs if r["activity"]["name"] == name]
    assert found, f"no {name} in the journal"
    assert found[-1]["status"] == "succeeded", found[-1]
    return found[-1]["output"]


@pytest.mark.parametrize("ledger", ["ha", "external-ha"])
def test_the_ha_ledger_loses_its_primary_three_ways_under_load_and_exactly_once_holds(k8s_cluster, tmp_path: Path,
                                                                                     ledger: str):
    namespace = f"{'ha' if ledger == 'ha' else 'xha'}-{secrets.token_hex(3)}"
    state = tmp_path / "demo"
    env = {**os.environ, "XORJ_DEMO_STATE_DIR": str(state), "XORJ_DEMO_NAMESPACE": namespace, "XORJ_DEMO_LOOP": "0"}
    xorj = str(Path(sys.executable).parent / "xorj")
    try:
        up = subprocess.run([xorj, "dev", "up", "--ledger", ledger], env=env, capture_output=True, text=True,
                            timeout=1500)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-6000:]}"
        demo = json.loads((state / "demo.json").read_text())
        assert demo["ledger_mode"] == ledger and "postgres_port" not in demo  # no host Postgres in these modes
        ledger_namespace = namespace
        if ledger == "external-ha":
            # the ledger is not the release's: its members run in their own namespace, none in the release's
            ledger_namespace = demo["ledger_namespace"]
            assert ledger_namespace == f"{namespace}-ledger"
            assert k8s_cluster.kubectl("get", "pods", "-n", namespace, "-l", LEDGER_SELECTOR, "-o", "name").stdout == ""
            assert k8s_cluster.kubectl("get", "statefulsets", "-n", namespace, "-o", "name").stdout == ""
        members = k8s_cluster.kubectl("get", "pods", "-n", ledger_namespace, "-l", LEDGER_SELECTOR,
                                      "-o", "json").stdout
        roles = sorted((p["metadata"]["labels"].get("role") or "") for p in json.loads(members)["items"])
        assert roles == ["primary", "replica", "replica"], roles
        k8s_cluster.kubectl("patch", "tradingstrategy", STRATEGY, "-n", namespace, "--type=merge",
                            "-p", '{"spec": {"risk": {"maxDailyTrades": 1000, "maxDailyVolumeUsd": 100000}}}')
        k8s_cluster.kubectl("rollout", "status", f"deployment/{STRATEGY}-executor", "-n", namespace,
                            "--timeout=180s", timeout=200)
        out = tmp_path / "chaos"
        run = subprocess.run([xorj, "chaos", "run", EXPERIMENT, "--env", str(state / "demo.json"), "--out", str(out)],
                             env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-4000:]
        journal = json.loads((out / "journals" / f"{EXPERIMENT}.json").read_text())
        assert journal["status"] == "completed" and journal["deviated"] is False
        recoveries = {}
        for action in ("switchover", "delete-primary-pod", "kill-primary-postgres"):
            result = _journal_output(journal, action)
            recoveries[result["fault"]] = result["recovery_seconds"]
            assert result["ledger_namespace"] == ledger_namespace, result
            assert result["admitted_before"] > 0, f"{action} came before any trade was admitted: {result}"
            if result["fault"] != "postgres-kill":  # a crash restarts in place; the others move the primary
                assert result["new_primary"] != result["old_primary"], result
        assert set(recoveries) == set(FAULTS)
        print(f"{ledger}: recovery seconds: {recoveries}")  # the figures; the goal (< 30 s) is not asserted
        # exactly-once, counted on the chain: one fill per CONFIRMED trade, none for a FAILED one
        chain = _journal_output(journal, "no-duplicate-onchain-transactions")
        assert chain["violations"] == 0 and chain["duplicate_fills"] == 0, chain
        assert chain["fills"] == chain["confirmed_trades"] >= 60, chain
        survived = _journal_output(journal, "admitted-trades-survived")
        assert survived["faults"] == 3 and survived["missing"] == 0, survived
        assert _journal_output(journal, "no-failed-trade-through-the-switchover")["failed"] == 0
        terminal = _journal_output(journal, "all-trades-terminal")
        assert terminal["ok"] and terminal["trades"] >= 60 and terminal["open"] == 0, terminal
        print(f"{ledger}: trades {terminal['trades']}, fills {chain['fills']}, confirmed {chain['confirmed_trades']}")
    finally:
        down = subprocess.run([xorj, "dev", "down"], env=env, capture_output=True, text=True, timeout=600)
    assert down.returncode == 0, down.stderr[-4000:]
    if ledger == "external-ha":  # `down` removes the ledger's own namespace too
        assert k8s_cluster.kubectl("get", "namespace", f"{namespace}-ledger", check=False).returncode != 0
