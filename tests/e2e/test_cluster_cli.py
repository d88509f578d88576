"""`xorj dev cluster` drives the same cluster the fixtures use."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.cluster


def _xorj(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from xorj.cli import main; main()", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_kubeconfig_prints_the_path_on_its_last_line(k8s_cluster):
    result = _xorj("dev", "cluster", "kubeconfig")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(k8s_cluster.kubeconfig)


def test_status_reports_a_running_cluster(k8s_cluster):
    result = _xorj("dev", "cluster", "status")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"cluster {k8s_cluster.name}: running" in result.stdout
    assert "v1.34." in result.stdout


def test_up_again_keeps_the_running_cluster(k8s_cluster):
    server_before = k8s_cluster.kubectl("config", "view", "--minify", "-o",
                                        "jsonpath={.clusters[0].cluster.server}").stdout
    uid_before = k8s_cluster.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout

    result = _xorj("dev", "cluster", "up", "--no-node")  # the shared cluster: its node is the demo's to start

    assert result.returncode == 0, result.stderr
    assert "starting cluster" not in result.stderr  # nothing was (re)created
    assert k8s_cluster.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout == uid_before
    assert server_before in result.stdout
