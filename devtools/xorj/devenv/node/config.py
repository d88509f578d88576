"""Configuration files of the node's components, rendered from one :class:`NodeLayout` (pure)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

PAUSE_IMAGE = "localhost/xorj-pause:1.0"
POD_SUBNET = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
BRIDGE = "xorj0"
CNI_NETWORK = "xorj-pods"
CNI_BIN_DIR = Path("/usr/lib/cni")
CLUSTER_DOMAIN = "cluster.local"

# Values the kubelet insists on (its kernel tunables). They are global to the machine, so the
# node's private mount namespace shows the kubelet files holding these values instead of changing
# the host's; see host.NodeHost.
KUBELET_KERNEL_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its state and which names and addresses it uses."""

    name: str  # node name, netns name and cgroup root all start with "xorj"
    state_dir: Path
    host_ip: str  # the API server's advertised address: inside the node it stands for the host (relays)
    link_ip: str  # host end of the veth (a TEST-NET-2 address no host route uses)
    node_ip: str  # node end of the veth: the node's InternalIP, where the API server reaches the kubelet
    api_port: int
    kubelet_port: int
    service_cidr: str = "10.0.0.0/24"

    @property
    def cluster_dns_ip(self) -> str:
        """The kube-dns Service's address: the tenth of the Service range, as kubeadm picks it
        (10.96.0.10 in kind's 10.96.0.0/16)."""
        return str(ipaddress.ip_network(self.service_cidr)[10])

    @property
    def netns(self) -> str:
        return self.name

    @property
    def host_veth(self) -> str:
        return f"{self.name[:10]}-h"

    @property
    def node_veth(self) -> str:
        return f"{self.name[:10]}-n"

    @property
    def cgroup_root(self) -> str:
        return f"/{self.name}"

    @property
    def containerd_socket(self) -> Path:
        return self.state_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.state_dir / "containerd.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state_dir / "cni" / "net.d"

    @property
    def kubelet_dir(self) -> Path:
        return self.state_dir / "kubelet"

    @property
    def manifests_dir(self) -> Path:
        return self.state_dir / "manifests"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig.yaml"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"


def containerd_toml(layout: NodeLayout) -> str:
    base = layout.state_dir / "containerd"
    return f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
oom_score = 0

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[debug]
  address = "{base / 'debug.sock'}"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # The sandbox's bounding set lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj (the
  # kubelet asks -998 for sandboxes): "can't get final child's PID from pipe: EOF". Clamp instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(layout: NodeLayout) -> str:
    """bridge + host-local + portmap (+ loopback, which the CRI plugin adds itself)."""
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the node: pods reach the host only through the relays
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.state_dir / "cni" / "ipam"),
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2)


def kubeconfig(layout: NodeLayout, ca: Path, cert: Path, key: Path) -> str:
    """The node's credentials (the cluster's admin pair), pointing at the relay on the veth."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: xorj
  cluster:
    certificate-authority: {ca}
    server: https://{layout.host_ip}:{layout.api_port}
users:
- name: xorj-node
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: xorj
  context: {{cluster: xorj, user: xorj-node}}
current-context: xorj
"""


def kubelet_config(layout: NodeLayout) -> str:
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {layout.node_ip}
port: {layout.kubelet_port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# The API server here has no kubelet client certificate; the kubelet listens only on the node's
# veth address, which only the host reaches.
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
cgroupRoot: {layout.cgroup_root}
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://{layout.containerd_socket}
staticPodPath: {layout.manifests_dir}
failSwapOn: false
protectKernelDefaults: true
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: ["{layout.cluster_dns_ip}"]
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
maxPods: 60
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 5s
localStorageCapacityIsolation: true
"""


def kube_proxy_config(layout: NodeLayout) -> str:
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: {layout.kubeconfig}
hostnameOverride: {layout.name}
bindAddress: {layout.node_ip}
clusterCIDR: 10.244.0.0/16
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# conntrack limits are global to the machine: leave them alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
nodePortAddresses: ["{layout.node_ip}/32"]
"""
