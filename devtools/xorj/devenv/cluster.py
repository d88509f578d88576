"""A local Kubernetes cluster from the toolchain's own binaries, without a container engine.

kwokctl's binary runtime starts etcd, kube-apiserver (authorization RBAC,Node and the default
admission plugins on), kube-controller-manager (all default controllers: garbage collector,
namespace, service accounts, deployments, disruption budgets, ...), kube-scheduler and
kwok-controller as plain processes on free loopback ports. kwok stands in for kubelets: it marks
its fake nodes Ready and moves the pods scheduled onto them to Running.

State lives under ``${XORJ_CACHE_DIR:-~/.cache/xorj}/kwok`` (kwokctl's work dir), never in the work
tree. ``up`` is idempotent; ``down`` stops every process of the cluster and removes its state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from xorj.devenv.processes import cmdline, process_running, terminate
from xorj.devenv.toolchain import Toolchain, cache_root
from xorj.devenv.waiting import describe_logs, wait_until_ready
from xorj.errors import EnvironmentSetupError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
DEFAULT_NAME = "xorj"
DEFAULT_NODES = 2
# A generous overall limit on starting the cluster: the wait ends as soon as it is ready, and a
# machine busy with builds can take minutes to start etcd and the API server.
UP_TIMEOUT_SECONDS = 300.0
# kwok-controller manages the nodes carrying this annotation (kwokctl's default selector).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


KUBERNETES_SERVICE_IP = "10.0.0.1"

# Options kwokctl takes only from a configuration file. Every component listens on loopback only
# (kwokctl's default is 0.0.0.0). So that a real node (xorj.devenv.node) can join any local cluster:
# kwok-controller manages only the nodes carrying kwok's annotation (all of ours do; kwokctl's binary
# runtime would otherwise run it with --manage-all-nodes=true and fake a real node's pods and
# heartbeats), and the API server reaches kubelets by InternalIP (its default tries the node's
# hostname first, which nothing resolves here: "dial tcp: lookup xorj-node ... no such host" on
# `kubectl logs`).
KWOKCTL_CONFIG = f"""apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
  # The `kubernetes` Service's address (the first of the default 10.0.0.0/24): pods' in-cluster
  # clients connect to it by IP, and kwokctl's certificate names only the host's addresses.
  kubeApiserverCertSANs: ["{KUBERNETES_SERVICE_IP}"]
componentsPatches:
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


def _silent(_: str) -> None:
    return None


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; the message carries kubectl's own explanation."""

    def __str__(self) -> str:
        return f"{' '.join(map(str, self.cmd[3:]))} failed (exit {self.returncode}): {(self.stderr or '').strip()}"


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    running: bool
    kubeconfig: Path
    server: str | None = None
    version: str | None = None
    processes: dict[str, bool] = field(default_factory=dict)
    nodes_ready: int = 0
    nodes_total: int = 0
    problem: str | None = None


def node_manifest(name: str) -> str:
    """A kwok node: no taints, so ordinary workloads schedule onto it."""
    return f"""apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    {KWOK_NODE_ANNOTATION}: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110"}}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
    kubeProxyVersion: fake
"""


