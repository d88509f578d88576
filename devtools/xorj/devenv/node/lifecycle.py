"""A real node beside the local control plane: containerd + runc, kubelet, CNI bridge, kube-proxy.

    node = LocalChainNode(LocalCluster())          # attaches to that cluster's kubeconfig
    node.up(progress=print)                   # idempotent; returns NodeStatus
    node.load_image(archive)                  # ctr -n k8s.io images import
    node.expose_host_port(5432)               # -> "192.0.2.2:5432", reachable from pods
    node.down()                               # removes everything it made

See host.py for how the node is kept inside its own namespaces and cgroup root.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xorj.devenv.cluster import LocalCluster
from xorj.devenv.image import ImageBuilder
from xorj.devenv.node import config, dns, processes
from xorj.devenv.node.cluster import incompatibilities
from xorj.devenv.node.host import NodeHost
from xorj.devenv.node.netpol import kube_router_binary, kube_router_command
from xorj.devenv.node.pause import pause_archive
from xorj.devenv.processes import processes_with
from xorj.devenv.toolchain import cache_root
from xorj.devenv.waiting import wait_until_ready
from xorj.errors import EnvironmentSetupError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
DEFAULT_NODE_NAME = "xorj-node"
REAL_NODE_LABEL = "xorj.dev/node"  # value "real": what sets this node apart from the kwok nodes
# Generous overall limits on start-up waits: each ends as soon as its readiness signal is there; on a
# machine busy with builds a daemon can take minutes where it takes seconds on an idle one.
READY_TIMEOUT = 300.0  # the kubelet registers the node and reports it Ready
DAEMON_START_SECONDS = 180.0  # containerd's API, kube-proxy's and kube-router's /healthz
DNS_READY_SECONDS = 180.0  # CoreDNS's replicas Ready (their /ready: the kubernetes plugin has synced)
# Where the node's daemons serve /healthz inside its network namespace (config.py, netpol.py).
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_ROUTER_HEALTH_PORT = 20244
KUBE_ROUTER_SYNCED_LINE = b"sync iptables took"  # logged (--v=1) at the end of each full policy sync
# The veth between host and node (TEST-NET-2, documentation-only addresses: routed nowhere else).
LINK_HOST_IP = "198.51.100.1"
LINK_NODE_IP = "198.51.100.2"


def stale_join(joined: tuple[str, str | None] | None, cluster: tuple[str, str]) -> str | None:
    """Why a node's state cannot be reused for ``cluster`` (its name, its CA's digest), or None.
    ``joined`` is what the node recorded when it was brought up (None: no node; a None digest: a node
    from before digests were recorded, judged by name). A node left from another cluster, or from an
    earlier cluster of the same name (a new CA), keeps that cluster's endpoint and kubelet client
    certificate: reused, its kubelet fails every call with x509 errors."""
    if joined is None:
        return None
    name, digest = joined
    if name != cluster[0]:
        return f"it was brought up for cluster {name}, not {cluster[0]}"
    if digest is not None and digest != cluster[1]:
        return f"cluster {name} was re-created since it was brought up (another CA)"
    return None


def _ca_digest(ca: Path) -> str:
    return hashlib.sha256(ca.read_bytes()).hexdigest()[:16]


def _silent(_: str) -> None:
    return None


# How long a relay may take to accept connections (a Python process can take tens of seconds to
# start on a busy machine: a fixed 10 s failed a first demo).
RELAY_START_SECONDS = 120.0


@dataclass(frozen=True)
class NodeStatus:
    name: str
    processes: dict[str, bool]
    ready: bool
    node_ip: str | None
    problem: str | None = None

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(self.processes.values())


class LocalChainNode:
    def __init__(self, cluster: LocalCluster, name: str = DEFAULT_NODE_NAME, state_dir: Path | None = None,
                 taints: tuple[str, ...] = ()) -> None:
        """``taints`` (``key=value:Effect``) are registered with the node when the kubelet first
        creates its Node object: pods without a matching toleration stay off it."""
        if not name.startswith("xorj"):
            raise ValueError(f"node name {name!r}: must start with 'xorj' (everything it creates carries the name)")
        self.cluster = cluster
        self.name = name
        self.taints = taints
        self.state_dir = state_dir or cache_root() / "node" / name
        self.images = ImageBuilder()

    # -- layout ----------------------------------------------------------------------------

    def _api_endpoint(self) -> tuple[str, int]:
        """The API server's advertised address (the 'kubernetes' Service's endpoint) and port."""
        out = self.cluster.kubectl("get", "endpoints", "kubernetes", "-n", "default", "-o", "json").stdout
        subset = json.loads(out)["subsets"][0]
        return subset["addresses"][0]["ip"], int(subset["ports"][0]["port"])

    def layout(self) -> config.NodeLayout:
        saved = self.state_dir / "layout.json"
        if saved.is_file():
            data = json.loads(saved.read_text())
            return config.NodeLayout(state_dir=self.state_dir, **data)
        host_ip, api_port = self._api_endpoint()
        link_ip, node_ip = LINK_HOST_IP, LINK_NODE_IP
        service_cidr = "10.0.0.0/24"
        data = {"name": self.name, "host_ip": host_ip, "link_ip": link_ip, "node_ip": node_ip, "api_port": api_port,
                "kubelet_port": 10250, "service_cidr": service_cidr}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(data))
        return config.NodeLayout(state_dir=self.state_dir, **data)

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, progress: Progress = _silent) -> NodeStatus:
        started = time.monotonic()
        if not self.cluster.status().running:
            raise EnvironmentSetupError(f"cluster {self.cluster.name} is not running: start it first")
        problems = incompatibilities(self.cluster)
        if problems:
            raise EnvironmentSetupError(
                f"cluster {self.cluster.name} cannot host a real node: {'; '.join(problems)}. It was started by "
                "an older version: recreate it (`xorj dev cluster down && xorj dev cluster up`).")
        ca_digest = _ca_digest(self.cluster.cluster_dir / "pki" / "ca.crt")
        stale = stale_join(self._joined_to(), (self.cluster.name, ca_digest))
        if stale:
            progress(f"node {self.name}: {stale}; removing it first")
            self.down(progress)
        tc = self.cluster.toolchain
        lay = self.layout()
        host = NodeHost(lay)
        for directory in (lay.cni_conf_dir, lay.manifests_dir, lay.kubelet_dir, lay.logs_dir, lay.pids_dir):
            directory.mkdir(parents=True, exist_ok=True)
        progress(f"node {self.name}: network namespace, veth {lay.host_veth} ({lay.link_ip}) <-> {lay.node_ip}")
        (self.state_dir / "cluster").write_text(self.cluster.name)  # which cluster's `down` removes it
        (self.state_dir / "cluster-ca").write_text(ca_digest)  # which of its incarnations
        host.create_network()
        host.create_cgroups()
        host.start_holder()
        pki = self.cluster.cluster_dir / "pki"
        lay.kubeconfig.write_text(config.kubeconfig(lay, pki / "ca.crt", pki / "admin.crt", pki / "admin.key"))
        lay.containerd_config.write_text(config.containerd_toml(lay))
        (lay.cni_conf_dir / "10-xorj.conflist").write_text(config.cni_conflist(lay))
        (lay.state_dir / "kubelet.yaml").write_text(config.kubelet_config(lay))
        (lay.state_dir / "kube-proxy.yaml").write_text(config.kube_proxy_config(lay))
        self._ensure_relay("relay-api", lay.api_port)
        enter = host.enter()
        if not processes.alive("containerd", lay.pids_dir, str(lay.containerd_config)):
            progress("starting containerd")
            processes.start("containerd", [*enter, "containerd", "--config", str(lay.containerd_config)],
                            lay.pids_dir, lay.logs_dir)
            self._wait_daemon("containerd", f"containerd's API answering `ctr version` on {lay.containerd_socket}",
                              lambda: self._ctr("version").returncode == 0)
        progress("loading the pause image")
        self.load_image(pause_archive(self.images))
        if not processes.alive("kubelet", lay.pids_dir, str(lay.state_dir)):
            progress("starting kubelet")
            processes.start("kubelet", [
                *enter, str(tc.path("kubelet")),
                f"--config={lay.state_dir / 'kubelet.yaml'}", f"--kubeconfig={lay.kubeconfig}",
                f"--root-dir={lay.kubelet_dir}", f"--cert-dir={lay.kubelet_dir / 'pki'}",
                f"--hostname-override={self.name}", f"--node-ip={lay.node_ip}",
                f"--node-labels={REAL_NODE_LABEL}=real", "--v=1",
                *([f"--register-with-taints={','.join(self.taints)}"] if self.taints else []),
            ], lay.pids_dir, lay.logs_dir)
        if not processes.alive("kube-proxy", lay.pids_dir, str(lay.state_dir)):
            progress("starting kube-proxy")
            processes.start("kube-proxy", [*enter, str(tc.path("kube-proxy")),
                                           f"--config={lay.state_dir / 'kube-proxy.yaml'}", "--v=1"],
                            lay.pids_dir, lay.logs_dir)
        wait_until_ready(f"node {self.name} Ready (the kubelet's Ready condition on the Node object)",
                         self._node_ready, READY_TIMEOUT,
                         alive=lambda: processes.running("kubelet", lay.pids_dir),
                         logs=[lay.logs_dir / "kubelet.log"], last_seen=self._node_conditions)
        self._wait_daemon("kube-proxy", f"kube-proxy's /healthz on 127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT} in netns "
                          f"{lay.netns}", lambda: self._healthz(KUBE_PROXY_HEALTHZ_PORT))
        # kube-router finds its Node object at start-up: only once the kubelet has registered it.
        router_log = lay.logs_dir / "kube-router.log"
        first_sync, log_start = b"", 0  # what its log must show (from where), when it is started now
        if not processes.alive("kube-router", lay.pids_dir, str(lay.state_dir)):
            progress("starting kube-router (NetworkPolicy)")
            command = kube_router_command(kube_router_binary(progress), lay.kubeconfig, self.name)
            first_sync, log_start = KUBE_ROUTER_SYNCED_LINE, _size(router_log)
            processes.start("kube-router", [*enter, *command], lay.pids_dir, lay.logs_dir)
        # /healthz serves from its start on (it exits at once when it cannot start); the policy
        # controller logs its first full sync of the iptables rules that enforce NetworkPolicy.
        self._wait_daemon(
            "kube-router", f"kube-router's /healthz on 127.0.0.1:{KUBE_ROUTER_HEALTH_PORT} in netns {lay.netns}"
            + (f" and its first policy sync (log line {first_sync.decode()!r})" if first_sync else ""),
            lambda: self._healthz(KUBE_ROUTER_HEALTH_PORT) and (
                not first_sync or first_sync in _read_from(router_log, log_start)))
        self._deploy_dns(lay, progress)
        status = self.status()
        if not status.ready:
            raise EnvironmentSetupError(f"node {self.name} is not ready: {status.problem} (logs in {lay.logs_dir})")
        seconds = time.monotonic() - started
        progress(f"node {self.name} Ready in {seconds:.1f}s")
        log.info("node up", extra={"node": self.name, "seconds": round(seconds, 1)})
        return self.status()

    def _deploy_dns(self, lay: config.NodeLayout, progress: Progress) -> None:
        """CoreDNS as kind runs it (see dns.py), and wait until its replicas answer."""
        tc = self.cluster.toolchain
        reference, archive = dns.coredns_image(self.images, tc.path("coredns"), str(tc.pins.coredns))
        progress(f"cluster DNS: {dns.NAMESPACE}/{dns.NAME} ({reference}) behind {dns.SERVICE_NAME} at "
                 f"{lay.cluster_dns_ip}")
        self.load_image(archive)
        manifest = dns.manifests(image=reference, dns_ip=lay.cluster_dns_ip, api_host=lay.host_ip,
                                 api_port=lay.api_port, node_selector={REAL_NODE_LABEL: "real"}, taints=self.taints)
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        rollout = self.cluster.kubectl(
            "rollout", "status", "-n", dns.NAMESPACE, f"deployment/{dns.NAME}", f"--timeout={int(DNS_READY_SECONDS)}s",
            check=False, timeout=DNS_READY_SECONDS + 30)
        if rollout.returncode != 0:
            pods = self.cluster.kubectl("get", "pods", "-n", dns.NAMESPACE, "-l", f"k8s-app={dns.SERVICE_NAME}",
                                        "-o", "wide", check=False).stdout
            raise EnvironmentSetupError(
                f"cluster DNS not ready after {DNS_READY_SECONDS:.0f}s: {(rollout.stderr or rollout.stdout).strip()}"
                f"\n{pods}(`kubectl logs -n {dns.NAMESPACE} deployment/{dns.NAME}`; kubelet log in {lay.logs_dir})")

    def down(self, progress: Progress = _silent) -> None:
        """Remove every process, container, mount, namespace, interface and cgroup the node made."""
        if not self.state_dir.exists():
            return
        lay = self.layout()
        host = NodeHost(lay)
        progress(f"stopping node {self.name}")
        processes.stop("kube-router", lay.pids_dir, str(lay.state_dir))
        processes.stop("kube-proxy", lay.pids_dir, str(lay.state_dir))
        processes.stop("kubelet", lay.pids_dir, str(lay.state_dir))
        host.kill_cgroup_processes()  # containers (and pause processes)
        processes.stop("containerd", lay.pids_dir, str(lay.containerd_config))
        for pid in processes_with(str(lay.containerd_socket)):  # containerd-shim-runc-v2 -address <socket>
            processes.stop_pid(pid, grace=2)
        for relay in lay.pids_dir.glob("relay-*.pid") if lay.pids_dir.is_dir() else []:
            processes.stop(relay.stem, lay.pids_dir, "xorj.devenv.node.relay", grace=2)
        # The mount namespace dies with its last process: rootfs, volume and netns mounts go with it.
        host.stop_holder()
        host.delete_network()
        host.delete_cgroups()
        with contextlib.suppress(Exception):
            if self.cluster.kubeconfig.is_file():
                self.cluster.kubectl("delete", "node", self.name, "--ignore-not-found", "--wait=false", check=False)
        host.remove_state()

    def joined(self) -> str | None:
        """The name of the cluster this node was brought up for (None when there is no node)."""
        try:
            return (self.state_dir / "cluster").read_text().strip() or None
        except OSError:
            return None

    def _joined_to(self) -> tuple[str, str | None] | None:
        name = self.joined()
        if name is None:
            return None
        try:
            digest: str | None = (self.state_dir / "cluster-ca").read_text().strip() or None
        except OSError:
            digest = None
        return name, digest

    def _node_ready(self) -> bool:
        result = self.cluster.kubectl(
            "get", "node", self.name, "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False, timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "True"

    def status(self) -> NodeStatus:
        if not (self.state_dir / "layout.json").is_file():
            return NodeStatus(self.name, {}, False, None, problem="not created")
        lay = self.layout()
        alive = {
            "containerd": processes.alive("containerd", lay.pids_dir, str(lay.containerd_config)),
            "kubelet": processes.alive("kubelet", lay.pids_dir, str(lay.state_dir)),
            "kube-proxy": processes.alive("kube-proxy", lay.pids_dir, str(lay.state_dir)),
            "kube-router": processes.alive("kube-router", lay.pids_dir, str(lay.state_dir)),
        }
        ready = self._node_ready()
        dead = [name for name, up in alive.items() if not up]
        problem = f"stopped: {', '.join(dead)}" if dead else (None if ready else "node not Ready")
        return NodeStatus(self.name, alive, ready and not dead, lay.node_ip, problem)

    # -- images and host services ----------------------------------------------------------

    def load_image(self, archive: Path) -> None:
        ImageBuilder.import_into(archive, self.layout().containerd_socket)

    def expose_host_port(self, port: int) -> str:
        """Make a service on the host's 127.0.0.1:port reachable from pods; returns host:port."""
        self._ensure_relay(f"relay-{port}", port)
        return f"{self.layout().host_ip}:{port}"

    def reach_from_host(self, address: str, port: int, host_port: int) -> str:
        """Make ``address:port`` as the node sees it (e.g. a Service's cluster IP, which kube-proxy
        balances per connection) reachable at the host's 127.0.0.1:host_port; returns that host:port.
        Kept if already running (for the same target); stopped with the node."""
        name = f"relay-out-{address.replace('.', '-')}-{port}"
        self._ensure_relay(name, host_port, outward=(address, port))
        return f"127.0.0.1:{host_port}"

    def stop_reach_from_host(self, address: str, port: int) -> None:
        """Stop the relay :meth:`reach_from_host` started for ``address:port`` (if it runs)."""
        if self.state_dir.exists():
            name = f"relay-out-{address.replace('.', '-')}-{port}"
            processes.stop(name, self.layout().pids_dir, "xorj.devenv.node.relay", grace=2)

    def _ensure_relay(self, name: str, port: int, outward: tuple[str, int] | None = None) -> None:
        """A relay from the node's host address to the host's 127.0.0.1:port, or with ``outward``,
        from the host's 127.0.0.1:port to that address inside the node."""
        lay = self.layout()
        if processes.alive(name, lay.pids_dir, "xorj.devenv.node.relay"):
            return
        import sys

        from xorj.devenv.node.relay import READY_LINE

        log_path = lay.logs_dir / f"{name}.log"
        log_start = _size(log_path)  # the log is appended to: only what this start writes counts
        if outward:
            listen, where = ("127.0.0.1", port), "on the host"
            what = f"relay to {outward[0]}:{outward[1]} in netns {lay.netns}"
            argv = ["--outward", self._netns_path(), f"127.0.0.1:{port}", f"{outward[0]}:{outward[1]}"]
        else:
            listen, where = (lay.host_ip, port), f"in netns {lay.netns}"
            what = f"relay for port {port}"
            argv = [self._netns_path(), f"{lay.host_ip}:{port}", f"127.0.0.1:{port}"]
        processes.start(name, [sys.executable, "-m", "xorj.devenv.node.relay", *argv], lay.pids_dir, lay.logs_dir)

        def accepts() -> bool:
            if outward:
                socket.create_connection(listen, timeout=2).close()
                return True
            return self._accepts(listen)

        def ready() -> bool:
            # its own ready line (another process listening there would fool a bare connect), then
            # the socket accepting a connection as its clients' would
            return READY_LINE.encode() in _read_from(log_path, log_start) and accepts()

        wait_until_ready(
            f"{what}: its ready line, then a listener accepting on {listen[0]}:{listen[1]} {where}",
            ready, RELAY_START_SECONDS, interval=0.2,
            alive=lambda: processes.running(name, lay.pids_dir), logs=[lay.logs_dir / f"{name}.log"])

    # -- readiness probes (inside the node's network namespace) ------------------------------

    def _netns_path(self) -> str:
        return f"/run/netns/{self.layout().netns}"

    def _accepts(self, address: tuple[str, int]) -> bool:
        """Something accepts TCP connections on ``address`` as the node's processes see it."""
        from xorj.devenv.node.relay import connect_in_netns

        connect_in_netns(self._netns_path(), address).close()
        return True

    def _healthz(self, port: int) -> bool:
        """``GET /healthz`` on the node's 127.0.0.1:port answers 200."""
        import http.client

        from xorj.devenv.node.relay import connect_in_netns

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.sock = connect_in_netns(self._netns_path(), ("127.0.0.1", port), timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def _wait_daemon(self, name: str, what: str, check: Callable[[], bool]) -> None:
        lay = self.layout()
        wait_until_ready(what, check, DAEMON_START_SECONDS, alive=lambda: processes.running(name, lay.pids_dir),
                         logs=[lay.logs_dir / f"{name}.log"])

    def _node_conditions(self) -> str:
        out = self.cluster.kubectl("get", "node", self.name, "-o", "jsonpath={.status.conditions}",
                                   check=False, timeout=10)
        return (out.stdout or out.stderr).strip()[:1500] or "(no Node object yet)"

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.layout().containerd_socket), *args],
                              capture_output=True, text=True, timeout=60, check=False)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> bytes:
    """What was appended to a log since ``offset``."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read()
