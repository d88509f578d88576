"""A real node beside the local control plane: containerd + runc, kubelet, CNI bridge, kube-proxy.

    node = LocalNode(LocalCluster())          # attaches to that cluster's kubeconfig
    node.up(progress=print)                   # idempotent; returns NodeStatus
    node.load_image(archive)                  # ctr -n k8s.io images import
    node.expose_host_port(5432)               # -> "192.0.2.2:5432", reachable from pods
    node.down()                               # removes everything it made

See host.py for how the node is kept inside its own namespaces and cgroup root.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xorj.devenv.cluster import LocalCluster
from xorj.devenv.image import ImageBuilder
from xorj.devenv.node import config, processes
from xorj.devenv.node.cluster import incompatibilities
from xorj.devenv.node.host import NodeHost
from xorj.devenv.node.netpol import kube_router_binary, kube_router_command
from xorj.devenv.node.pause import pause_archive
from xorj.devenv.toolchain import cache_root
from xorj.errors import EnvironmentSetupError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
DEFAULT_NODE_NAME = "xorj-node"
REAL_NODE_LABEL = "xorj.dev/node"  # value "real": what sets this node apart from the kwok nodes
READY_TIMEOUT = 120.0
DAEMONS = ("containerd", "kubelet", "kube-proxy", "kube-router")
# The veth between host and node (TEST-NET-2, documentation-only addresses: routed nowhere else).
LINK_HOST_IP = "198.51.100.1"
LINK_NODE_IP = "198.51.100.2"


def _silent(_: str) -> None:
    return None


# How long a relay may take to listen (a generous limit; the wait ends as soon as it listens).
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


class LocalNode:
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
        tc = self.cluster.toolchain
        lay = self.layout()
        host = NodeHost(lay)
        for directory in (lay.cni_conf_dir, lay.manifests_dir, lay.kubelet_dir, lay.logs_dir, lay.pids_dir):
            directory.mkdir(parents=True, exist_ok=True)
        progress(f"node {self.name}: network namespace, veth {lay.host_veth} ({lay.link_ip}) <-> {lay.node_ip}")
        (self.state_dir / "cluster").write_text(self.cluster.name)  # which cluster's `down` removes it
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
            self._wait(lambda: self._ctr("version").returncode == 0, "containerd's socket", 30)
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
        self._wait(self._node_ready, f"node {self.name} Ready", READY_TIMEOUT)
        # kube-router finds its Node object at start-up: only once the kubelet has registered it.
        if not processes.alive("kube-router", lay.pids_dir, str(lay.state_dir)):
            progress("starting kube-router (NetworkPolicy)")
            command = kube_router_command(kube_router_binary(progress), lay.kubeconfig, self.name)
            processes.start("kube-router", [*enter, *command], lay.pids_dir, lay.logs_dir)
            time.sleep(2)  # it exits at once when it cannot start
        status = self.status()
        if not status.ready:
            raise EnvironmentSetupError(f"node {self.name} is not ready: {status.problem} (logs in {lay.logs_dir})")
        seconds = time.monotonic() - started
        progress(f"node {self.name} Ready in {seconds:.1f}s")
        log.info("node up", extra={"node": self.name, "seconds": round(seconds, 1)})
        return self.status()

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
        for pid in _pids_with(str(lay.containerd_socket)):  # containerd-shim-runc-v2 -address <socket>
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

    def _ensure_relay(self, name: str, port: int) -> None:
        lay = self.layout()
        if processes.alive(name, lay.pids_dir, "xorj.devenv.node.relay"):
            return
        import sys

        processes.start(name, [sys.executable, "-m", "xorj.devenv.node.relay", f"/run/netns/{lay.netns}",
                               f"{lay.host_ip}:{port}", f"127.0.0.1:{port}"], lay.pids_dir, lay.logs_dir)
        # Wait for the listening socket itself, with room for a machine busy with builds: a Python
        # process can take tens of seconds to start there (a fixed 10 s failed a first demo).
        started = time.monotonic()
        deadline = started + RELAY_START_SECONDS
        alive = True
        while time.monotonic() < deadline:
            alive = processes.alive(name, lay.pids_dir, "xorj.devenv.node.relay")
            if not alive:
                break
            probe = NodeHost(lay).in_netns("ss", "-ltnH", f"src {lay.host_ip}:{port}", check=False).stdout
            if probe.strip():
                return
            time.sleep(0.2)
        log = lay.logs_dir / f"{name}.log"
        log_tail = log.read_text()[-800:] if log.exists() else ""
        why = "its process exited" if not alive else f"no listener after {time.monotonic() - started:.0f}s"
        raise EnvironmentSetupError(
            f"relay for port {port} did not start ({why}; waited for a listener on {lay.host_ip}:{port} in "
            f"netns {lay.netns}); relay log {log}:\n{log_tail or '(empty)'}")

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.layout().containerd_socket), *args],
                              capture_output=True, text=True, timeout=60, check=False)

    @staticmethod
    def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.5)
        raise EnvironmentSetupError(f"timed out after {timeout:.0f}s waiting for {what}")


def _pids_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and marker in processes.cmdline(int(proc.name)):
            found.append(int(proc.name))
    return found
