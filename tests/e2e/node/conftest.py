"""A real node (containerd, runc, kubelet, CNI, kube-proxy) beside its own local control plane.

The cluster is this package's own (name ``xorj-node-e2e``), so the shared test
cluster and other sessions are left alone; the node is torn down at the end, and the last test
checks that nothing it made is left on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from xorj.devenv.image import ImageBuilder
from xorj.devenv.node import LocalNode
from xorj.devenv.cluster import LocalCluster

CLUSTER_NAME = "xorj-node-e2e"


def xorj(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "xorj"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def node_cluster() -> Iterator[LocalCluster]:
    """The cluster and its real node, started and stopped as a user does: `xorj dev cluster up|down`."""
    cluster = LocalCluster(name=CLUSTER_NAME)
    LocalNode(cluster).down()  # a node left by an interrupted run
    up = xorj("dev", "cluster", "up", "--name", CLUSTER_NAME)
    assert up.returncode == 0, up.stdout + up.stderr[-3000:]
    assert "real node xorj-node: Ready" in up.stdout, up.stdout
    yield cluster
    xorj("dev", "cluster", "down", "--name", CLUSTER_NAME, "--force")


@pytest.fixture(scope="module")
def real_node(node_cluster: LocalCluster) -> LocalNode:
    return LocalNode(node_cluster)  # the node `xorj dev cluster up` started (its state is on disk)


@pytest.fixture(scope="module")
def project_image(real_node: LocalNode) -> str:
    built = ImageBuilder().build_project(progress=print)
    real_node.load_image(built.archive)
    base = ImageBuilder()
    real_node.load_image(base.push_archive(base.build_base(), base.cache_dir / "archives" / "xorj-base.oci.tar"))
    return built.reference


class Pods:
    """kubectl helpers for pods pinned to the real node."""

    def __init__(self, cluster: LocalCluster, node: LocalNode) -> None:
        self.cluster = cluster
        self.node = node

    def run(self, name: str, image: str, command: list[str] | None = None, args: list[str] | None = None,
            labels: dict[str, str] | None = None, restart: str = "Never") -> str:
        name = f"{name}-{uuid.uuid4().hex[:6]}"
        container: dict[str, object] = {"name": "main", "image": image, "imagePullPolicy": "Never"}
        if command:
            container["command"] = command
        if args:
            container["args"] = args
        manifest = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": self.node.name, "restartPolicy": restart, "containers": [container],
                     "terminationGracePeriodSeconds": 2},
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        return name

    def get(self, name: str) -> dict:
        return json.loads(self.cluster.kubectl("get", "pod", name, "-o", "json").stdout)

    def wait_phase(self, name: str, phases: tuple[str, ...], timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        pod: dict = {}
        while time.monotonic() < deadline:
            pod = self.get(name)
            if pod["status"].get("phase") in phases:
                return pod
            time.sleep(0.5)
        raise AssertionError(f"pod {name} not in {phases} after {timeout}s: {json.dumps(pod.get('status'))[:1500]}")

    def logs(self, name: str) -> str:
        return self.cluster.kubectl("logs", name).stdout


@pytest.fixture(scope="module")
def pods(node_cluster: LocalCluster, real_node: LocalNode) -> Pods:
    return Pods(node_cluster, real_node)
