"""The demo's namespace on a real API server (the session's local cluster): `down` leaves nothing
terminating, and `up` waits for, or clearly reports, a namespace still terminating before it
installs the chart.

A finalizer (the test's own, on a ConfigMap or a pod) stands for what keeps a namespace Terminating
in the demo: executor pods in their grace period, or pods on a node that is gone.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xorj.devenv import demo as demo_module
from xorj.devenv.demo import Demo
from xorj.devenv.waiting import StartupTimeout

pytestmark = pytest.mark.cluster

FINALIZER = "xorj.dev/test-holds-this"
CRDS = Path(__file__).resolve().parents[3] / "crds"


@pytest.fixture
def namespace(k8s_cluster) -> Iterator[str]:
    name = f"demo-ns-{secrets.token_hex(3)}"
    k8s_cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        for kind in ("configmap", "pod", "vaults.trading.xorj.io"):
            for item in k8s_cluster.kubectl("get", kind, "-n", name, "-o", "name", check=False).stdout.split():
                k8s_cluster.kubectl("patch", item, "-n", name, "--type=merge", "-p",
                                    '{"metadata":{"finalizers":null}}', check=False)
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def demo_on(k8s_cluster, namespace: str, root: Path) -> tuple[Demo, list[str]]:
    said: list[str] = []
    demo = Demo(root=root, progress=said.append, namespace=namespace, executors="processes")
    demo.cluster = k8s_cluster.local
    return demo, said


def phase(k8s_cluster, namespace: str) -> str | None:
    result = k8s_cluster.kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def held_configmap(k8s_cluster, namespace: str) -> None:
    k8s_cluster.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "held", "finalizers": [FINALIZER]}}), namespace)


def release_later(k8s_cluster, namespace: str, kind_name: str, seconds: float) -> threading.Thread:
    def release() -> None:
        time.sleep(seconds)
        k8s_cluster.kubectl("patch", kind_name, "-n", namespace, "--type=merge", "-p",
                            '{"metadata":{"finalizers":null}}')

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_up_waits_for_a_namespace_still_terminating(k8s_cluster, namespace: str, tmp_path: Path) -> None:
    held_configmap(k8s_cluster, namespace)
    k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    assert phase(k8s_cluster, namespace) == "Terminating"
    demo, said = demo_on(k8s_cluster, namespace, tmp_path)
    releaser = release_later(k8s_cluster, namespace, "configmap/held", 4)
    demo._wait_namespace_not_terminating()
    releaser.join()
    assert phase(k8s_cluster, namespace) is None, "returned while the namespace was still there"
    assert any(f"namespace {namespace} is still terminating" in line for line in said), said


def test_up_reports_a_namespace_that_stays_terminating(k8s_cluster, namespace: str, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(demo_module, "NAMESPACE_GONE_SECONDS", 15.0)  # the namespace controller reports it
    held_configmap(k8s_cluster, namespace)
    k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    demo, _ = demo_on(k8s_cluster, namespace, tmp_path)
    with pytest.raises(StartupTimeout) as caught:
        demo._wait_namespace_not_terminating()
    message = str(caught.value)
    assert f"namespace {namespace}, still terminating, to be deleted: not ready after" in message
    assert FINALIZER in message, "the namespace's conditions name what holds it"
    assert f"cannot be installed into namespace {namespace} while it is being deleted" in message


def test_up_does_not_wait_for_an_active_or_missing_namespace(k8s_cluster, namespace: str, tmp_path: Path,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(demo_module, "NAMESPACE_GONE_SECONDS", 0.0)
    demo_on(k8s_cluster, namespace, tmp_path)[0]._wait_namespace_not_terminating()
    demo_on(k8s_cluster, f"absent-{secrets.token_hex(3)}", tmp_path)[0]._wait_namespace_not_terminating()


def test_down_returns_only_once_the_namespace_and_its_pods_are_gone(k8s_cluster, namespace: str,
                                                                    tmp_path: Path) -> None:
    k8s_cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", namespace, "--timeout=60s")
    # a pod that takes its time to go, as an executor in its grace period does
    k8s_cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "slow-to-go", "finalizers": [FINALIZER]},
        "spec": {"containers": [{"name": "main", "image": "example.invalid/none"}]}}), namespace)
    demo, said = demo_on(k8s_cluster, namespace, tmp_path)
    releaser = release_later(k8s_cluster, namespace, "pod/slow-to-go", 4)
    demo._remove_namespace()
    releaser.join()
    assert phase(k8s_cluster, namespace) is None, "down left the namespace terminating"
    assert any(f"waiting for the pods of namespace {namespace}" in line for line in said), said


def test_down_releases_the_vaults_finalizers(k8s_cluster, namespace: str, tmp_path: Path, monkeypatch) -> None:
    """`down` stops the operator before it removes the namespace: a Vault (`up --vaults N`) keeps the
    operator's finalizer, which nothing would remove, so `down` releases it as it does a CopyTrade's."""
    monkeypatch.setattr(demo_module, "NAMESPACE_GONE_SECONDS", 30.0)
    k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS / "trading.xorj.io_vaults.yaml"))
    k8s_cluster.kubectl("wait", "--for=condition=Established", "crd/vaults.trading.xorj.io", "--timeout=60s")
    k8s_cluster.apply(json.dumps({
        "apiVersion": "trading.xorj.io/v1alpha1", "kind": "Vault",
        "metadata": {"name": "held", "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"]},
        "spec": {"strategy": "alpha", "publicKey": "11111111111111111111111111111111",
                 "secretName": "demo-fanout-vaults"}}), namespace)
    demo, said = demo_on(k8s_cluster, namespace, tmp_path)
    demo._remove_namespace()
    assert phase(k8s_cluster, namespace) is None, "down left the namespace terminating"
    assert any("releasing the finalizers of 1 vaults" in line for line in said), said
