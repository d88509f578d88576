"""A local cluster whose kwok-controller leaves real nodes alone.

kwokctl's binary runtime starts kwok-controller with ``--manage-all-nodes=true``: it would take a
real node over (heartbeats, fake pod IPs and phases). Restricting it to the nodes that carry
kwok's annotation (all of cluster.py's fake nodes do) keeps the kwok nodes as they were and leaves
the kubelet in charge of its own node. The API server must reach kubelets by InternalIP (its
default tries the node's hostname first, which nothing resolves here: "dial tcp: lookup
xorj-node ... no such host" on `kubectl logs`). The same two lines belong in cluster.KWOKCTL_CONFIG when the
real node becomes part of ``xorj dev cluster up``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from xorj.devenv.cluster import KWOK_NODE_ANNOTATION, UP_TIMEOUT_SECONDS, LocalCluster

KWOK_SPARES_REAL_NODES = f"""componentsPatches:
- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
    override: true
  - key: manage-nodes-with-annotation-selector
    value: {KWOK_NODE_ANNOTATION}=fake
- name: kube-apiserver
  extraArgs:
  - key: kubelet-preferred-address-types
    value: InternalIP,Hostname
"""


class RealNodeCluster(LocalCluster):
    def kwokctl(self, *args: str, timeout: float = UP_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        if "create" in args and "--config" in args:
            config = Path(args[args.index("--config") + 1])
            text = config.read_text()
            if "componentsPatches" not in text:
                config.write_text(text + KWOK_SPARES_REAL_NODES)
        return super().kwokctl(*args, timeout=timeout)


def incompatibilities(cluster: LocalCluster) -> list[str]:
    """Why a running cluster cannot host a real node as it is ([] when it can)."""
    from xorj.devenv.node.processes import cmdline

    found = []
    pids = cluster.pids()
    kwok = cmdline(pids["kwok-controller"]) if "kwok-controller" in pids else ""
    if "--manage-all-nodes=true" in kwok:
        found.append("its kwok-controller runs with --manage-all-nodes=true and would fake the real node's "
                     "pods (IPs, phases) and heartbeats")
    apiserver = cmdline(pids["kube-apiserver"]) if "kube-apiserver" in pids else ""
    if apiserver and "--kubelet-preferred-address-types=InternalIP" not in apiserver:
        found.append("its kube-apiserver reaches kubelets by hostname first, which does not resolve here "
                     "(kubectl logs/exec would fail)")
    return found
