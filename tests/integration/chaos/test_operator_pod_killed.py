"""`operator-killed` when `xorj dev up` runs the operator as the chart's Deployment (issue 17 section 3):
kill_operator deletes the operator's pod at once, and start_operator returns once the pod its
Deployment's controller started instead is Ready. On the local cluster's API server, controller
manager and (kwok) nodes; the operator pod's container is kwok's, the Deployment is real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xorj.chaos.actions import kill_operator, start_operator
from xorj.devenv.demo import OPERATOR_DEPLOYMENT

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

LABELS = {"app.kubernetes.io/name": "xorj-operator", "app.kubernetes.io/instance": "xorj",
          "app.kubernetes.io/component": "operator"}


def _pods(k8s_cluster, namespace: str) -> list[dict]:
    out = k8s_cluster.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=operator",
                              "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def test_operator_killed_deletes_the_operator_pod_and_waits_for_the_one_its_deployment_starts(
        k8s_cluster, k8s_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": OPERATOR_DEPLOYMENT, "namespace": k8s_namespace, "labels": LABELS},
                  "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": LABELS},
                           "template": {"metadata": {"labels": LABELS},
                                        "spec": {"containers": [{"name": "operator", "image": "xorj-operator:test"}]}}}}
    k8s_cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    k8s_cluster.kubectl("rollout", "status", f"deployment/{OPERATOR_DEPLOYMENT}", "-n", k8s_namespace,
                        "--timeout=120s", timeout=150)
    (before,) = [p["metadata"]["name"] for p in _pods(k8s_cluster, k8s_namespace)]
    # demo.json as `xorj dev up` writes it with the operator in a pod (no operator process recorded)
    state = tmp_path / "demo.json"
    state.write_text(json.dumps({"kubeconfig": str(k8s_cluster.kubeconfig), "operator_mode": "pod",
                                 "postgres_port": 5432, "processes": {}}))
    monkeypatch.setenv("XORJ_DEMO_NAMESPACE", k8s_namespace)
    configuration = {"xorj_env": str(state)}

    killed = kill_operator(configuration)
    assert killed == {"deleted": [before]}
    assert before not in [p["metadata"]["name"] for p in _pods(k8s_cluster, k8s_namespace)]

    started = start_operator(configuration)
    after = [p for p in _pods(k8s_cluster, k8s_namespace) if p["metadata"]["name"] == started["ready"]]
    assert started["ready"] != before and after, started
    # the report's note: which pod replaced which, how long after the deletion
    assert started["replaced"] == [before] and 0 <= started["ready_after_s"] < 600, started
    assert any(c.get("ready") for c in after[0]["status"].get("containerStatuses", []))
