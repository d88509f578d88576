"""Authorization is RBAC: a ServiceAccount, authenticated with its own token, may do what a Role
grants it and nothing else."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.cluster

READER_RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmap-reader}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}
subjects:
  - {kind: ServiceAccount, name: reader}
"""


@pytest.fixture
def reader_kubeconfig(k8s_cluster, k8s_namespace, tmp_path):
    """A kubeconfig that authenticates as the ServiceAccount with a token from the TokenRequest API."""
    k8s_cluster.apply(READER_RBAC, namespace=k8s_namespace)
    k8s_cluster.kubectl("create", "configmap", "visible", "-n", k8s_namespace, "--from-literal=k=v")
    token = k8s_cluster.kubectl("create", "token", "reader", "-n", k8s_namespace, "--duration=10m").stdout.strip()
    config = json.loads(k8s_cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config["users"] = [{"name": "reader", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "reader"
    config["contexts"][0]["context"]["namespace"] = k8s_namespace
    path = tmp_path / "reader.kubeconfig"
    path.write_text(json.dumps(config))
    return path


def _as_reader(k8s_cluster, kubeconfig, *args):
    import subprocess

    return subprocess.run(
        [str(k8s_cluster.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_service_account_gets_what_it_was_granted(k8s_cluster, k8s_namespace, reader_kubeconfig):
    who = _as_reader(k8s_cluster, reader_kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.stdout == f"system:serviceaccount:{k8s_namespace}:reader"

    listed = _as_reader(k8s_cluster, reader_kubeconfig, "get", "configmaps", "-o", "name")

    assert listed.returncode == 0, listed.stderr
    assert "configmap/visible" in listed.stdout.split()


@pytest.mark.parametrize(
    "args, resource",
    [
        (("get", "secrets"), 'cannot list resource "secrets"'),
        (("create", "configmap", "sneaky", "--from-literal=k=v"), 'cannot create resource "configmaps"'),
        (("delete", "configmap", "visible"), 'cannot delete resource "configmaps"'),
        (("get", "pods", "-n", "kube-system"), 'cannot list resource "pods"'),
    ],
)
def test_service_account_is_denied_what_it_was_not_granted(k8s_cluster, reader_kubeconfig, args, resource):
    denied = _as_reader(k8s_cluster, reader_kubeconfig, *args)

    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert resource in denied.stderr
