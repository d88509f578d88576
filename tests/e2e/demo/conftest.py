"""`xorj dev up` / `xorj dev down` run as a user runs them, on a cluster of this package's own (name
``xorj-demo-e2e``), so the session's cluster and other sessions are left alone.

The real node is one per machine: every fixture here removes a node left by an interrupted run
first, and leaves none behind.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xorj.devenv.cluster import LocalCluster
from xorj.devenv.node import LocalChainNode

CLUSTER_NAME = "xorj-demo-e2e"
XORJ = str(Path(sys.executable).parent / "xorj")


def xorj(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XORJ, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def remove_leftovers(cluster: LocalCluster) -> None:
    """A cluster of this name and the machine's real node, as an interrupted run may leave them."""
    xorj("dev", "cluster", "down", "--name", cluster.name, "--force", timeout=600)
    LocalChainNode(cluster).down()


@dataclass
class DemoRun:
    """`xorj dev up|down` with the demo's state, namespace and cluster chosen by the test."""

    env: dict[str, str]
    state: Path
    namespace: str
    cluster: LocalCluster

    def up(self) -> subprocess.CompletedProcess[str]:
        return xorj("dev", "up", env=self.env, timeout=1800)

    def down(self) -> subprocess.CompletedProcess[str]:
        return xorj("dev", "down", env=self.env, timeout=900)

    def confirmed(self, up: subprocess.CompletedProcess[str]) -> bool:
        """The `kubectl get copytrades` view `up` prints shows the demo's three trades CONFIRMED."""
        rows = [line.split() for line in up.stdout.splitlines()]
        trades = [row for row in rows if row and re.fullmatch(r".+-demo-\d+", row[0])]
        return len(trades) == 3 and all(row[1] == "CONFIRMED" for row in trades)

    def namespace_phase(self) -> str | None:
        """Active or Terminating; None once the namespace is gone."""
        result = self.cluster.kubectl("get", "namespace", self.namespace, "-o", "jsonpath={.status.phase}",
                                      check=False)
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        return result.stdout.strip()

    def processes(self) -> dict[str, dict]:
        return json.loads((self.state / "demo.json").read_text()).get("processes", {})

    def assert_executors_use_service_names(self, strategy: str) -> None:
        """Issue 17 section 3: the executor pods know the ledger, chain and swap API only by Service name
        (the strategy's endpoints, the ledger login's DSN), and resolve those names, in the pod, to the
        Services' addresses through the cluster's DNS; trades CONFIRMED by them then went through the names."""
        from urllib.parse import urlsplit

        from psycopg.conninfo import conninfo_to_dict

        from xorj.devenv.demo import EXECUTOR_LEDGER_SECRET, HOST_SERVICES

        kubectl = self.cluster.kubectl
        services = {name: json.loads(kubectl("get", "service", name, "-n", self.namespace, "-o", "json").stdout)
                    for name, _, _ in HOST_SERVICES.values()}
        spec = json.loads(kubectl("get", "tradingstrategy", strategy, "-n", self.namespace, "-o", "json").stdout)["spec"]
        secret = json.loads(kubectl("get", "secret", EXECUTOR_LEDGER_SECRET, "-n", self.namespace, "-o", "json").stdout)
        dsn = conninfo_to_dict(base64.b64decode(secret["data"]["dsn"]).decode())  # the operator writes key=value
        used = {urlsplit(spec["endpoints"]["rpcUrl"]).hostname, urlsplit(spec["endpoints"]["swapApiUrl"]).hostname,
                dsn["host"]}
        assert used == set(services), f"pods must name the Services {sorted(services)}, not addresses: {used}"
        pods = json.loads(kubectl("get", "pods", "-n", self.namespace, "-l", "app.kubernetes.io/component=executor",
                                  "-o", "json").stdout)["items"]
        pod = next(p["metadata"]["name"] for p in pods
                   if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))
        lookup = "import json, socket, sys; print(json.dumps({n: socket.gethostbyname(n) for n in sys.argv[1:]}))"
        result = kubectl("exec", "-n", self.namespace, pod, "-c", "executor", "--", "/opt/xorj/bin/python", "-c",
                         lookup, *sorted(services), check=False)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {n: s["spec"]["clusterIP"] for n, s in services.items()}


@pytest.fixture
def demo_run(tmp_path: Path) -> Iterator[DemoRun]:
    """A demo on cluster ``xorj-demo-e2e`` with its own state directory and namespace, run with real
    executor pods on the real node; `down` runs afterwards whatever the test did."""
    namespace = f"demo-{secrets.token_hex(3)}"
    state = tmp_path / "demo"
    env = {**os.environ, "XORJ_DEMO_STATE_DIR": str(state), "XORJ_DEMO_NAMESPACE": namespace,
           "XORJ_DEMO_EXECUTORS": "pods", "XORJ_CLUSTER_NAME": CLUSTER_NAME}
    env.pop("KUBECONFIG", None)
    run = DemoRun(env, state, namespace, LocalCluster(name=CLUSTER_NAME))
    try:
        yield run
    finally:
        run.down()


@pytest.fixture
def no_cluster() -> Iterator[LocalCluster]:
    """Neither cluster ``xorj-demo-e2e`` nor a real node runs: `xorj dev up` starts both itself."""
    cluster = LocalCluster(name=CLUSTER_NAME)
    remove_leftovers(cluster)
    try:
        yield cluster
    finally:
        remove_leftovers(cluster)


def _started_by_cluster_up(*flags: str) -> Iterator[LocalCluster]:
    cluster = LocalCluster(name=CLUSTER_NAME)
    remove_leftovers(cluster)
    try:
        up = xorj("dev", "cluster", "up", "--name", CLUSTER_NAME, *flags, timeout=1200)
        assert up.returncode == 0, up.stdout + up.stderr[-3000:]
        yield cluster
    finally:
        remove_leftovers(cluster)


@pytest.fixture
def cli_cluster() -> Iterator[LocalCluster]:
    """Cluster ``xorj-demo-e2e`` and its real node, started as a user does: `xorj dev cluster up`."""
    for cluster in _started_by_cluster_up():
        assert LocalChainNode(cluster).status().ready, "`xorj dev cluster up` starts a real node"
        yield cluster


@pytest.fixture
def cli_cluster_without_node() -> Iterator[LocalCluster]:
    """Cluster ``xorj-demo-e2e`` from `xorj dev cluster up --no-node`: `xorj dev up` adds the real node
    (and `xorj dev down` removes it)."""
    yield from _started_by_cluster_up("--no-node")
