"""The cluster experiments in CI: `xorj dev up` in a namespace of the session's cluster (operator, ledger,
chain, the operator and executors as real pods on the real node), then `xorj chaos run` of the Kubernetes
scenarios against it: executor pods terminated by chaostoolkit-kubernetes mid-trade, the operator's pod
deleted mid-flight (its Deployment starts another), and the executors cut from the ledger by NetworkPolicy (enforced by the node's
kube-router), each under a load of CopyTrades. The demo strategy has several vaults (its own and
Vault resources), so every CopyTrade fans out and exactly-once is judged per vault, on chain. Fails on
any deviation, duplicate, orphan or lost trade."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.demo_operator import assert_operator_is_the_charts_pod

# A cold machine builds kube-router and two images inside `xorj dev up` before three experiments run:
# the subprocess timeouts below bound each step; the test as a whole gets their sum, not the default.
pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(1500 + 200 + 1800 + 300)]

STRATEGY = "alpha"  # examples/tradingstrategy.yaml, which `xorj dev up` applies
CLUSTER_EXPERIMENTS = ("executor-pods-terminated", "operator-killed", "ledger-partition-networkpolicy")
VAULTS = 3  # the strategy's own vault and two Vault resources: every CopyTrade is three trades


def test_kubernetes_chaos_experiments_pass_on_the_demo(k8s_cluster, tmp_path: Path) -> None:
    namespace = f"chaos-{secrets.token_hex(3)}"
    state = tmp_path / "demo"
    # without the copy loop: its leaders' swaps and the copies would add load and price moves of their own
    env = {**os.environ, "XORJ_DEMO_STATE_DIR": str(state), "XORJ_DEMO_NAMESPACE": namespace, "XORJ_DEMO_LOOP": "0",
           "XORJ_DEMO_VAULTS": str(VAULTS)}
    xorj = str(Path(sys.executable).parent / "xorj")
    try:
        up = subprocess.run([xorj, "dev", "up"], env=env, capture_output=True, text=True, timeout=1500)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-4000:]}"
        operator = assert_operator_is_the_charts_pod(k8s_cluster.kubectl, namespace, state)["metadata"]["name"]
        # Three experiments' load is more trades than the example strategy's daily limit allows the
        # vault (50): raise it, or the risk gate rightly refuses most of the last run's trades and
        # that run proves little. The executors roll with the new limits before any fault.
        k8s_cluster.kubectl("patch", "tradingstrategy", STRATEGY, "-n", namespace, "--type=merge",
                            "-p", '{"spec": {"risk": {"maxDailyTrades": 1000, "maxDailyVolumeUsd": 100000}}}')
        k8s_cluster.kubectl("rollout", "status", f"deployment/{STRATEGY}-executor", "-n", namespace,
                            "--timeout=180s", timeout=200)
        out = tmp_path / "chaos"
        run = subprocess.run(
            [xorj, "chaos", "run", *CLUSTER_EXPERIMENTS, "--env", str(state / "demo.json"), "--out", str(out)],
            env=env, capture_output=True, text=True, timeout=1800, cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-4000:]
        table = (out / "report.md").read_text()
        for name in CLUSTER_EXPERIMENTS:
            row = next((line for line in table.splitlines() if line.startswith(f"| {name} |")), None)
            assert row is not None, f"no report row for {name}:\n{table}"
            cells = [c.strip() for c in row.strip("|").split("|")]
            # scenario | result | trades | confirmed | failed | duplicates | orphans | ...
            assert cells[1] == "passed" and cells[5] == "0" and cells[6] == "0", row
            # none of these faults may cost a trade: each one is CONFIRMED, exactly once
            assert cells[3] == cells[2], f"{name}: every trade must end CONFIRMED: {row}"
            assert int(cells[2]) >= 10, f"{name}: load during faults must be many trades: {row}"
            # the on-chain comparison covered every vault the fan-out paid from
            journal = json.loads((out / "journals" / f"{name}.json").read_text())
            onchain = next(p["output"] for p in journal["steady_states"]["after"]["probes"]
                           if p["activity"]["name"] == "no-duplicate-onchain-transactions")
            assert onchain["vaults"] == VAULTS and onchain["violations"] == 0, onchain
        # operator-killed deleted the operator's pod (no host process to kill), and went on once the pod
        # its Deployment started instead was Ready
        journal = json.loads((out / "journals" / "operator-killed.json").read_text())
        runs = {r["activity"]["name"]: r for r in journal["run"]}
        killed, started = runs["kill-operator"]["output"], runs["start-operator"]["output"]
        assert killed == {"deleted": [operator]}, killed
        assert started["replaced"] == [operator] and started["ready"] != operator, started
        print(f"operator pod replaced and Ready {started['ready_after_s']}s after its deletion")
        assert_operator_is_the_charts_pod(k8s_cluster.kubectl, namespace, state)
    finally:
        subprocess.run([xorj, "dev", "down"], env=env, capture_output=True, text=True, timeout=300)
