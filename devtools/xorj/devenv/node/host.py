"""The node's own slice of the machine: a network namespace, a mount namespace and a cgroup root.

Everything the node changes lives in these, so the shared host is left as it was:
- network namespace ``<name>``: the pods' bridge, their veths, kube-proxy's and the CNI plugins'
  iptables rules, ip_forward and bridge-netfilter sysctls. It joins the host by one veth pair
  (``<name>-h`` on the host, ``<name>-n`` inside, on a TEST-NET-2 /30 that no host route uses),
  only so the API server can reach the kubelet. The node has no default route: nothing a pod sends
  can leave the machine.
- mount namespace (held open by a ``holder`` process): container root filesystems, volumes and
  pod netns mounts, and the kubelet's kernel tunables, which are global to the machine: the node
  sees files holding the values the kubelet wants instead of the host's ``/proc/sys`` entries.
- cgroup root ``/<name>`` in every cgroup v1 hierarchy (cgroupfs driver: there is no systemd).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from xorj.devenv.node import processes
from xorj.devenv.node.config import KUBELET_KERNEL_TUNABLES, POD_GATEWAY, POD_SUBNET, NodeLayout
from xorj.devenv.waiting import wait_until_ready
from xorj.errors import EnvironmentSetupError

CGROUP_ROOT = Path("/sys/fs/cgroup")
HOLDER = "holder"
HOLDER_START_SECONDS = 60.0  # a generous limit: the wait ends as soon as the holder runs


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode != 0:
        raise EnvironmentSetupError(f"{' '.join(command)} failed: {(result.stderr or result.stdout).strip()}")
    return result


def cgroup_version() -> int:
    return 2 if (CGROUP_ROOT / "cgroup.controllers").exists() else 1


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, ..., name=systemd)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup":
            found.append(Path(fields[1]))
    return found


def _refuse_if_directly_routed(address: str, what: str) -> None:
    """Refuse when ``address`` is on a network the host reaches directly (not through a gateway, and
    not its own loopback): the node's route for it would shadow that network."""
    route = run("ip", "-4", "route", "get", address).stdout
    if "via" not in route.split(address, 1)[1].split("\n")[0] and "dev lo" not in route:
        raise EnvironmentSetupError(f"{what} is on a network this host already uses ({route.strip()}); "
                                    "refusing to add a route that would shadow it")