class LocalCluster:
    """One named local cluster. Every method is safe to call whatever state the cluster is in."""

    def __init__(
        self,
        name: str | None = None,
        toolchain: Toolchain | None = None,
        workdir: Path | None = None,
        nodes: int = DEFAULT_NODES,
    ) -> None:
        self.name = name or os.environ.get("XORJ_CLUSTER_NAME", DEFAULT_NAME)
        self.toolchain = toolchain or Toolchain()
        self.workdir = workdir or cache_root() / "kwok"
        self.nodes = nodes
        self.cluster_dir = self.workdir / "clusters" / self.name
        self.kubeconfig = self.cluster_dir / "kubeconfig.yaml"

    # -- commands -----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        bin_dir = self.toolchain.bin_dir
        env = dict(os.environ)
        env["KWOK_WORKDIR"] = str(self.workdir)
        env["KWOK_KUBECTL_BINARY"] = str(bin_dir / "kubectl")
        # kwokctl picks each component's flags by release; it reads the real one from the binaries
        # too, this only replaces its compiled-in default.
        env["KWOK_KUBE_VERSION"] = str(self.toolchain.pins.kubernetes)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.pop("KUBECONFIG", None)  # kwokctl must never touch a user's kubeconfig
        return env

    def kwokctl(self, *args: str, timeout: float = UP_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.toolchain.path("kwokctl")), "--name", self.name, *args],
            env=self._env(), capture_output=True, text=True, timeout=timeout, check=False,
        )

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """kubectl against this cluster; with check, a failure raises with kubectl's own message."""
        command = [str(self.toolchain.path("kubectl")), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def controller_manager_user(self) -> str:
        """The user kube-controller-manager's controllers act as on this cluster.

        kwokctl's binary runtime runs kube-controller-manager with this cluster's admin kubeconfig and
        without --use-service-account-credentials, so the Deployment and ReplicaSet controllers create
        ReplicaSets and pods as the admin (its certificate's subject), not as
        system:serviceaccount:kube-system:deployment-controller or system:kube-controller-manager as
        on kubeadm clusters. The chart's ledger-client admission policy must list it
        (ledgerClient.creators.users) or no executor pod is ever made here.
        """
        return self.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()

    # -- state --------------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        """Process ids kwokctl recorded for this cluster's components."""
        found: dict[str, int] = {}
        pid_dir = self.cluster_dir / "pids"
        if pid_dir.is_dir():
            for pid_file in pid_dir.glob("*.pid"):
                with contextlib.suppress(ValueError, OSError):
                    found[pid_file.stem] = int(pid_file.read_text().strip())
        return found

    def status(self) -> ClusterStatus:
        processes = {name: process_running(pid) for name, pid in self.pids().items()}
        if not self.kubeconfig.is_file():
            return ClusterStatus(self.name, False, self.kubeconfig, processes=processes, problem="not created")
        try:
            ready = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        except (subprocess.TimeoutExpired, KeyError, FileNotFoundError, OSError) as exc:
            return ClusterStatus(self.name, False, self.kubeconfig, processes=processes, problem=str(exc))
        if ready.returncode != 0 or ready.stdout.strip() != "ok":
            problem = (ready.stderr or ready.stdout).strip().splitlines()[-1:] or ["not ready"]
            return ClusterStatus(self.name, False, self.kubeconfig, processes=processes, problem=problem[0])
        server = self.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}",
                              check=False).stdout.strip() or None
        version = _server_version(self)
        total, ready_nodes = _node_counts(self)
        dead = sorted(name for name, alive in processes.items() if not alive)
        return ClusterStatus(
            self.name, not dead, self.kubeconfig, server, version, processes, ready_nodes, total,
            problem=f"stopped: {', '.join(dead)}" if dead else None,
        )

    def is_running(self) -> bool:
        status = self.status()
        return status.running and status.nodes_ready >= 1

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self, progress: Progress = _silent, for_tests: bool = False) -> ClusterStatus:
        """Start the cluster, or confirm the one already up; returns its status.

        ``for_tests``: if this call creates the cluster, the last test session to finish stops
        it; a cluster that was already up (e.g. from ``xorj dev cluster up``) is left running.
        """
        started = time.monotonic()
        self.toolchain.build(progress=progress)
        with self._lock():
            status = self.status()
            wanted = str(self.toolchain.pins.kubernetes)
            if status.running and status.version != wanted:
                progress(f"cluster {self.name} runs {status.version}, the pins say {wanted}: recreating it")
                status = replace(status, running=False, problem=f"runs {status.version}, not {wanted}")
            if status.running:
                if status.nodes_total >= self.nodes and status.nodes_ready == status.nodes_total:
                    return status
                self._ensure_nodes(progress)
                self._wait_ready(progress, deadline=started + UP_TIMEOUT_SECONDS)
                return self.status()
            if self.cluster_dir.exists():
                progress(f"cluster {self.name} is not healthy ({status.problem}); recreating it")
                self._delete(progress)
            progress(f"starting cluster {self.name} (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
            self._create(progress)
            if for_tests:
                self._test_marker.write_text("started by a test session; the last session stops it\n")
            self._ensure_nodes(progress)
            self._wait_ready(progress, deadline=started + UP_TIMEOUT_SECONDS)
        status = self.status()
        progress(f"cluster {self.name} up in {time.monotonic() - started:.1f}s at {status.server}")
        log.info("cluster up", extra={"cluster": self.name, "seconds": round(time.monotonic() - started, 1)})
        return status

    def down(self, progress: Progress = _silent, force: bool = False) -> None:
        """Stop every process of the cluster and remove its state; a no-op when it is not there.

        Refuses while a test session holds the cluster (see :meth:`lease`) unless forced.
        """
        if not force and self.in_use_by_test_sessions():
            raise EnvironmentSetupError(
                f"cluster {self.name} is in use by a running test session; stop it first or use --force"
            )
        with self._lock():
            if not self.cluster_dir.exists():
                return
            progress(f"stopping cluster {self.name}")
            self._delete(progress)

    def _create(self, progress: Progress) -> None:
        tc = self.toolchain
        config = self.workdir / f"{self.name}.kwokctl.yaml"
        config.write_text(KWOKCTL_CONFIG)
        args = [
            "--config", str(config),
            "create", "cluster",
            "--runtime", "binary",
            "--kube-authorization",  # --authorization-mode=Node,RBAC
            "--kube-admission",  # default admission plugins (ServiceAccount, NamespaceLifecycle, ...)
            "--kubeconfig", "",  # leave the user's ~/.kube/config alone
            "--kube-apiserver-binary", str(tc.path("kube-apiserver")),
            "--kube-controller-manager-binary", str(tc.path("kube-controller-manager")),
            "--kube-scheduler-binary", str(tc.path("kube-scheduler")),
            "--kwok-controller-binary", str(tc.path("kwok")),
            "--etcd-binary", str(tc.path("etcd")),
            "--timeout", f"{int(UP_TIMEOUT_SECONDS)}s",
            "--wait", f"{int(UP_TIMEOUT_SECONDS)}s",
        ]
        result = self.kwokctl(*args, timeout=UP_TIMEOUT_SECONDS + 60)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-3000:]
            self._delete(_silent)  # do not leave half a cluster running
            raise EnvironmentSetupError(f"kwokctl could not create cluster {self.name}: {detail}")

    def _delete(self, progress: Progress) -> None:
        # A pid file can outlive its process (reboot) and the number be reused: only a process running
        # one of this cluster's binaries is ours. Decided before kwokctl signals them: an exiting
        # process's command line reads empty while it still runs its last moments.
        ours = {name: pid for name, pid in self.pids().items() if str(self.cluster_dir) in cmdline(pid)}
        if self.cluster_dir.exists():
            result = self.kwokctl("delete", "cluster", timeout=120)
            if result.returncode != 0:
                progress(f"kwokctl delete failed ({result.stderr.strip()[-300:]}); stopping processes directly")
        for name, pid in ours.items():
            # kwokctl only signals them: wait for each to be gone (SIGKILL after a grace period)
            if process_running(pid):
                progress(f"waiting for {name} (pid {pid}) to exit")
                terminate(pid, grace=10.0)
        if self.cluster_dir.exists():
            shutil.rmtree(self.cluster_dir, ignore_errors=True)

    def _ensure_nodes(self, progress: Progress) -> None:
        manifests = "---\n".join(node_manifest(f"kwok-node-{i}") for i in range(self.nodes))
        try:
            self.kubectl("apply", "-f", "-", input=manifests)
        except KubectlError as exc:
            raise EnvironmentSetupError(f"could not register the kwok nodes: {exc}") from exc

    def _wait_ready(self, progress: Progress, deadline: float) -> None:
        """Ready means: API ready, every node Ready, and the default ServiceAccount minted
        (which proves kube-controller-manager is running its controllers)."""
        waiting_for = ["the API server's /readyz", "kube-apiserver"]  # what, and the component to blame

        def ready() -> bool:
            status = self.status()
            if status.running and status.nodes_total >= self.nodes and status.nodes_ready == status.nodes_total:
                if self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0:
                    return True
                waiting_for[:] = ["the default ServiceAccount", "kube-controller-manager"]
            elif status.running:
                waiting_for[:] = [f"nodes ({status.nodes_ready}/{self.nodes} Ready)", "kwok-controller"]
            else:
                waiting_for[:] = [f"the API server ({status.problem})", "kube-apiserver"]
            return False

        def last_seen() -> str:
            return f"still waiting for {waiting_for[0]}" + describe_logs(
                [self.cluster_dir / "logs" / f"{waiting_for[1]}.log"])

        wait_until_ready(f"cluster {self.name}: API server ready, every node Ready and the default ServiceAccount "
                         "minted", ready, max(0.0, deadline - time.monotonic()), last_seen=last_seen)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialises up/down of one cluster across processes (parallel test sessions)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"{self.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def _test_marker(self) -> Path:
        return self.cluster_dir / "started-for-tests"

    def started_for_tests(self) -> bool:
        return self._test_marker.is_file()

    def in_use_by_test_sessions(self) -> bool:
        lease_path = self.workdir / f"{self.name}.lease"
        if not lease_path.exists():
            return False
        with open(lease_path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False

    @contextlib.contextmanager
    def lease(self) -> Iterator[Callable[[], bool]]:
        """A shared hold on the cluster for the life of a test session.

        Yields a function telling whether this holder is the only one left (and if so, keeping
        the others out until the lease ends), so no session stops the cluster under another.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"{self.name}.lease", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)

            def sole_holder() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            try:
                yield sole_holder
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _server_version(cluster: LocalCluster) -> str | None:
    result = cluster.kubectl("get", "--raw", "/version", check=False, timeout=10)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout).get("gitVersion")


def _node_counts(cluster: LocalCluster) -> tuple[int, int]:
    result = cluster.kubectl(
        "get", "nodes", "-o",
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
        check=False, timeout=10,
    )
    if result.returncode != 0:
        return 0, 0
    lines = [line for line in result.stdout.splitlines() if line is not None]
    return len(lines), sum(1 for line in lines if line.strip() == "True")


def format_status(status: ClusterStatus) -> Sequence[str]:
    lines = [f"cluster {status.name}: {'running' if status.running else 'not running'}"]
    if status.problem:
        lines.append(f"  problem: {status.problem}")
    if status.server:
        lines.append(f"  server: {status.server} ({status.version})")
    if status.processes:
        lines.append("  processes: " + ", ".join(
            f"{name} {'up' if alive else 'DOWN'}" for name, alive in sorted(status.processes.items())))
    if status.running:
        lines.append(f"  nodes: {status.nodes_ready}/{status.nodes_total} Ready")
    lines.append(f"  kubeconfig: {status.kubeconfig}")
    return lines
