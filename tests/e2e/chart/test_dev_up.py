"""`xorj dev up` / `xorj dev down` end to end on the local cluster, Postgres and chain.

The demo runs in its own namespace and state directory on the session's cluster (which it then does
not stop). It must end with every demo CopyTrade CONFIRMED, back each executor pod with one real
process, end a pod's process when the pod is deleted, and leave nothing running after `down`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_dev_up_confirms_trades_and_dev_down_stops_everything(k8s_cluster, tmp_path: Path) -> None:
    namespace = f"demo-{secrets.token_hex(3)}"
    state = tmp_path / "demo"
    env = {**os.environ, "XORJ_DEMO_STATE_DIR": str(state), "XORJ_DEMO_NAMESPACE": namespace}
    xorj = str(Path(sys.executable).parent / "xorj")
    try:
        up = subprocess.run([xorj, "dev", "up"], env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-4000:]}"
        # the kubectl view, every demo trade CONFIRMED, and how to see it again
        lines = [line for line in up.stdout.splitlines() if "-demo-" in line]
        assert len(lines) == 3 and all("CONFIRMED" in line for line in lines), up.stdout
        assert f"-n {namespace} get copytrades" in up.stdout
        for step in ("toolchain", "cluster", "ledger", "chain", "chart", "operator", "executors", "trades"):
            assert step in up.stderr, f"no progress line for {step}"

        # each executor pod is backed by one live local process
        pods = json.loads(k8s_cluster.kubectl("get", "pods", "-n", namespace, "-l",
                                              "app.kubernetes.io/component=executor", "-o", "json").stdout)["items"]
        assert pods
        runtime = json.loads((state / "pod-runtime" / "pods.json").read_text())
        assert set(runtime) == {f"{namespace}/{p['metadata']['name']}" for p in pods}
        assert all(entry["pid"] and alive(entry["pid"]) for entry in runtime.values())

        # terminating a pod terminates its executor; the replacement pod gets a new one
        victim = pods[0]["metadata"]["name"]
        victim_pid = runtime[f"{namespace}/{victim}"]["pid"]
        k8s_cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        wait_until(lambda: not alive(victim_pid), 90, "the deleted pod's executor process to end")

        def replaced():
            current = json.loads((state / "pod-runtime" / "pods.json").read_text())
            return (len(current) == len(pods) and f"{namespace}/{victim}" not in current
                    and all(e["pid"] and alive(e["pid"]) for e in current.values()))

        wait_until(replaced, 90, "a process for the replacement pod")
        pids = [e["pid"] for e in json.loads((state / "pod-runtime" / "pods.json").read_text()).values()]
        demo = json.loads((state / "demo.json").read_text())
        pids += [p["pid"] for p in demo["processes"].values()]
    finally:
        down = subprocess.run([xorj, "dev", "down"], env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    still = [pid for pid in pids if alive(pid)]
    assert not still, f"left running after `xorj dev down`: {still}"
    assert k8s_cluster.local.is_running(), "down must not stop a cluster it did not start"