class NodeHost:
    def __init__(self, layout: NodeLayout) -> None:
        self.layout = layout

    # -- network ---------------------------------------------------------------------------

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.layout.netns

    def in_netns(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.layout.netns, *command, check=check)

    def create_network(self) -> None:
        lay = self.layout
        self._check_link_free()
        if not self.netns_path.exists():
            run("ip", "netns", "add", lay.netns)
        if run("ip", "link", "show", lay.host_veth, check=False).returncode != 0:
            run("ip", "link", "add", lay.host_veth, "type", "veth", "peer", "name", lay.node_veth,
                "netns", lay.netns)
            run("ip", "addr", "add", f"{lay.link_ip}/30", "dev", lay.host_veth)
            run("ip", "link", "set", lay.host_veth, "up")
        self.in_netns("ip", "link", "set", "lo", "up")
        # Inside the node, the API server's advertised address (the host's own address) is local:
        # the relays listen on it, so the kubelet, kube-proxy and pods (through the 'kubernetes'
        # Service) reach the host's loopback services without any packet leaving the namespace.
        if f" {lay.host_ip}/32" not in self.in_netns("ip", "-4", "addr", "show", "dev", "lo").stdout:
            self.in_netns("ip", "addr", "add", f"{lay.host_ip}/32", "dev", "lo")
        if lay.node_ip not in self.in_netns("ip", "-4", "addr", "show", lay.node_veth).stdout:
            self.in_netns("ip", "addr", "add", f"{lay.node_ip}/30", "dev", lay.node_veth)
        self.in_netns("ip", "link", "set", lay.node_veth, "up")
        # The host reaches pods by their IPs, as anything in a cluster does: the local environment's
        # Prometheus is a host process that scrapes executor pods (kind's nodes are routed the same way).
        run("ip", "route", "replace", POD_SUBNET, "via", lay.node_ip, "dev", lay.host_veth)
        # Service IPs need a route for traffic the node itself sends (kube-proxy DNATs it in OUTPUT).
        self.in_netns("ip", "route", "replace", lay.service_cidr, "dev", lay.node_veth)
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1"),
                           ("net.ipv4.conf.all.route_localnet", "1")):
            self.in_netns("sysctl", "-q", "-w", f"{key}={value}")

    def _check_link_free(self) -> None:
        """The veth's /30 must not shadow anything the host routes (its gateway above all)."""
        lay = self.layout
        if run("ip", "link", "show", lay.host_veth, check=False).returncode == 0:
            return
        _refuse_if_directly_routed(lay.node_ip, lay.node_ip)
        _refuse_if_directly_routed(POD_GATEWAY, f"the pod subnet {POD_SUBNET}")
        owned = run("ip", "-o", "-4", "addr", "show").stdout
        for address in (lay.link_ip, lay.node_ip):
            if f" {address}/" in owned:
                raise EnvironmentSetupError(f"{address} is already assigned on this host (another real node?)")

    def delete_network(self) -> None:
        if self.netns_path.exists():
            run("ip", "netns", "delete", self.layout.netns, check=False)
        # The host end goes with its peer; remove it if a half-made pair was left.
        if run("ip", "link", "show", self.layout.host_veth, check=False).returncode == 0:
            run("ip", "link", "delete", self.layout.host_veth, check=False)

    # -- mount namespace holder ------------------------------------------------------------

    def holder_pid(self) -> int | None:
        if processes.alive(HOLDER, self.layout.pids_dir, "xorj-node-holder"):
            return processes.recorded(HOLDER, self.layout.pids_dir)
        return None

    def start_holder(self) -> int:
        pid = self.holder_pid()
        if pid is not None:
            return pid
        tunables_dir = self.layout.state_dir / "kernel-tunables"
        tunables_dir.mkdir(parents=True, exist_ok=True)
        binds = []
        for key, value in KUBELET_KERNEL_TUNABLES.items():
            fake = tunables_dir / key.replace("/", ".")
            fake.write_text(value + "\n")
            binds.append(f"mount --bind {fake} /proc/sys/{key}")
        script = " && ".join([*binds, "exec -a xorj-node-holder sleep infinity"])
        pid = processes.start(
            HOLDER,
            ["nsenter", f"--net={self.netns_path}", "--", "unshare", "--mount", "--propagation", "private",
             "--", "bash", "-c", script],
            self.layout.pids_dir, self.layout.logs_dir,
        )
        # nsenter and unshare exec in place: the pid ends up running the holder's sleep.
        wait_until_ready("the node's namespace holder (nsenter, unshare, then `sleep` named xorj-node-holder)",
                         lambda: "xorj-node-holder" in processes.cmdline(pid), HOLDER_START_SECONDS,
                         alive=lambda: processes.process_running(pid), interval=0.05,
                         logs=[self.layout.logs_dir / f"{HOLDER}.log"])
        return pid

    def enter(self) -> list[str]:
        """Prefix that runs a command inside the node's network and mount namespaces."""
        pid = self.holder_pid()
        if pid is None:
            raise EnvironmentSetupError(f"node {self.layout.name}: its namespace holder is not running")
        return ["nsenter", f"--target={pid}", "--mount", "--net", "--"]

    def stop_holder(self) -> None:
        processes.stop(HOLDER, self.layout.pids_dir, "xorj-node-holder", grace=2)

    # -- cgroups ---------------------------------------------------------------------------

    def create_cgroups(self) -> None:
        if cgroup_version() != 1:
            raise EnvironmentSetupError("this node supports cgroup v1 hierarchies only (cgroupfs driver)")
        for hierarchy in cgroup_hierarchies():
            path = hierarchy / self.layout.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            if (hierarchy / "cpuset.cpus").exists():
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / knob).read_text().strip():
                        (path / knob).write_text((hierarchy / knob).read_text())

    def cgroup_pids(self) -> set[int]:
        found: set[int] = set()
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / self.layout.cgroup_root.lstrip("/")
            for procs in root.rglob("cgroup.procs") if root.is_dir() else []:
                with contextlib.suppress(OSError, ValueError):
                    found.update(int(line) for line in procs.read_text().split())
        return found

    def kill_cgroup_processes(self) -> None:
        """Every container process of the node (whatever runc or a shim left behind)."""
        for _ in range(3):
            pids = self.cgroup_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            time.sleep(0.3)

    def delete_cgroups(self) -> None:
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / self.layout.cgroup_root.lstrip("/")
            if not root.is_dir():
                continue
            for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()

    def remove_state(self) -> None:
        if self.layout.state_dir.exists():
            shutil.rmtree(self.layout.state_dir, ignore_errors=True)
