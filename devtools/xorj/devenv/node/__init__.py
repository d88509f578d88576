"""A real Kubernetes node for the local cluster (containerd, runc, kubelet, CNI, kube-proxy)."""

from xorj.devenv.node.lifecycle import REAL_NODE_LABEL, LocalChainNode, NodeStatus

__all__ = ["REAL_NODE_LABEL", "LocalChainNode", "NodeStatus"]
