"""The local Kubernetes toolchain, built from upstream Go modules into a cache outside the work tree.

kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet and kube-proxy (one
``go build`` through the wrapper module in ``k8s/``), etcd (wrapper module in ``etcd/``), kwok and
kwokctl, helm, prometheus and promtool (without the web UI's assets), alertmanager and amtool,
coredns (the real node's cluster DNS) (``go install`` at their pins). Versions live in ``pins.json``.

    from xorj.devenv.toolchain import Toolchain
    bin_dir = Toolchain().build(progress=print)      # no-op when cached
    Toolchain().path("kubectl")                      # -> Path
"""

from xorj.devenv.toolchain.builder import Toolchain, ToolchainStatus, cache_root

__all__ = ["Toolchain", "ToolchainStatus", "cache_root"]
