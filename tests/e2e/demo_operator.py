"""What `xorj dev up` on the real node must show about its operator (issue 17 section 3): a Ready pod of
the chart's own Deployment on the real node, from the demo's image, started as `helm install` starts
it, and no operator process of the demo's on the host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Kubectl = Callable[..., Any]  # (*args, check=...) -> CompletedProcess[str], as LocalCluster.kubectl


def assert_operator_is_the_charts_pod(kubectl: Kubectl, namespace: str, state: Path) -> dict[str, Any]:
    """The operator runs as the one Ready pod of deployment/xorj-operator on the real node; returns it."""
    from xorj.devenv.demo import OPERATOR_DEPLOYMENT, OPERATOR_POD_SELECTOR
    from xorj.devenv.node.lifecycle import DEFAULT_NODE_NAME

    demo = json.loads((state / "demo.json").read_text())
    assert demo["operator_mode"] == "pod", demo.get("operator_mode")
    assert "operator" not in demo.get("processes", {}), "no host operator process when the operator is a pod"
    deployment = json.loads(kubectl("get", "deployment", OPERATOR_DEPLOYMENT, "-n", namespace, "-o", "json").stdout)
    assert deployment["status"].get("readyReplicas") == 1, deployment["status"]
    pods = [p for p in json.loads(kubectl("get", "pods", "-n", namespace, "-l", OPERATOR_POD_SELECTOR,
                                          "-o", "json").stdout)["items"]
            if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    (pod,) = pods
    name = pod["metadata"]["name"]
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner["kind"] == "ReplicaSet" and owner["name"].startswith(f"{OPERATOR_DEPLOYMENT}-"), owner
    assert pod["spec"]["nodeName"] == DEFAULT_NODE_NAME, f"{name} is not on the real node"
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] and status["image"].endswith(demo["image"].split("/")[-1]), status
    logs = kubectl("logs", name, "-n", namespace).stdout
    assert "operator started" in logs, logs[-3000:]
    return pod
