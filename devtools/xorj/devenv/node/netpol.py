"""NetworkPolicy on the real node: kube-router's policy controller (iptables + ipset), built from its
Go module at a pinned version into the xorj cache.

Why not kube-network-policies (kind's agent): it hands packets to userspace with the nftables
``queue`` statement, and this kernel is built without CONFIG_NFT_QUEUE. Its v0.8.0 sync fails with
"netlink receive: no such file or directory", and by hand, inside the node's namespace:
``nft add rule inet t c ip protocol tcp queue num 100 bypass`` -> "Error: No such file or directory".
kube-router needs only xtables matches and ipset (CONFIG_IP_SET, CONFIG_NETFILTER_XT_SET), built in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from xorj.devenv.toolchain import cache_root
from xorj.errors import EnvironmentSetupError

KUBE_ROUTER_MODULE = "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
KUBE_ROUTER_VERSION = "v2.1.0"


def kube_router_binary(progress=lambda _: None) -> Path:
    bin_dir = cache_root() / "netpol" / KUBE_ROUTER_VERSION / "bin"
    binary = bin_dir / "kube-router"
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise EnvironmentSetupError("go is needed to build kube-router for NetworkPolicy")
    progress(f"go install {KUBE_ROUTER_MODULE}@{KUBE_ROUTER_VERSION} (once; a few minutes on 2 cores)")
    env = dict(os.environ, GOBIN=str(bin_dir), CGO_ENABLED="0")
    result = subprocess.run(["go", "install", f"{KUBE_ROUTER_MODULE}@{KUBE_ROUTER_VERSION}"],
                            capture_output=True, text=True, env=env, timeout=1800, check=False)
    if result.returncode != 0:
        raise EnvironmentSetupError(f"building kube-router failed: {result.stderr.strip()[-2000:]}")
    return binary


def kube_router_command(binary: Path, kubeconfig: Path, node_name: str) -> list[str]:
    """Only the policy controller: routing stays with the CNI bridge, Services with kube-proxy."""
    if shutil.which("ipset") is None:
        raise EnvironmentSetupError("ipset is not installed (Debian package ipset); kube-router needs it")
    return [str(binary), "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            f"--kubeconfig={kubeconfig}", f"--hostname-override={node_name}", "--health-port=20244",
            "--metrics-port=0", "--v=1"]
