"""Helm (built from source at its pin) installs and uninstalls a chart on the local cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

CHART = Path(__file__).parent / "charts" / "tiny"


def test_helm_install_then_uninstall(k8s_cluster, k8s_namespace):
    installed = k8s_cluster.helm(
        "install", "demo", str(CHART), "-n", k8s_namespace, "--set", "greeting=hi", "--wait", "--timeout", "120s"
    )
    assert "STATUS: deployed" in installed.stdout

    settings = json.loads(
        k8s_cluster.kubectl("get", "configmap", "demo-settings", "-n", k8s_namespace, "-o", "json").stdout
    )
    assert settings["data"]["greeting"] == "hi"
    assert settings["data"]["kubeVersion"].startswith("v1.34.")  # what the server told Helm
    ready = k8s_cluster.kubectl(
        "get", "deployment", "demo-app", "-n", k8s_namespace, "-o", "jsonpath={.status.readyReplicas}"
    ).stdout
    assert ready == "1"
    releases = json.loads(k8s_cluster.helm("list", "-n", k8s_namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]

    k8s_cluster.helm("uninstall", "demo", "-n", k8s_namespace, "--wait", "--timeout", "120s")

    assert json.loads(k8s_cluster.helm("list", "-n", k8s_namespace, "-o", "json").stdout) == []
    left = k8s_cluster.kubectl("get", "configmap,deployment", "-n", k8s_namespace, "-l",
                               "app.kubernetes.io/instance=demo", "-o", "name").stdout
    assert left.strip() == ""
