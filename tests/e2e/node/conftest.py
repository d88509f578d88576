"""A real node (containerd, runc, kubelet, CNI, kube-proxy) beside its own local control plane.

The cluster is this package's own (name ``xorj-node-e2e``), so the shared test
cluster and other sessions are left alone; the node is torn down at the end, and the last test
checks that nothing it made is left on the machine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from xorj.devenv.image import ImageBuilder
from xorj.devenv.node import LocalNode
from xorj.devenv.cluster import LocalCluster

CLUSTER_NAME = "xorj-node-e2e"


@pytest.fixture(scope="module")
def node_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(name=CLUSTER_NAME, nodes=1)
    cluster.up(progress=print)
    yield cluster
    cluster.down(force=True)


@pytest.fixture(scope="module")
def real_node(node_cluster: LocalCluster) -> Iterator[LocalNode]:
    node = LocalNode(node_cluster)
    node.down()  # a node left by an interrupted run
    node.up(progress=print)
    yield node
    node.down()


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
