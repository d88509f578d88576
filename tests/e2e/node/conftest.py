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

from xorj.devenv.cluster import LocalCluster
from xorj.devenv.image import ImageBuilder
from xorj.devenv.node import LocalChainNode
from xorj.devenv.node.host import NodeHost

CLUSTER_NAME = "xorj-node-e2e"


def xorj(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "xorj"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def node_cluster() -> Iterator[LocalCluster]:
    """The cluster and its real node, started and stopped as a user does: `xorj dev cluster up|down`."""
    cluster = LocalCluster(name=CLUSTER_NAME)
    LocalChainNode(cluster).down()  # a node left by an interrupted run
    up = xorj("dev", "cluster", "up", "--name", CLUSTER_NAME)
    assert up.returncode == 0, up.stdout + up.stderr[-3000:]
    assert "real node xorj-node: Ready" in up.stdout, up.stdout
    yield cluster
    xorj("dev", "cluster", "down", "--name", CLUSTER_NAME, "--force")


@pytest.fixture(scope="module")
def real_node(node_cluster: LocalCluster) -> LocalChainNode:
    return LocalChainNode(node_cluster)  # the node `xorj dev cluster up` started (its state is on disk)


@pytest.fixture(scope="module")
def project_image(real_node: LocalChainNode) -> str:
    built = ImageBuilder().build_project(progress=print)
    real_node.load_image(built.archive)
    base = ImageBuilder()
    real_node.load_image(base.push_archive(base.build_base(), base.cache_dir / "archives" / "xorj-base.oci.tar"))
    return built.reference


class Pods:
    """kubectl helpers for pods pinned to the real node."""

    def __init__(self, cluster: LocalCluster, node: LocalChainNode) -> None:
        self.cluster = cluster
        self.node = node

    def run(self, name: str, image: str, command: list[str] | None = None, args: list[str] | None = None,
            labels: dict[str, str] | None = None, restart: str = "Never", ready_on_port: int | None = None) -> str:
        """Start a pod on the real node. With ``ready_on_port`` it is Ready (and so a ready endpoint of
        its Services) only once something accepts TCP connections on that port."""
        name = f"{name}-{uuid.uuid4().hex[:6]}"
        container: dict[str, object] = {"name": "main", "image": image, "imagePullPolicy": "Never"}
        if command:
            container["command"] = command
        if args:
            container["args"] = args
        if ready_on_port is not None:
            container["readinessProbe"] = {"tcpSocket": {"port": ready_on_port}, "periodSeconds": 1}
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

    def wait_ready(self, name: str, timeout: float = 90) -> dict:
        """The pod once its Ready condition is True (its readiness probe, if any, passed)."""
        deadline = time.monotonic() + timeout
        pod: dict = {}
        while time.monotonic() < deadline:
            pod = self.get(name)
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True":
                return pod
            time.sleep(0.5)
        raise AssertionError(f"pod {name} not Ready after {timeout}s: {json.dumps(pod.get('status'))[:1500]}")

    def logs(self, name: str) -> str:
        return self.cluster.kubectl("logs", name).stdout


def wait_service_routed(cluster: LocalCluster, node: LocalChainNode, service: str, pod_ip: str, target_port: int,
                        timeout: float = 90) -> None:
    """Wait until a pod on ``node`` can reach ``pod_ip:target_port`` through ``service``'s cluster IP.

    A new Service is not usable at once. The EndpointSlice controller must first list the pod as a
    ready endpoint. Then kube-proxy on the node must see that slice and rewrite its rules. Until it
    does, its rule for a Service without endpoints REJECTs connections to the cluster IP, so a client
    gets "Connection refused". Both steps are checked: the slice in the API, then kube-proxy's
    iptables rules in the node's namespaces (the DNAT to the pod is in, the REJECT is out).
    """
    svc = json.loads(cluster.kubectl("get", "service", service, "-o", "json").stdout)
    namespace, cluster_ip = svc["metadata"]["namespace"], svc["spec"]["clusterIP"]
    enter = NodeHost(node.layout()).enter()
    destination = f"--to-destination {pod_ip}:{target_port}"
    deadline = time.monotonic() + timeout
    waiting_for = f"EndpointSlice of {namespace}/{service} with ready endpoint {pod_ip}:{target_port}"
    seen = ""
    while time.monotonic() < deadline:
        slices = json.loads(cluster.kubectl("get", "endpointslices", "-n", namespace, "-l",
                                            f"kubernetes.io/service-name={service}", "-o", "json").stdout)["items"]
        ready = any(
            pod_ip in endpoint.get("addresses", []) and endpoint.get("conditions", {}).get("ready")
            and any(port.get("port") == target_port for port in item.get("ports") or [])
            for item in slices for endpoint in item.get("endpoints") or []
        )
        if not ready:
            seen = json.dumps([item.get("endpoints") for item in slices])[:1500]
            time.sleep(0.3)
            continue
        waiting_for = f"kube-proxy's rules on {node.name} routing {cluster_ip} ({namespace}/{service}) to {pod_ip}"
        nat = subprocess.run([*enter, "iptables-save", "-t", "nat"], capture_output=True, text=True, timeout=30)
        filt = subprocess.run([*enter, "iptables-save", "-t", "filter"], capture_output=True, text=True, timeout=30)
        dnat = [line for line in nat.stdout.splitlines()
                if f"{namespace}/{service}" in line and destination in line and "DNAT" in line]
        reject = [line for line in filt.stdout.splitlines() if f"-d {cluster_ip}/32" in line and "REJECT" in line]
        if dnat and not reject:
            return
        seen = "\n".join(dnat + reject) or (nat.stderr + filt.stderr)[-1500:] or "no rule for it yet"
        time.sleep(0.3)
    proxy_log = node.layout().logs_dir / "kube-proxy.log"
    tail = proxy_log.read_text(errors="replace")[-3000:] if proxy_log.exists() else "(no kube-proxy log)"
    raise AssertionError(f"waited {timeout}s for {waiting_for}; last seen:\n{seen}\nkube-proxy log:\n{tail}")


@pytest.fixture(scope="module")
def pods(node_cluster: LocalCluster, real_node: LocalChainNode) -> Pods:
    return Pods(node_cluster, real_node)
