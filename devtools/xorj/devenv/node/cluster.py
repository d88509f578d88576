"""Whether a running local cluster can host a real node.

Clusters started by this version of ``xorj dev cluster up`` can (see cluster.KWOKCTL_CONFIG); one
started by an older version keeps the flags it was started with until it is recreated.
"""

from __future__ import annotations

from xorj.devenv.cluster import LocalCluster


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
