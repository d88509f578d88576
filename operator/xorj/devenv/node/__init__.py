"""A real Kubernetes node for the local cluster (containerd, runc, kubelet, CNI, kube-proxy)."""

from xorj.devenv.node.lifecycle import LocalNode, NodeStatus

__all__ = ["LocalNode", "NodeStatus"]
