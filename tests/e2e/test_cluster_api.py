"""The local cluster is a real, current Kubernetes API: version, CRDs with a status subresource,
CEL validation rules."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.cluster


def test_server_reports_the_pinned_release(k8s_cluster):
    from xorj.devenv.toolchain import Toolchain

    version = json.loads(k8s_cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == str(Toolchain().pins.kubernetes)
    assert (version["major"], version["minor"]) == ("1", "34")


def _crd(group: str) -> str:
    return f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {{status: {{}}}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [minReplicas, maxReplicas]
              properties:
                minReplicas: {{type: integer}}
                maxReplicas: {{type: integer}}
              x-kubernetes-validations:
                - rule: "self.minReplicas <= self.maxReplicas"
                  message: "minReplicas must not exceed maxReplicas"
            status:
              type: object
              properties:
                phase: {{type: string}}
"""


def _widget(group: str, name: str, low: int, high: int) -> str:
    return f"""
apiVersion: {group}/v1
kind: Widget
metadata: {{name: {name}}}
spec: {{minReplicas: {low}, maxReplicas: {high}}}
"""


@pytest.fixture
def widget_group(k8s_cluster) -> Iterator[str]:
    """A CRD in a group of its own (CRDs are cluster-wide; parallel sessions must not collide)."""
    group = f"t{secrets.token_hex(4)}.e2e.xorj.dev"
    k8s_cluster.apply(_crd(group))
    k8s_cluster.kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s")
    yield group
    k8s_cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_cel_rule_rejects_a_bad_object_with_its_message(k8s_cluster, k8s_namespace, widget_group):
    k8s_cluster.apply(_widget(widget_group, "good", 1, 3), namespace=k8s_namespace)

    with pytest.raises(subprocess.CalledProcessError) as refused:
        k8s_cluster.apply(_widget(widget_group, "bad", 5, 1), namespace=k8s_namespace)

    assert "minReplicas must not exceed maxReplicas" in refused.value.stderr
    assert "Invalid value" in refused.value.stderr
    missing = k8s_cluster.kubectl("get", f"widgets.{widget_group}", "bad", "-n", k8s_namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_status_is_a_subresource(k8s_cluster, k8s_namespace, widget_group):
    resource = f"widgets.{widget_group}"
    k8s_cluster.apply(_widget(widget_group, "w", 1, 2), namespace=k8s_namespace)

    k8s_cluster.kubectl(
        "patch", resource, "w", "-n", k8s_namespace, "--subresource=status", "--type=merge",
        "-p", '{"status": {"phase": "Ready"}}',
    )
    # Through the main resource, status changes are dropped: that is what the subresource means.
    k8s_cluster.kubectl(
        "patch", resource, "w", "-n", k8s_namespace, "--type=merge", "-p", '{"status": {"phase": "Bogus"}}'
    )

    obj = json.loads(k8s_cluster.kubectl("get", resource, "w", "-n", k8s_namespace, "-o", "json").stdout)
    assert obj["status"] == {"phase": "Ready"}
    assert obj["metadata"]["generation"] == 1  # status writes do not bump the generation
