"""Cluster DNS on the real node: CoreDNS deployed the way kind (kubeadm's addon) deploys it.

A ``coredns`` Deployment in kube-system reads its Corefile from the ``coredns`` ConfigMap and runs
as the ``coredns`` ServiceAccount (bound to ``system:coredns``); the ``kube-dns`` Service holds the
cluster DNS address, which the kubelet writes into every ClusterFirst pod's resolv.conf. The binary
is the toolchain's (built from CoreDNS's Go module); its image is that binary on an empty root.

Where this differs from kind, and why:
- No ``forward`` (nor ``loop``, which only guards a forward): nothing leaves the node, the host's
  resolver included, so only cluster names resolve; any other name fails at once (SERVFAIL)
  instead of after a forward's timeouts.
- Pods are pinned to the real node (the kwok nodes run no containers) and tolerate its taints.
- CoreDNS reaches the API server at the node's relay of it, the address the API server's
  certificate names, rather than at the ``kubernetes`` Service's IP, which it does not name.

The renderers are pure; :func:`coredns_image` builds (once per binary) and :func:`deploy` applies.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from xorj.devenv.image import ImageBuilder
from xorj.devenv.node.config import CLUSTER_DOMAIN

NAMESPACE = "kube-system"
NAME = "coredns"
SERVICE_NAME = "kube-dns"
IMAGE_REPOSITORY = "localhost/xorj-coredns"
REPLICAS = 2  # as kind runs it
HEALTH_PORT = 8080
READY_PORT = 8181
METRICS_PORT = 9153

COREFILE = f""".:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :{METRICS_PORT}
    cache 30
    reload
    loadbalance
}}
"""


def image_reference(binary: bytes, version: str) -> str:
    """The image's name: the CoreDNS release and the binary's digest (a rebuild is a new image)."""
    return f"{IMAGE_REPOSITORY}:{version.removeprefix('v')}-{hashlib.sha256(binary).hexdigest()[:12]}"


def tolerations(taints: tuple[str, ...]) -> list[dict[str, str]]:
    """kubeadm's tolerations for CoreDNS, plus one for each ``key=value:Effect`` taint of the node."""
    found: list[dict[str, str]] = [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
    ]
    for taint in taints:
        key_value, _, effect = taint.partition(":")
        key, _, value = key_value.partition("=")
        found.append({"key": key, "operator": "Equal", "value": value, "effect": effect})
    return found


def manifests(*, image: str, dns_ip: str, api_host: str, api_port: int, node_selector: dict[str, str],
              taints: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every object of the addon, as one ``v1/List`` for ``kubectl apply``."""
    labels = {"k8s-app": SERVICE_NAME}
    rbac_name = f"system:{NAME}"
    container = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "Never",  # loaded into the node's containerd; no registry holds it
        "args": ["-conf", "/etc/coredns/Corefile"],
        "env": [
            # client-go's in-cluster config reads these; see the module docstring.
            {"name": "KUBERNETES_SERVICE_HOST", "value": api_host},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
        ],
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "securityContext": {
            # root only for port 53: every capability but binding it is dropped
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": HEALTH_PORT, "scheme": "HTTP"},
            "initialDelaySeconds": 60, "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 5,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": READY_PORT, "scheme": "HTTP"},
            "periodSeconds": 2,
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": rbac_name},
                "rules": [
                    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                     "verbs": ["list", "watch"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                     "verbs": ["list", "watch"]},
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": rbac_name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac_name},
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
            },
            {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "data": {"Corefile": COREFILE},
            },
            {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
                "spec": {
                    "replicas": REPLICAS,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "priorityClassName": "system-cluster-critical",
                            "serviceAccountName": NAME,
                            "tolerations": tolerations(taints),
                            "nodeSelector": {"kubernetes.io/os": "linux", **node_selector},
                            "containers": [container],
                            "dnsPolicy": "Default",  # CoreDNS itself must not resolve through itself
                            "volumes": [{"name": "config-volume", "configMap": {
                                "name": NAME, "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE,
                             "labels": {**labels, "kubernetes.io/name": "CoreDNS"},
                             "annotations": {"prometheus.io/port": str(METRICS_PORT),
                                             "prometheus.io/scrape": "true"}},
                "spec": {
                    "selector": labels,
                    "clusterIP": dns_ip,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                        {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT},
                    ],
                },
            },
        ],
    }


def coredns_image(builder: ImageBuilder, binary: Path, version: str) -> tuple[str, Path]:
    """The CoreDNS image (the binary on an empty root) as an OCI archive: its reference and path.

    Built once per binary: the archive's name carries the binary's digest.
    """
    reference = image_reference(binary.read_bytes(), version)
    archive = builder.cache_dir / "archives" / f"xorj-coredns-{reference.rsplit(':', 1)[1]}.oci.tar"
    if archive.is_file():
        return reference, archive
    with tempfile.TemporaryDirectory(prefix="xorj-coredns-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        shutil.copyfile(binary, rootfs / "coredns")
        (rootfs / "coredns").chmod(0o755)
        builder.from_rootfs(rootfs, reference, ["--entrypoint", '["/coredns"]'])
    return reference, builder.push_archive(reference, archive)
