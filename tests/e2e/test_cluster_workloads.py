"""Controllers and scheduling are real: Deployments get pods that reach Running on kwok nodes,
the garbage collector follows owner references, the disruption controller enforces PDBs."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.cluster


def _deployment(name: str, replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: main
          image: registry.invalid/xorj/e2e:1.0
"""


def _pods(k8s_cluster, namespace: str, app: str) -> list[dict]:
    out = k8s_cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout
    return json.loads(out)["items"]


def test_deployment_pods_reach_running(k8s_cluster, k8s_namespace):
    k8s_cluster.apply(_deployment("web", 3), namespace=k8s_namespace)

    k8s_cluster.kubectl("rollout", "status", "deployment/web", "-n", k8s_namespace, "--timeout=90s")
    k8s_cluster.kubectl(
        "wait", "--for=jsonpath={.status.phase}=Running", "pod", "-l", "app=web", "-n", k8s_namespace,
        "--timeout=60s",
    )

    pods = _pods(k8s_cluster, k8s_namespace, "web")
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)  # placed by the scheduler


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(k8s_cluster, k8s_namespace):
    k8s_cluster.kubectl("create", "configmap", "owner", "-n", k8s_namespace)
    uid = k8s_cluster.kubectl("get", "configmap", "owner", "-n", k8s_namespace, "-o", "jsonpath={.metadata.uid}").stdout
    k8s_cluster.apply(
        f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
    - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}
data: {{k: v}}
""",
        namespace=k8s_namespace,
    )
    k8s_cluster.kubectl("create", "configmap", "bystander", "-n", k8s_namespace)

    k8s_cluster.kubectl("delete", "configmap", "owner", "-n", k8s_namespace)  # background propagation

    k8s_cluster.kubectl("wait", "--for=delete", "configmap/dependent", "-n", k8s_namespace, "--timeout=60s")
    k8s_cluster.kubectl("get", "configmap", "bystander", "-n", k8s_namespace)  # unrelated objects stay


def test_deleting_a_deployment_cascades_to_replicasets_and_pods(k8s_cluster, k8s_namespace):
    k8s_cluster.apply(_deployment("cascade", 2), namespace=k8s_namespace)
    k8s_cluster.kubectl("rollout", "status", "deployment/cascade", "-n", k8s_namespace, "--timeout=90s")
    assert len(_pods(k8s_cluster, k8s_namespace, "cascade")) == 2

    k8s_cluster.kubectl("delete", "deployment", "cascade", "-n", k8s_namespace, "--cascade=foreground")

    k8s_cluster.kubectl("wait", "--for=delete", "replicaset", "-l", "app=cascade", "-n", k8s_namespace,
                        "--timeout=60s")
    k8s_cluster.kubectl("wait", "--for=delete", "pod", "-l", "app=cascade", "-n", k8s_namespace, "--timeout=60s")
    assert _pods(k8s_cluster, k8s_namespace, "cascade") == []


def test_pod_disruption_budget_blocks_an_eviction(k8s_cluster, k8s_namespace):
    k8s_cluster.apply(_deployment("guarded", 2), namespace=k8s_namespace)
    k8s_cluster.apply(
        """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guarded}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: guarded}}
""",
        namespace=k8s_namespace,
    )
    k8s_cluster.kubectl("rollout", "status", "deployment/guarded", "-n", k8s_namespace, "--timeout=90s")
    k8s_cluster.kubectl(
        "wait", "--for=jsonpath={.status.currentHealthy}=2", "pdb/guarded", "-n", k8s_namespace, "--timeout=60s"
    )
    pdb = json.loads(k8s_cluster.kubectl("get", "pdb", "guarded", "-n", k8s_namespace, "-o", "json").stdout)
    assert pdb["status"]["disruptionsAllowed"] == 0

    victim = _pods(k8s_cluster, k8s_namespace, "guarded")[0]["metadata"]["name"]
    eviction = json.dumps(
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim, "namespace": k8s_namespace}}
    )
    refused = k8s_cluster.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{k8s_namespace}/pods/{victim}/eviction", "-f", "-",
        input=eviction, check=False,
    )

    assert refused.returncode != 0
    assert "disruption budget" in refused.stderr
    k8s_cluster.kubectl("get", "pod", victim, "-n", k8s_namespace)  # still there
