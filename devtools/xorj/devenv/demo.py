"""The whole local environment in one command: `xorj dev up` / `xorj dev down`.

``up`` builds what is missing (the Kubernetes toolchain), starts the local cluster, a Postgres server
with the ledger's schema, the local chain and market, a real node (containerd, kubelet, kube-proxy and
kube-router, xorj.devenv.node) with the project's image built and loaded into it, installs the chart
whole, its operator Deployment included, so the operator runs as a pod on the real node from the chart's
own Deployment, RBAC and ledger Secret, as a user's ``helm install`` runs it; applies the example
TradingStrategy, whose executor Deployment runs as real pods from the image on the real node (tainted
for the product's pods alone), then a few CopyTrades, and waits until they are CONFIRMED. The pods reach
Postgres and the chain, which run on the host, through the node's relays; the chart's NetworkPolicies,
enforced by kube-router, allow exactly those addresses and ports. Pods name them as in a user's
cluster: Services ``xorj-ledger``, ``xorj-chain`` and ``xorj-swap-api`` in the demo's namespace,
resolved by the node's CoreDNS, whose EndpointSlices point at the relays.

``--operator process`` (``$XORJ_DEMO_OPERATOR=process``), the fallback, installs the chart without its
operator Deployment (``operator.enabled=false``) and runs ``xorj operator`` as a local process under the
chart's operator ServiceAccount (a token for it, so the chart's RBAC is still what it may do).

``$XORJ_DEMO_LEDGER=ha`` (``xorj dev up --ledger ha``) runs the chart's own HA ledger instead of the host
Postgres: Patroni's StatefulSet (``ledger.mode=ha``) on the real node. The operator pod uses it as a
user's install does (the chart's ledger Secret: its primary Service by name, ``verify-full`` against the
chart's CA); the processes on the host (the watcher, the chaos probes, a ``--operator process``
operator) reach it through a relay to its primary Service (xorj.devenv.ha_ledger). ``external-ha`` runs
the same Patroni ledger in its own namespace, outside the operator's release, which reaches it by the
chart's external-ledger values (``postgresql.enabled=false``, ``ledger.existingSecret``,
``ledger.caSecret``); its operator runs as a process (the ledger's NetworkPolicy admits the executors'
namespace only).

``$XORJ_DEMO_EXECUTORS=processes`` (``xorj dev up --executors processes``) runs no node: the
development pod runtime backs each executor pod on the kwok nodes with a local ``xorj executor``
process instead (for machines where a node cannot run: it needs root, network namespaces and cgroups),
and the operator runs as a local process (there is no node for its pod).

Every background process is started in its own session, recorded in ``demo.json`` under the state
directory (``$XORJ_DEMO_STATE_DIR`` or ``<cache>/demo``, never the work tree; logs in ``logs/`` and
``pod-runtime/pods/``) and stopped by ``down``, which also stops Postgres (removing the demo ledger:
the chain starts afresh with every ``up``) and the cluster if ``up`` started it (a cluster that was
already running, e.g. the tests', keeps running; only the demo's namespace is removed from it).
``up`` is idempotent: what already runs is kept. ``$XORJ_DEMO_NAMESPACE`` (default ``xorj``) and
``$XORJ_CLUSTER_NAME`` choose where it runs.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from xorj.devenv.files import write_private
from xorj.devenv.processes import cmdline, process_running, terminate
from xorj.devenv.repository import repository_root
from xorj.devenv.waiting import StartupTimeout, log_tail, wait_until_gone, wait_until_ready
from xorj.errors import EnvironmentSetupError

Progress = Callable[[str], None]

REPO = repository_root()
CHART = REPO / "charts" / "xorj-operator"
EXAMPLES = REPO / "examples"
NAMESPACE = "xorj"
RELEASE = "xorj"
OPERATOR_ACCOUNT = "xorj-operator"
EXECUTOR_ACCOUNT = "xorj-executor"
LEDGER_SECRET = "xorj-ledger"
# The executors' own ledger login, made by the operator (xorj.controller.ledger_logins)
EXECUTOR_LEDGER_SECRET = "xorj-ledger-executor"
LEDGER_DATABASE = "xorj"
VAULT_SECRET = "demo-vault"
FANOUT_VAULT_SECRET = "demo-fanout-vaults"  # the keys of the demo strategy's Vault resources (--vaults N)
STRATEGY = "demo"
COPYTRADES = 3
CONFIRM_TIMEOUT_SECONDS = 240.0
# Generous overall limits on start-up waits: each wait ends as soon as its readiness signal is there,
# and a machine busy with builds can take minutes where an idle one takes seconds.
CHAIN_START_SECONDS = 180.0  # until the chain writes chain.json (its RPC and swap API serve)
OPERATOR_START_SECONDS = 180.0  # until the operator's /healthz answers 200
POD_RUNTIME_START_SECONDS = 120.0  # until the pod runtime has made its first pass over the pods
EXECUTORS_READY_TIMEOUT_SECONDS = 300.0  # until every executor is Ready (a pod) or serves /healthz (a process)
HELM_SECONDS = 600.0  # `helm upgrade --install --wait`: its own --timeout; the process gets a minute more
# How long `down` waits for the namespace's pods and then the namespace to be gone, and `up` for a
# namespace still terminating (pods get their grace period, 60 s for executors, then the namespace
# controller removes the rest).
NAMESPACE_GONE_SECONDS = 300.0
# stop order for `down`: Prometheus and Alertmanager first (no alert about what `down` stops)
# the watcher before the leaders (no lead swap it would half-copy), both before the operator and chain
PROCESS_NAMES = ("prometheus", "alertmanager", "alert-receiver", "watcher", "leaders", "pod-runtime", "operator",
                 "chain")
EXECUTOR_MODES = ("pods", "processes")
MAX_DEMO_VAULTS = 64  # each is a funded chain vault and a key in every executor's signer
# pod: the chart's operator Deployment on the real node (needs executor pods: the node), the default
# wherever there is a node; process: the operator as a local process, the fallback and the only mode
# without a node (see default_operator_mode).
OPERATOR_MODES = ("pod", "process")
OPERATOR_DEPLOYMENT = f"{RELEASE}-operator"  # the chart's (xorj.fullname is the release "xorj")
OPERATOR_POD_SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
# The local Postgres server's CA, for the operator pod to verify the ledger (the chart's ledger.caSecret)
LEDGER_CA_SECRET = "xorj-ledger-ca"
LEDGER_CA_PATH = "/var/run/xorj/ledger/ca.crt"  # where the chart mounts it (xorj.ledgerCaPath)
# The copy loop (issue 14 section 5): simulated leaders, a TraderPool over them, a topN strategy
# following the pool's best with its own vault, and the watcher copying that leader's live swaps.
POOL = "demo-leaders"
TOP_N_STRATEGY = "follow-best"
FOLLOWER_VAULT_SECRET = "demo-follower-vault"
LEADERS_HISTORY_DAYS = 92  # the Trust Score needs 90 days of history (xorj.domain.scoring.MIN_HISTORY_DAYS)
LEADERS_HISTORY_TICKS = 200  # enough trades for the steady leader to be eligible (MIN_TRADES)
LEADERS_RATE_PER_MINUTE = 6.0  # live ticks: a lead swap every ~10 s, something to copy soon
LEADERS_RUN_SECONDS = 7 * 86_400  # live until `down`
LEADERS_HISTORY_SECONDS = 600.0  # until the backdated history is on chain
POOL_RANKED_SECONDS = 180.0  # until the operator has ranked the pool
LOOP_CONFIRM_TIMEOUT_SECONDS = 300.0  # until a watcher-made CopyTrade of the topN strategy is CONFIRMED
WATCHER_START_SECONDS = 120.0
WATCHER_SOURCE_LABEL = "trading.xorj.io/source=watcher"
LOOP_VIEW = ("traderpools,tradingstrategies,copytrades",)
# The host services as pods name them (role -> Service name, port, port name): Services without a
# selector in the demo's namespace, each with one EndpointSlice at the node's relay of the host port.
# kube-proxy forwards the Service's address to the relay (DNAT) before NetworkPolicy is checked, so the
# chart's ipBlock rules name the relay's address and port, never the Service's.
HOST_SERVICES: dict[str, tuple[str, int, str]] = {
    "ledger": ("xorj-ledger", 5432, "postgres"),
    "rpc": ("xorj-chain", 8899, "http"),
    "swapApi": ("xorj-swap-api", 8080, "http"),
}
HOST_SERVICE_MANAGER = "xorj-dev-up"  # the EndpointSlices' endpointslice.kubernetes.io/managed-by
# The real node is for executors, which hold vault keys: other pods stay off it.
EXECUTOR_NODE_TAINT = {"key": "xorj.dev/executors", "value": "true", "effect": "NoSchedule"}


def _silent(_: str) -> None:
    return None


def default_operator_mode(executors: str, ledger: str | None = None) -> str:
    """Where the operator runs unless told: as the chart's pod wherever executors run as pods (there is
    a node for it), as a local process otherwise, and with an external HA ledger (whose NetworkPolicy
    admits the executors' namespace only)."""
    return "pod" if executors == "pods" and ledger != "external-ha" else "process"


def state_root() -> Path:
    configured = os.environ.get("XORJ_DEMO_STATE_DIR")
    if configured:
        return Path(configured).expanduser()
    from xorj.devenv.toolchain import cache_root

    return cache_root() / "demo"


# How many objects one `kubectl patch` releases (`down`)
FINALIZER_PATCH_BATCH = 200


@dataclass
class ChainInfo:
    """What the local chain tells its clients: endpoints, seeded mints and a funded vault."""

    rpc_url: str
    swap_api_url: str
    input_mint: str
    output_mint: str
    vault_public_key: str
    vault_keypair: bytes = dataclasses.field(repr=False)  # the JSON keypair file's content; never printed
    # a second funded vault, the topN strategy's (a vault is one strategy's); None on an older chain
    follower_vault_public_key: str | None = None
    follower_vault_keypair: bytes | None = dataclasses.field(default=None, repr=False)
    # the rest of the chain's funded vaults (public key, keypair file content): the demo strategy's
    # fan-out vaults under `xorj dev up --vaults N`
    fanout_vaults: tuple[tuple[str, bytes], ...] = dataclasses.field(default=(), repr=False)


class DemoState:
    """demo.json: the processes `up` started and the facts `down` and the user need."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "demo.json"

    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"processes": {}}

    def save(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.path)


# -- processes --------------------------------------------------------------------------------------

def process_alive(record: dict[str, Any] | None) -> bool:
    """Whether the recorded process still runs (and is ours: its command line still matches)."""
    if not record:
        return False
    command = cmdline(int(record["pid"]))
    return bool(command) and record["marker"] in command and "<defunct>" not in command


def _running(record: dict[str, Any] | None) -> bool:
    """The recorded process runs (not exited, not a zombie), whatever its command line reads: right
    after the start, until the forked child has exec'd its program, its command line is still ours
    (`xorj dev up`), and :func:`process_alive` would call it gone."""
    return bool(record) and process_running(int(record["pid"]))


def start_process(name: str, argv: list[str], env: dict[str, str], log_path: Path, marker: str) -> dict[str, Any]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=log_path.parent)
    return {"pid": process.pid, "marker": marker, "log": str(log_path), "name": name}


def stop_process(record: dict[str, Any], grace: float = 40.0) -> None:
    """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
    terminate(int(record["pid"]), grace=grace, group=True, running=lambda: process_alive(record), poll=0.2)


def xorj_program() -> str:
    installed = Path(sys.executable).parent / "xorj"
    return str(installed) if installed.exists() else shutil.which("xorj") or "xorj"


# -- the chain ----------------------------------------------------------------------------------------

def read_chain_info(state_dir: Path) -> ChainInfo | None:
    """The local chain's ``chain.json`` (written by ``xorj dev chain serve --state-dir``), or None."""
    path = state_dir / "chain.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    try:
        mints = data["mints"]
        vaults = list(data["vaults"].items())
        public_key, keypair_path = vaults[0]
        follower = vaults[1] if len(vaults) > 1 else None
        return ChainInfo(
            rpc_url=data["rpc_url"].rstrip("/"),
            swap_api_url=data["swap_api_url"].rstrip("/"),
            # the vaults are funded with USDC: the demo's copy trades buy SOL with it
            input_mint=_mint_address(mints["USDC"]),
            output_mint=_mint_address(mints["SOL"]),
            vault_public_key=public_key,
            vault_keypair=Path(keypair_path).read_bytes(),
            follower_vault_public_key=follower[0] if follower else None,
            follower_vault_keypair=Path(follower[1]).read_bytes() if follower else None,
            fanout_vaults=tuple((key, Path(path).read_bytes()) for key, path in vaults[2:]),
        )
    except (KeyError, IndexError, TypeError, OSError) as exc:
        raise EnvironmentSetupError(f"{path} lacks what the demo needs (rpc_url, swap_api_url, mints USDC and "
                                    f"SOL, a vault keypair): {exc!r}") from exc


def _mint_address(entry: Any) -> str:
    return entry if isinstance(entry, str) else entry["address"]


# -- the demo -----------------------------------------------------------------------------------------

def rehost(url: str, address: str) -> str:
    """``url`` (an HTTP URL or a postgresql:// DSN) with its host:port replaced by ``address``."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{address}" if userinfo else address))


def url_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.port is None:
        raise EnvironmentSetupError(f"{url}: the demo needs an explicit port to relay it to the node")
    return parts.port


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def service_url(role: str, url: str) -> str:
    """``url`` pointed at the host service's Service name and port (see HOST_SERVICES)."""
    name, port, _ = HOST_SERVICES[role]
    return rehost(url, f"{name}:{port}")


def host_service_manifests(namespace: str, relays: Mapping[str, str]) -> list[dict[str, Any]]:
    """A Service without a selector and its one EndpointSlice, at the relay's ``ip:port``, for each
    role in ``relays`` (ledger, rpc, swapApi): what pods resolve and connect to by name."""
    documents: list[dict[str, Any]] = []
    for role, address in relays.items():
        name, port, port_name = HOST_SERVICES[role]
        ip, relay_port = split_address(address)
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": HOST_SERVICE_MANAGER}
        documents.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"type": "ClusterIP",
                     "ports": [{"name": port_name, "protocol": "TCP", "port": port, "targetPort": relay_port}]}})
        documents.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-relay", "namespace": namespace,
                         "labels": {**labels, "kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": HOST_SERVICE_MANAGER}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "protocol": "TCP", "port": relay_port}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}]})
    return documents


@dataclass(frozen=True)
class PodEndpoints:
    """The host's services as the executor pods on the real node reach them (through its relays)."""

    dsn: str | None  # None: the ledger is the chart's own (ledger.mode=ha), not a host service
    chain: ChainInfo
    # The address the host's Prometheus scrapes executor pods from (the host end of the node's veth).
    # In a cluster the scraper is a pod in the `monitoring` namespace, which the chart admits by default;
    # here it is a host process, so the demo admits exactly its address instead. None: no real node.
    scraper_ip: str | None = None
    # When ``dsn`` and ``chain`` name Services (HOST_SERVICES): the relay each one forwards to, by role
    # (ledger, rpc, swapApi), "ip:port". The NetworkPolicies name these, where the packets go.
    relays: Mapping[str, str] | None = None

    def _address(self, role: str, url: str) -> tuple[str, int]:
        if self.relays:
            return split_address(self.relays[role])
        return str(urlsplit(url).hostname), url_port(url)

    def chart_values(self) -> list[str]:
        """--set values that open the chart's executor NetworkPolicy to exactly these endpoints (and
        its metrics port to exactly the host's scraper)."""
        rpc_ip, rpc_port = self._address("rpc", self.chain.rpc_url)
        swap_ip, swap_port = self._address("swapApi", self.chain.swap_api_url)
        values: list[str] = []
        if self.dsn is not None:  # a host ledger; the chart's own (ledger.mode=ha) opens its own policy
            ledger_ip, ledger_port = self._address("ledger", self.dsn)
            values += ["--set", f"ledger.cidrs={{{ledger_ip}/32}}", "--set", f"ledger.port={ledger_port}"]
        values += ["--set", f"networkPolicy.rpc.cidrs={{{rpc_ip}/32}}",
                   "--set", f"networkPolicy.rpc.ports={{{rpc_port}}}",
                   "--set", f"networkPolicy.swapApi.cidrs={{{swap_ip}/32}}",
                   "--set", f"networkPolicy.swapApi.ports={{{swap_port}}}"]
        if self.scraper_ip:
            values += ["--set", f"networkPolicy.metricsFrom[0].ipBlock.cidr={self.scraper_ip}/32"]
        return values


def operator_pod_values(*, image: str, api_host: str, api_port: int, reconcile_rpc_url: str, cash_mint: str,
                        node_selector: Mapping[str, str], ledger_ca_secret: str | None) -> list[str]:
    """--set values that run the chart's own operator Deployment on the real node (as `helm install`
    does), with what the host-process operator gets by environment (see Demo._operator): the image
    loaded into the node, the real node for it and the executors (the only node that runs containers),
    the chain reconciler on the chain's Service, the external ledger's CA Secret (``ledger_ca_secret``;
    None: the chart's own ledger, whose CA the chart mounts), and the API server at its address on the
    node, the one its certificate names (the `kubernetes` Service's IP it does not)."""
    repository, _, tag = image.rpartition(":")
    tolerations = [{**EXECUTOR_NODE_TAINT, "operator": "Equal"}]
    extra_env = [{"name": "KUBERNETES_SERVICE_HOST", "value": api_host},
                 {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
                 # the local market's USDC is the leaders' cash: TraderPools realize their trades against it
                 {"name": "XORJ_OPERATOR_TRADER_CASH_MINTS", "value": json.dumps([cash_mint])}]
    return ["--set", "operator.enabled=true",
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
            "--set-json", f"operator.nodeSelector={json.dumps(dict(node_selector))}",
            "--set-json", f"operator.tolerations={json.dumps(tolerations)}",
            "--set-json", f"executor.nodeSelector={json.dumps(dict(node_selector))}",
            "--set-json", f"executor.tolerations={json.dumps(tolerations)}",
            "--set-json", f"operator.extraEnv={json.dumps(extra_env)}",
            "--set", f"operator.reconcile.rpcUrl={reconcile_rpc_url}", "--set", "operator.reconcile.intervalSeconds=15",
            *(["--set", f"ledger.caSecret={ledger_ca_secret}"] if ledger_ca_secret else []),
            "--set", f"networkPolicy.apiServer.cidrs={{{api_host}/32}}",
            "--set", f"networkPolicy.apiServer.ports={{{api_port}}}"]


def operator_pod_dsn(pod_dsn: str) -> str:
    """The ledger DSN the operator pod reads from the chart's ledger Secret: the ledger's Service, its
    certificate checked against the mounted CA (verify-ca: the certificate names the host, not the
    Service), as the executors' DSNs the operator derives from it."""
    separator = "&" if "?" in pod_dsn else "?"
    return f"{pod_dsn}{separator}sslmode=verify-ca&sslrootcert={LEDGER_CA_PATH}"


class Demo:
    def __init__(self, root: Path | None = None, progress: Progress = _silent, namespace: str | None = None,
                 executors: str | None = None, loop: bool | None = None, vaults: int | None = None,
                 operator: str | None = None, ledger: str | None = None) -> None:
        self.root = root or state_root()
        self.namespace = namespace or os.environ.get("XORJ_DEMO_NAMESPACE", NAMESPACE)
        self.executors = executors or os.environ.get("XORJ_DEMO_EXECUTORS") or "pods"
        if self.executors not in EXECUTOR_MODES:
            raise EnvironmentSetupError(f"executors: {self.executors!r} is not one of {', '.join(EXECUTOR_MODES)}")
        requested_ledger = ledger or os.environ.get("XORJ_DEMO_LEDGER")
        self.operator = (operator or os.environ.get("XORJ_DEMO_OPERATOR")
                         or default_operator_mode(self.executors, requested_ledger))
        if self.operator not in OPERATOR_MODES:
            raise EnvironmentSetupError(f"operator: {self.operator!r} is not one of {', '.join(OPERATOR_MODES)}")
        if self.operator == "pod" and self.executors != "pods":
            raise EnvironmentSetupError("operator: pod needs the real node (executors: pods); with executor "
                                        "processes the operator runs as a process")
        from xorj.devenv.ha_ledger import HA_MODES, LEDGER_MODES

        self.ledger = requested_ledger or "single"
        if self.ledger not in LEDGER_MODES:
            raise EnvironmentSetupError(f"ledger: {self.ledger!r} is not one of {', '.join(LEDGER_MODES)}")
        if self.ledger in HA_MODES and self.executors != "pods":
            raise EnvironmentSetupError(f"ledger: {self.ledger} runs the chart's Patroni StatefulSet on the real node; "
                                        "it needs executors: pods")
        if self.ledger == "external-ha" and self.operator == "pod":
            raise EnvironmentSetupError("ledger: external-ha runs with the operator as a process (operator: pod "
                                        "would need the external ledger's NetworkPolicy to admit the operator's "
                                        "pod; not yet)")
        # the copy loop (leaders, pool, topN strategy, watcher), the product's defining job: on unless
        # `--no-loop` or $XORJ_DEMO_LOOP=0 (the chaos runs turn it off: its leaders and copies would
        # add trades and price moves of their own to every experiment's load).
        self.loop = loop if loop is not None else os.environ.get("XORJ_DEMO_LOOP", "1") not in ("0", "false", "no")
        # the demo strategy's follower vaults: its own plus (vaults - 1) Vault resources, so each
        # CopyTrade fans out into one trade per vault (the chaos runs use it to prove exactly-once per vault)
        self.vaults = vaults if vaults is not None else int(os.environ.get("XORJ_DEMO_VAULTS", "1"))
        if not 1 <= self.vaults <= MAX_DEMO_VAULTS:
            raise EnvironmentSetupError(f"vaults: {self.vaults} is not between 1 and {MAX_DEMO_VAULTS}")
        if self.vaults > 1 and self.executors != "pods":
            # the vaults' keys reach the executors in a projected volume, which the process runtime lacks
            raise EnvironmentSetupError(f"vaults: {self.vaults} needs --executors pods (the process runtime "
                                        "mounts no projected volume)")
        self.state = DemoState(self.root)
        self.say = progress
        from xorj.devenv.cluster import LocalCluster
        from xorj.devenv.toolchain import Toolchain

        self.toolchain = Toolchain()
        self.cluster = LocalCluster()

    # -- up ---------------------------------------------------------------------------------------

    def up(self) -> str:
        """Bring everything up and return the `kubectl get copytrades` view once all are CONFIRMED."""
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.state.load()
        data.setdefault("processes", {})

        self.say("1/10 toolchain: building what is missing (a first build takes tens of minutes)")
        self.toolchain.build(progress=lambda m: self.say(f"    {m}"))
        self.say("2/10 cluster: starting the local Kubernetes cluster")
        if not data.get("cluster_started_by_demo") and not self.cluster.is_running():
            data["cluster_started_by_demo"] = True  # so `down` stops it, and only then
        self.cluster.up(progress=lambda m: self.say(f"    {m}"))
        data["kubeconfig"] = str(self.cluster.kubeconfig)
        self.state.save(data)

        data["ledger_mode"] = self.ledger
        dsn: str | None = None
        if self.ledger == "ha":
            self.say("3/10 ledger: the chart's Patroni StatefulSet (ledger.mode=ha), installed with the chart")
        elif self.ledger == "external-ha":
            self.say("3/10 ledger: the chart's Patroni ledger alone in its own namespace, after the node")
        else:
            self.say("3/10 ledger: starting Postgres and migrating the schema")
            dsn = self._postgres(data)
        self.say("4/10 chain: starting the local Solana chain and market")
        chain = self._chain(data)
        endpoints = None
        if self.executors == "pods":
            self.say("5/10 node: a real node (containerd, kubelet, kube-proxy, kube-router) and the project's image")
            endpoints = self._real_node(data, dsn, chain)
        else:
            self.say("5/10 node: none (executors run as local processes)")
        # Executor processes (no node) reach the same host addresses; the chart has no open default.
        opened = endpoints or PodEndpoints(dsn, chain)
        if endpoints and endpoints.relays:
            # before the chart: the operator pod reaches the ledger by its Service from its start
            self._apply_host_services(endpoints.relays)
        data["operator_mode"] = self.operator
        data["executor_mode"] = self.executors  # what a later restart of a process operator needs
        self.state.save(data)
        if self.operator == "pod":
            assert endpoints is not None  # checked in __init__: a pod operator needs the real node
            self.say("6/10 chart: installing it whole, the operator Deployment included (helm)")
            if self.ledger == "ha":
                # the chart's own ledger and its own ledger Secret, as a user's install: only the host's
                # processes need the relay and the DSN through it
                self._install_chart(None, chain, [*opened.chart_values(), *self._ha_chart_values(),
                                                  *self._operator_pod_values(data, endpoints)])
                dsn, _ = self._ha_ledger(data)
            else:
                assert endpoints.dsn is not None  # a host ledger, relayed to the node
                self._install_chart(operator_pod_dsn(endpoints.dsn), chain,
                                    [*opened.chart_values(), *self._operator_pod_values(data, endpoints)])
            self.say("7/10 operator: the chart's Deployment, a pod on the real node")
            self.wait_operator_pod()
        else:
            self.say("6/10 chart: installing CRDs, ServiceAccounts, RBAC and NetworkPolicies (helm)")
            if self.ledger == "ha":
                self._install_chart(None, chain, [*opened.chart_values(), *self._ha_chart_values()])
                dsn, executor_dsn = self._ha_ledger(data)
            elif self.ledger == "external-ha":
                dsn, executor_dsn = self._external_ha_ledger(data, chain, opened)
            else:
                assert dsn is not None and opened.dsn is not None
                self._install_chart(opened.dsn, chain, opened.chart_values())
                executor_dsn = self._executor_ledger_dsn(data, endpoints.dsn if endpoints and endpoints.dsn else dsn,
                                                         relayed=endpoints is not None)
            self.say("7/10 operator: running `xorj operator` as the chart's ServiceAccount")
            self._operator(data, dsn, executor_dsn)
        if endpoints:
            self.say("8/10 executors: the example TradingStrategy; its executor pods run on the real node")
            strategy = self._apply_strategy(endpoints.chain)
            self._wait_executor_pods(strategy)
        else:
            self.say("8/10 executors: the example TradingStrategy; the pod runtime runs one `xorj executor` per pod")
            self._pod_runtime(data)
            strategy = self._apply_strategy(chain)
            self._wait_executor_processes(strategy)
        if chain.fanout_vaults[:self.vaults - 1]:
            self._register_fanout_vaults(strategy, chain)  # returns once the rolled pods are available
        self.say("9/10 monitoring: Prometheus (the chart's ServiceMonitors and rules), Alertmanager, a receiver")
        self._monitoring(data, chain)
        self.say("10/10 trades: applying CopyTrades")
        names = self._apply_copytrades(strategy, chain)
        self._wait_confirmed(names)
        view_kinds = "copytrades"
        if self.loop:
            self.copy_loop(data, dsn, chain, endpoints.chain if endpoints else None)
            view_kinds = LOOP_VIEW[0]
        self.refresh_monitoring_targets()  # executors may have been restarted meanwhile
        view = self.kubectl("get", view_kinds, "-n", self.namespace).stdout
        self.say(f"demo up in {time.monotonic() - started:.0f}s")
        return view

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, input=input, check=check)

    def kubectl_hint(self) -> str:
        kinds = LOOP_VIEW[0] if self.loop else "copytrades"
        return f"{self.toolchain.path('kubectl')} --kubeconfig {self.cluster.kubeconfig} -n {self.namespace} get {kinds}"

    # -- the copy loop ------------------------------------------------------------------------------

    def copy_loop(self, data: dict[str, Any], dsn: str, chain: ChainInfo, pod_chain: ChainInfo | None) -> str:
        """Leaders -> TraderPool -> topN strategy -> watcher -> CONFIRMED CopyTrade. ``pod_chain``: the
        chain as executor pods reach it (None: executors are local processes). Returns the name of the
        first CONFIRMED CopyTrade the watcher made for the topN strategy."""
        if not chain.follower_vault_public_key or not chain.follower_vault_keypair:
            raise EnvironmentSetupError("the local chain has one vault; the copy loop's strategy needs its own: "
                                        "`xorj dev down` and `xorj dev up` start a chain with two")
        self.say("loop 1/5 leaders: simulated steady, careful and reckless traders (backdated history, then live)")
        wallets = self._leaders(data, chain)
        self.say("loop 2/5 pool: backfilling their history into the ledger; a TraderPool ranks them")
        self._backfill_leaders(dsn, chain, wallets)
        top = self._apply_pool(wallets)
        self.say(f"loop 3/5 strategy: {TOP_N_STRATEGY} follows the pool's best ({top}) with its own vault")
        strategy = self._apply_top_n_strategy(pod_chain or chain)
        if pod_chain is not None:
            self._wait_executor_pods(strategy)
        else:
            self._wait_executor_processes(strategy)
        self.say("loop 4/5 watcher: `xorj watcher` follows the leaders the strategies follow")
        self._watcher(data, dsn, chain)
        self.say(f"loop 5/5 copies: waiting for a CopyTrade the watcher made for {TOP_N_STRATEGY} to be CONFIRMED")
        confirmed = self._wait_loop_confirmed()
        self.say(f"    {confirmed} CONFIRMED; look at: kubectl get {LOOP_VIEW[0]} -n {self.namespace}")
        return confirmed

    def _leaders(self, data: dict[str, Any], chain: ChainInfo) -> list[str]:
        """Start `xorj dev leaders run` (kept if running) and wait until its backdated history is on
        chain. Its keys live under the state directory; only public keys are returned."""
        from xorj.devenv.leaders import leader_wallets

        state_dir = self.root / "leaders"
        wallets = [w.pubkey for w in leader_wallets(state_dir)]  # made here, so known before the run
        log_path = self.root / "logs" / "leaders.log"
        record = data["processes"].get("leaders")
        if not process_alive(record):
            with contextlib.suppress(FileNotFoundError):
                log_path.unlink()  # "history done" must be this run's
            argv = [xorj_program(), "dev", "leaders", "run", "--rpc-url", chain.rpc_url,
                    "--state-dir", str(state_dir), "--history-days", str(LEADERS_HISTORY_DAYS),
                    "--history-ticks", str(LEADERS_HISTORY_TICKS), "--rate", str(LEADERS_RATE_PER_MINUTE),
                    "--duration", str(LEADERS_RUN_SECONDS)]
            record = start_process("leaders", argv, dict(os.environ), log_path, marker=str(state_dir))
            record["wallets"] = wallets
            data["processes"]["leaders"] = record
            self.state.save(data)

        def history_done() -> bool:
            return log_path.is_file() and "history done" in log_path.read_text(errors="replace")

        wait_until_ready("the leaders' backdated history on chain (`history done` in their log)", history_done,
                         LEADERS_HISTORY_SECONDS, alive=lambda: _running(record), logs=[str(log_path)])
        self.say(f"    leaders {', '.join(wallets)} (pid {record['pid']}, log {log_path})")
        return wallets

    def _backfill_leaders(self, dsn: str, chain: ChainInfo, wallets: list[str]) -> None:
        """`xorj traders backfill` into the ledger: the history the TraderPool ranks."""
        from xorj.chain.prices import price_api_url_for

        argv = [xorj_program(), "traders", "backfill", *wallets, "--rpc-url", chain.rpc_url,
                "--price-url", price_api_url_for(chain.swap_api_url), "--cash-mint", chain.input_mint, "--quiet"]
        try:
            result = subprocess.run(argv, env={**os.environ, "XORJ_LEDGER_DSN": dsn}, capture_output=True,
                                    text=True, timeout=LEADERS_HISTORY_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentSetupError(f"xorj traders backfill: not done after {LEADERS_HISTORY_SECONDS:.0f}s") from exc
        if result.returncode != 0:
            raise EnvironmentSetupError(f"xorj traders backfill failed: {result.stderr.strip()[-2000:]}")
        rows = max(0, len(result.stdout.splitlines()) - 1)  # the CSV's header
        self.say(f"    {rows} realized trades of {len(wallets)} leaders in the ledger")

    def _apply_pool(self, wallets: list[str]) -> str:
        """The TraderPool over the leaders; waits until the operator has ranked it, returns rank 1."""
        from xorj.controller.models import TraderPool

        pool = {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TraderPool",
                "metadata": {"name": POOL, "namespace": self.namespace},
                "spec": {"wallets": wallets, "window": {"days": 90, "endsAt": "Now"}, "normalization": "fixed"}}
        TraderPool.model_validate(pool)
        self.kubectl("apply", "-f", "-", input=json.dumps(pool))

        def ranked() -> str | None:
            out = self.kubectl("get", "traderpool", POOL, "-n", self.namespace, "-o", "json").stdout
            return (json.loads(out).get("status") or {}).get("topTrader")

        def last_seen() -> str:
            return self.kubectl("get", "traderpool", POOL, "-n", self.namespace, "-o", "jsonpath={.status}",
                                check=False).stdout[:2000]

        operator = self.state.load()["processes"].get("operator") if self.operator == "process" else None
        top = wait_until_ready(f"TraderPool {POOL} ranked by the operator", ranked, POOL_RANKED_SECONDS,
                               last_seen=lambda: f"{last_seen()}{self.operator_pod_logs()}",
                               logs=[operator["log"]] if operator else [])
        self.say(f"    TraderPool {POOL}: rank 1 is {top}")
        return top

    def _apply_top_n_strategy(self, chain: ChainInfo) -> dict[str, Any]:
        """A `topN: 1` strategy following the pool, shaped like the example, on the second vault."""
        from xorj.controller.guard import SECRET_BINDING_ANNOTATION
        from xorj.controller.models import TradingStrategy

        self._apply_secret(FOLLOWER_VAULT_SECRET, {"keypair.json": chain.follower_vault_keypair or b""},
                           annotations={SECRET_BINDING_ANNOTATION: TOP_N_STRATEGY})
        strategy = top_n_strategy(example_strategy(), self.namespace, chain)
        TradingStrategy.model_validate(strategy)
        self.kubectl("apply", "-f", "-", input=json.dumps(strategy))
        self.say(f"    TradingStrategy {TOP_N_STRATEGY} (topN 1 of pool {POOL}, vault {chain.follower_vault_public_key})")
        return strategy

    def _watcher(self, data: dict[str, Any], dsn: str, chain: ChainInfo) -> None:
        """`xorj watcher` as a local process (kept if running), polling the local chain for the
        followed leaders' swaps; its metrics and health on a free port."""
        from xorj.chain.prices import price_api_url_for
        from xorj.devenv.postgres import free_port

        record = data["processes"].get("watcher")
        if process_alive(record):
            self.say("    already running")
            return
        port = free_port()
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig), "XORJ_LEDGER_DSN": dsn,
               "XORJ_RPC_URL": chain.rpc_url, "XORJ_PRICE_API_URL": price_api_url_for(chain.swap_api_url),
               "XORJ_WATCHER_HTTP_HOST": "127.0.0.1", "XORJ_WATCHER_HTTP_PORT": str(port),
               "XORJ_WATCHER_NAMESPACES": json.dumps([self.namespace]),
               "XORJ_WATCHER_POLL_INTERVAL_SECONDS": "0.5", "XORJ_WATCHER_FOLLOW_REFRESH_SECONDS": "2",
               "XORJ_WATCHER_PROJECT_SECONDS": "1", "XORJ_WATCHER_CASH_MINTS": json.dumps([chain.input_mint])}
        record = start_process("watcher", [xorj_program(), "watcher"], env, self.root / "logs" / "watcher.log",
                               marker="watcher")
        record["port"] = port
        data["processes"]["watcher"] = record
        self.state.save(data)
        wait_until_ready(f"the watcher's /healthz on 127.0.0.1:{port}", lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"),
                         WATCHER_START_SECONDS, alive=lambda: _running(record), logs=[record["log"]])
        self.say(f"    watcher pid {record['pid']}, metrics http://127.0.0.1:{port}/metrics")

    def _wait_loop_confirmed(self) -> str:
        last = ""

        def confirmed() -> str | None:
            nonlocal last
            out = self.kubectl("get", "copytrades", "-n", self.namespace, "-l", WATCHER_SOURCE_LABEL,
                               "-o", "json").stdout
            mine = [i for i in json.loads(out)["items"] if i["spec"].get("strategy") == TOP_N_STRATEGY]
            phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") or "-" for i in mine}
            line = ", ".join(f"{n} {p}" for n, p in sorted(phases.items()))
            if line != last:
                self.say(f"    {line}")
                last = line
            return next((n for n, p in sorted(phases.items()) if p == "CONFIRMED"), None)

        watcher = self.state.load()["processes"].get("watcher")
        return wait_until_ready(f"a CopyTrade the watcher made for {TOP_N_STRATEGY}, CONFIRMED", confirmed,
                                LOOP_CONFIRM_TIMEOUT_SECONDS, last_seen=lambda: last or "no watcher CopyTrades yet",
                                logs=[watcher["log"]] if watcher else [])

    def _postgres(self, data: dict[str, Any]) -> str:
        from xorj.devenv.postgres import PostgresServer, service_user_can_write
        from xorj.ledger.migrate import migrate

        pg_root = Path(data.get("postgres_root") or "")
        if not data.get("postgres_root"):
            pg_root = self.root / "postgres"
            self.root.mkdir(parents=True, exist_ok=True)
            if not service_user_can_write(self.root):
                # Postgres runs as its own system user, who cannot enter /root: keep its data in /var/tmp
                base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
                digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:8]
                pg_root = base / f"xorj-demo-postgres-{digest}"
            pg_root.mkdir(parents=True, exist_ok=True)
            from xorj.devenv import postgres as pg

            pg._chown_to_service_user(pg_root)
            data["postgres_root"] = str(pg_root)
        server = PostgresServer(pg_root / "data", data.get("postgres_port"), log_path=pg_root / "postgres.log")
        if not server.is_running():
            server.start()
        data["postgres_port"] = server.port
        self.state.save(data)
        server.create_database(LEDGER_DATABASE, exist_ok=True)
        dsn = server.dsn_for(LEDGER_DATABASE)
        migrate(dsn)
        self.say(f"    ledger at 127.0.0.1:{server.port}/{LEDGER_DATABASE}")
        return dsn

    def _chain(self, data: dict[str, Any]) -> ChainInfo:
        chain_dir = self.root / "chain"
        record = data["processes"].get("chain")
        if not process_alive(record):
            chain_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                (chain_dir / "chain.json").unlink()
            argv = [xorj_program(), "dev", "chain", "serve", "--state-dir", str(chain_dir),
                    # the strategy's own, the topN follower's, then the fan-out vaults
                    "--vaults", str(self.vaults + 1)]
            record = start_process("chain", argv, dict(os.environ), self.root / "logs" / "chain.log",
                                   marker=str(chain_dir))
            data["processes"]["chain"] = record
            self.state.save(data)
        info = wait_until_ready(f"the local chain writing {chain_dir / 'chain.json'} (once its RPC and swap API "
                                "serve)", lambda: read_chain_info(chain_dir), CHAIN_START_SECONDS,
                                alive=lambda: _running(record), logs=[record["log"]])
        self.say(f"    RPC {info.rpc_url}, swap API {info.swap_api_url}")
        return info

    def _helm(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(self.toolchain.path("helm")), "--kubeconfig", str(self.cluster.kubeconfig), *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=HELM_SECONDS + 60, input=input)
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentSetupError(f"helm {args[0]}: not done after {HELM_SECONDS + 60:.0f}s") from exc
        if result.returncode != 0:
            raise EnvironmentSetupError(f"helm {args[0]} failed: {result.stderr.strip()}")
        return result

    def _real_node(self, data: dict[str, Any], dsn: str | None, chain: ChainInfo) -> PodEndpoints:
        """Start the node (kept if running), load the image(s), relay Postgres (unless the ledger is the
        chart's, ``dsn`` None) and the chain to pods."""
        from xorj.devenv.image import ImageBuilder

        node = self._local_node()
        if not node.status().running and not data.get("node_started_by_demo"):
            data["node_started_by_demo"] = True  # so `down` removes it, and only then
            self.state.save(data)
        node.up(progress=lambda m: self.say(f"    {m}"))
        built = ImageBuilder().build_project(progress=lambda m: self.say(f"    {m}"))
        node.load_image(built.archive)
        data["image"] = built.reference
        self.state.save(data)
        self.say(f"    image {built.reference} loaded ({'cached' if built.cached else f'built in {built.seconds:.0f}s'})")
        if self.ledger != "single":  # ha, external-ha: Patroni's members run on the node
            patroni = ImageBuilder().build_patroni(progress=lambda m: self.say(f"    {m}"))
            node.load_image(patroni.archive)
            self.say(f"    image {patroni.reference} loaded "
                     f"({'cached' if patroni.cached else f'built in {patroni.seconds:.0f}s'})")
        ports = {"rpc": url_port(chain.rpc_url), "swapApi": url_port(chain.swap_api_url)}
        if dsn is not None:  # a host ledger (with ledger.mode=ha the pods reach the chart's primary Service)
            ports["ledger"] = url_port(dsn)
        relays = {role: node.expose_host_port(port) for role, port in ports.items()}
        pod_chain = dataclasses.replace(chain, rpc_url=service_url("rpc", chain.rpc_url),
                                        swap_api_url=service_url("swapApi", chain.swap_api_url))
        pod_dsn = service_url("ledger", dsn) if dsn is not None else None
        ledger_at = urlsplit(pod_dsn).netloc.rpartition('@')[2] if pod_dsn else "the chart's primary Service"
        self.say(f"    pods reach the ledger at {ledger_at}, RPC {pod_chain.rpc_url}, "
                 f"swap API {pod_chain.swap_api_url} (Services on the relays {', '.join(sorted(relays.values()))})")
        return PodEndpoints(pod_dsn, pod_chain, scraper_ip=node.layout().link_ip, relays=relays)

    def _apply_host_services(self, relays: Mapping[str, str]) -> None:
        """The host services by name in the demo's namespace (see HOST_SERVICES)."""
        self._wait_namespace_not_terminating()
        self.kubectl("create", "namespace", self.namespace, check=False)
        manifests = host_service_manifests(self.namespace, relays)
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        self.say(f"    Services {', '.join(m['metadata']['name'] for m in manifests if m['kind'] == 'Service')}")

    def _ha_chart_values(self) -> list[str]:
        from xorj.devenv import ha_ledger
        from xorj.devenv.node import REAL_NODE_LABEL

        lay = self._local_node().layout()
        return ha_ledger.chart_values(node_selector={REAL_NODE_LABEL: "real"},
                                      toleration={**EXECUTOR_NODE_TAINT, "operator": "Equal"},
                                      api_host=lay.host_ip, api_port=lay.api_port)

    def _ha_ledger(self, data: dict[str, Any], namespace: str | None = None,
                   release: str = RELEASE) -> tuple[str, str]:
        """Once the chart's Patroni members run (release ``release`` in ``namespace``, default the
        demo's): wait for the primary Service's endpoint, relay it to the host, migrate the schema
        through it; returns the host processes' DSN and the executors'."""
        from xorj.devenv import ha_ledger
        from xorj.devenv.postgres import free_port
        from xorj.ledger.migrate import migrate

        namespace = namespace or self.namespace
        service = ha_ledger.service_name(release)

        def members() -> str:
            return self.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=ledger",
                                "-L", "role", "-o", "wide", check=False).stdout

        primary = wait_until_ready(f"Service {namespace}/{service} pointing at a primary (Patroni's leader lock)",
                                   lambda: ha_ledger.primary_endpoint(self.kubectl, namespace, release),
                                   ha_ledger.PRIMARY_SECONDS, last_seen=members)
        address = ha_ledger.cluster_ip(self.kubectl, namespace, release)
        port = int(data.get("ledger_relay_port") or free_port())
        relay = self._local_node().reach_from_host(address, ha_ledger.PORT, port)
        data.update(ledger_relay_port=port, ledger_relay_target=address)
        self.state.save(data)
        ca_file = self.root / ha_ledger.CA_FILE
        write_private(ca_file, ha_ledger.secret_value(self.kubectl, namespace, ha_ledger.tls_secret_name(release),
                                                      "ca.crt"))
        chart_dsn = ha_ledger.secret_value(self.kubectl, namespace, ha_ledger.ledger_secret_name(release),
                                           "dsn").decode()
        dsn = ha_ledger.host_dsn(chart_dsn, relay, ca_file)
        write_private(self.root / ha_ledger.DSN_FILE, dsn)
        data["ledger_dsn_file"] = str(self.root / ha_ledger.DSN_FILE)
        self.state.save(data)
        migrate(dsn)
        self.say(f"    primary {primary} behind Service {service} ({address}:{ha_ledger.PORT}); the host's "
                 f"processes reach it at {relay}")
        return dsn, ha_ledger.executor_dsn(namespace, release, LEDGER_DATABASE, ca_file)

    def _external_ha_ledger(self, data: dict[str, Any], chain: ChainInfo, opened: PodEndpoints) -> tuple[str, str]:
        """``--ledger external-ha``: the chart's Patroni ledger alone in its own namespace (as a user's
        separately run HA Postgres), then the operator's release pointed at it by the chart's
        external-ledger values; returns the host processes' DSN and the executors' (see _ha_ledger)."""
        from xorj.devenv import ha_ledger
        from xorj.devenv.tls import issue

        namespace = ha_ledger.external_namespace(self.namespace)
        release = ha_ledger.EXTERNAL_RELEASE
        data.update(ledger_namespace=namespace, ledger_location=ha_ledger.external_location(namespace))
        self.state.save(data)
        self.kubectl("create", "namespace", namespace, check=False)
        # a certificate and a password given, as `helm template` needs them; both kept by a second `up`
        tls = ha_ledger.tls_secret_name(release)
        if self.kubectl("get", "secret", tls, "-n", namespace, check=False).returncode != 0:
            ca, cert, key = issue(ha_ledger.service_names(namespace))
            self._apply_secret(tls, {"ca.crt": ca, "tls.crt": cert, "tls.key": key}, namespace=namespace)
        owner = ha_ledger.ledger_secret_name(release)
        if self.kubectl("get", "secret", owner, "-n", namespace, check=False).returncode == 0:
            password = ha_ledger.secret_value(self.kubectl, namespace, owner, "password").decode()
        else:
            password = secrets.token_urlsafe(24)
        values = ha_ledger.external_render_values(password=password, client_namespace=self.namespace)
        rendered = self._helm(*ha_ledger.external_render_args(CHART, namespace), *self._ha_chart_values(),
                              *opened.chart_values(), input=json.dumps(values)).stdout
        documents = ha_ledger.ledger_documents([d for d in yaml.safe_load_all(rendered) if d], namespace)
        self.kubectl("apply", "-n", namespace, "-f", "-",
                     input=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}))
        self.say(f"    {len(documents)} ledger resources in namespace {namespace} (release {release}, not the "
                 "operator's)")
        dsn, executor_dsn = self._ha_ledger(data, namespace, release)
        # what a user gives the operator's release: the ledger's DSN (its Service across namespaces,
        # verify-full against the mounted CA) and CA as Secrets, and where its members are
        self.kubectl("create", "namespace", self.namespace, check=False)
        self._apply_secret(LEDGER_CA_SECRET, {"ca.crt": ha_ledger.secret_value(self.kubectl, namespace, tls, "ca.crt")})
        in_cluster = ha_ledger.secret_value(self.kubectl, namespace, owner, "dsn")
        self._install_chart(in_cluster.decode(), chain,
                            [*opened.chart_values(), *ha_ledger.external_client_values(namespace, LEDGER_CA_SECRET)])
        return dsn, executor_dsn

    def _local_node(self):
        from xorj.devenv.node import LocalChainNode

        taint = f"{EXECUTOR_NODE_TAINT['key']}={EXECUTOR_NODE_TAINT['value']}:{EXECUTOR_NODE_TAINT['effect']}"
        return LocalChainNode(self.cluster, taints=(taint,))

    def _install_chart(self, dsn: str | None, chain: ChainInfo, values: list[str]) -> None:
        """``dsn``: the external ledger's (a host Postgres); None: the chart's own (``values`` say which)."""
        self._wait_namespace_not_terminating()
        self.kubectl("create", "namespace", self.namespace, check=False)
        # The ledger DSN and the vault keypair as Secrets, as a user would create them.
        if dsn is not None:
            self._apply_secret(LEDGER_SECRET, {"dsn": dsn.encode()})
            ledger = ["--set", "postgresql.enabled=false", "--set", f"ledger.existingSecret={LEDGER_SECRET}",
                      "--set", "ledger.existingSecretKey=dsn"]
        else:
            ledger = []
        # bound to the example strategy, as a vault binder (the demo runs kubectl as the cluster admin)
        from xorj.controller.guard import SECRET_BINDING_ANNOTATION

        strategy = (example_strategy().get("metadata") or {}).get("name") or STRATEGY
        self._apply_secret(VAULT_SECRET, {"keypair.json": chain.vault_keypair},
                           annotations={SECRET_BINDING_ANNOTATION: strategy})
        # the local chain and swap API speak http: the explicit development setting allows it
        self._helm("upgrade", "--install", RELEASE, str(CHART), "--namespace", self.namespace,
                   "--wait", "--timeout", f"{int(HELM_SECONDS)}s",
                   "--set", "operator.enabled=false", *ledger,
                   "--set", "executor.allowInsecureEndpoints=true",
                   "--set-json", f"ledgerClient.creators.users={json.dumps(self._ledger_client_creators())}",
                   *values)
        # helm never updates CRDs on upgrade: keep them current with the chart's copy
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))

    def _ledger_client_creators(self) -> list[str]:
        """The chart's default ledger-client creators and this cluster's controller identity: the local
        controller manager acts as the admin (LocalCluster.controller_manager_user), so without it the
        admission policy would refuse the ReplicaSets of the operator's executor Deployments."""
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())["ledgerClient"]["creators"]["users"]
        return [*defaults, self.cluster.controller_manager_user()]

    def _apply_secret(self, name: str, data: dict[str, bytes], annotations: dict[str, str] | None = None,
                      namespace: str | None = None) -> None:
        manifest = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "namespace": namespace or self.namespace,
                                 "annotations": annotations or {}},
                    "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def _operator_kubeconfig(self) -> Path:
        """A kubeconfig that authenticates as the chart's operator ServiceAccount (a bound token)."""
        token = self.kubectl("create", "token", OPERATOR_ACCOUNT, "-n", self.namespace, "--duration=24h").stdout.strip()
        admin = yaml.safe_load(self.cluster.kubeconfig.read_text())
        context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
        cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "operator",
            "clusters": [{"name": "local", "cluster": cluster["cluster"]}],
            "users": [{"name": OPERATOR_ACCOUNT, "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "local", "user": OPERATOR_ACCOUNT,
                                                           "namespace": self.namespace}}],
        }
        path = self.root / "operator.kubeconfig"
        write_private(path, yaml.safe_dump(config))
        return path

    @staticmethod
    def _executor_ledger_dsn(data: dict[str, Any], executor_dsn: str, *, relayed: bool) -> str:
        """Where the executors reach the ledger, verifying its certificate against the local server's
        CA; the operator replaces the user with the namespace's own login. Pods reach it by a Service name
        (through a relay) that the certificate does not name: they check the CA only (verify-ca)."""
        from xorj.devenv.postgres import PostgresServer

        ca_file = PostgresServer(Path(data["postgres_root"]) / "data").ca_file
        separator = "&" if "?" in executor_dsn else "?"
        return f"{executor_dsn}{separator}sslmode={'verify-ca' if relayed else 'verify-full'}&sslrootcert={ca_file}"

    def _operator_pod_values(self, data: dict[str, Any], endpoints: PodEndpoints) -> list[str]:
        """The chart values of the operator pod (see operator_pod_values). With the host's Postgres it
        applies that server's CA as a Secret for the chart to mount; the chart's own ledger
        (ledger.mode=ha) comes with its own CA Secret, which the chart mounts by itself."""
        from xorj.devenv.node import REAL_NODE_LABEL
        from xorj.devenv.postgres import PostgresServer

        ca_secret = None
        if self.ledger != "ha":
            ca = PostgresServer(Path(data["postgres_root"]) / "data").ca_file.read_bytes()
            self._apply_secret(LEDGER_CA_SECRET, {"ca.crt": ca})
            ca_secret = LEDGER_CA_SECRET
        layout = self._local_node().layout()
        return operator_pod_values(image=data["image"], api_host=layout.host_ip, api_port=layout.api_port,
                                   reconcile_rpc_url=endpoints.chain.rpc_url, cash_mint=endpoints.chain.input_mint,
                                   node_selector={REAL_NODE_LABEL: "real"}, ledger_ca_secret=ca_secret)

    def wait_operator_pod(self, *, other_than: Collection[str] = ()) -> str:
        """Wait until the chart's operator Deployment has a Ready pod (after `up`, or after the pod was
        deleted: its controller starts another, and ``other_than`` names the deleted ones); returns the
        pod's name."""
        def ready() -> str | None:
            out = self.kubectl("get", "pods", "-n", self.namespace, "-l", OPERATOR_POD_SELECTOR, "-o", "json").stdout
            return next((p["metadata"]["name"] for p in json.loads(out)["items"]
                         if not p["metadata"].get("deletionTimestamp") and p["metadata"]["name"] not in other_than
                         and any(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))), None)

        def pods_now() -> str:
            listing = self.kubectl("get", "pods", "-n", self.namespace, "-l", OPERATOR_POD_SELECTOR, "-o", "wide",
                                   check=False).stdout
            return f"{listing}{self.operator_pod_logs(previous=True)}{self.operator_pod_logs()}"

        pod = wait_until_ready(f"the operator pod of deployment/{OPERATOR_DEPLOYMENT} Ready", ready,
                               OPERATOR_START_SECONDS, last_seen=pods_now)
        self.say(f"    operator pod {pod} Ready (kubectl logs -n {self.namespace} deployment/{OPERATOR_DEPLOYMENT})")
        return pod

    def operator_pod_logs(self, lines: int = 30, *, previous: bool = False) -> str:
        """The tail of the operator pod's log (``previous``: of its last exited container, what a
        crash-loop left), for an error message; "" when the operator is a host process (its log is a
        file, shown by the waits themselves) or there is no such log."""
        if self.operator != "pod":
            return ""
        args = ["logs", "-n", self.namespace, f"deployment/{OPERATOR_DEPLOYMENT}", f"--tail={lines}"]
        result = self.kubectl(*args, *(["--previous"] if previous else []), check=False)
        if result.returncode != 0 or not result.stdout.strip():
            return ""
        which = "its previous container" if previous else "its container"
        return f"\n`kubectl {' '.join(args)}{' --previous' if previous else ''}` ({which}):\n{result.stdout.rstrip()}"

    def logs_hint(self) -> str:
        """Where the demo's logs are: the host processes' files and, on the real node, `kubectl logs`."""
        where = [f"host processes' logs in {self.root / 'logs'}"]
        if self.executors == "pods":
            where.append(f"executor pods: kubectl logs -n {self.namespace} -l app.kubernetes.io/component=executor "
                         "--all-containers")
        else:
            where.append(f"executor processes' logs in {self.root / 'pod-runtime' / 'pods'}")
        if self.operator == "pod":
            where.append(f"the operator: kubectl logs -n {self.namespace} deployment/{OPERATOR_DEPLOYMENT}")
        return "; ".join(where)

    def restart_operator(self, dsn: str) -> int:
        """Start the host-process operator again with the settings `up` gave it (what a Deployment's
        controller does for a killed pod); returns its pid. An operator pod is its Deployment's to
        restart (see wait_operator_pod)."""
        data = self.state.load()
        if data.get("operator_mode") == "pod":
            raise EnvironmentSetupError(f"the demo's operator is the pod of deployment/{OPERATOR_DEPLOYMENT}: its "
                                        "controller starts another, there is no host process to restart")
        if "operator_executor_dsn" not in data:
            raise EnvironmentSetupError("the demo's state has no operator settings: run `xorj dev up` first")
        self._operator(data, dsn, data["operator_executor_dsn"])
        return int(data["processes"]["operator"]["pid"])

    def _operator(self, data: dict[str, Any], dsn: str, executor_dsn: str) -> None:
        if process_alive(data["processes"].get("operator")):
            self.say("    already running")
            return
        from xorj.devenv.postgres import free_port

        kubeconfig = self._operator_kubeconfig()
        health, metrics = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "XORJ_LEDGER_DSN": dsn,
               "XORJ_OPERATOR_EXECUTOR_SERVICE_ACCOUNT": EXECUTOR_ACCOUNT,
               # each executor connects as its namespace's own login, which the operator makes
               "XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": "true", "XORJ_OPERATOR_EXECUTOR_LEDGER_DSN": executor_dsn,
               "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET": EXECUTOR_LEDGER_SECRET,
               "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET_KEY": "dsn",
               # development only: the local chain and swap API speak http
               "XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": "true"}
        chain = read_chain_info(self.root / "chain")
        if chain is not None:
            # the operator reconciles the ledger with the local chain (on the host, as the operator is),
            # often enough to watch: xorj_reconcile_* on its /metrics, or `xorj reconcile`
            env["XORJ_OPERATOR_RECONCILE_RPC_URL"] = chain.rpc_url
            env["XORJ_OPERATOR_RECONCILE_INTERVAL_SECONDS"] = "15"
            # the local market's USDC is the leaders' cash: TraderPools realize their trades against it
            env["XORJ_OPERATOR_TRADER_CASH_MINTS"] = json.dumps([chain.input_mint])
        if self.executors == "pods":
            from xorj.devenv.node import REAL_NODE_LABEL

            # the image loaded into the node (no registry here): the operator's choice, not the strategy's
            env["XORJ_OPERATOR_EXECUTOR_IMAGE"] = data["image"]
            env["XORJ_OPERATOR_EXECUTOR_IMAGE_PULL_POLICY"] = "Never"

            env["XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR"] = json.dumps({REAL_NODE_LABEL: "real"})
            env["XORJ_OPERATOR_EXECUTOR_TOLERATIONS"] = json.dumps([{**EXECUTOR_NODE_TAINT, "operator": "Equal"}])
        else:
            # the development pod runtime runs a pod's first container only, so no signer sidecar would
            # run: the executors sign in-process (the operator's opt-out); on the real node the signer
            # sidecar, the default, holds the keys
            env["XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR"] = "false"
        argv = [xorj_program(), "operator", f"--namespace={self.namespace}", "--standalone",
                f"--health-port={health}", f"--metrics-port={metrics}", "--log-format=json"]
        record = start_process("operator", argv, env, self.root / "logs" / "operator.log", marker="operator")
        record.update(health_port=health, metrics_port=metrics)
        data["processes"]["operator"] = record
        data["operator_executor_dsn"] = executor_dsn  # a restart gives the operator the same settings
        self.state.save(data)
        wait_until_ready(f"the operator's /healthz on 127.0.0.1:{health}",
                         lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"), OPERATOR_START_SECONDS,
                         alive=lambda: _running(record), logs=[record["log"]])
        self.say(f"    operator pid {record['pid']}, health :{health}, metrics :{metrics}")

    # -- monitoring -------------------------------------------------------------------------------

    def _monitoring_stack(self):
        from xorj.devenv.monitoring import Monitoring

        return Monitoring(self.root / "monitoring", self.toolchain.path, self.say)

    def _monitoring(self, data: dict[str, Any], chain: ChainInfo) -> None:
        """Configure and start Prometheus, Alertmanager and the receiver (kept if running; a running
        Prometheus re-reads the configuration), with the operator, executors and chain as targets."""
        from xorj.devenv import monitoring
        from xorj.devenv.postgres import free_port

        records = data["processes"]
        ports = {name: (records[name]["port"] if process_alive(records.get(name)) else free_port())
                 for name in monitoring.PROCESS_NAMES}
        stack = self._monitoring_stack()
        manifests = self._helm(*monitoring.template_args(RELEASE, CHART, self.namespace, LEDGER_SECRET)).stdout
        chain_job = monitoring.static_job("xorj-chain", urlsplit(chain.rpc_url).netloc,
                                          {"namespace": self.namespace, "service": "xorj-chain"})
        # executor pods on the real node are found through the API server, as a cluster's Prometheus finds
        # them: a pod the chaos runs or a rollout replace is scraped at its new address at once
        discovered = {"executor": self.cluster.kubeconfig} if self.executors == "pods" else None
        if discovered is not None and self.operator == "pod":
            discovered["operator"] = self.cluster.kubeconfig  # the chart's operator-metrics Service, as in a cluster
        stack.configure(manifests, ports, extra_jobs=[chain_job], max_for=monitoring.DEV_MAX_FOR, discovered=discovered)
        data["monitoring_operator_service"] = monitoring.chart_service(manifests, "operator")
        data["monitoring_watcher_service"] = monitoring.chart_service(manifests, "watcher")
        self.state.save(data)
        self.refresh_monitoring_targets(stack, data)
        stack.start(records, ports, start_process)
        self.state.save(data)
        stack.reload_prometheus(records)
        for name, url in monitoring.urls(records).items():
            self.say(f"    {name} {url}")

    def refresh_monitoring_targets(self, stack: Any = None, data: dict[str, Any] | None = None) -> None:
        """Tell Prometheus where the operator and the executors listen now (what the Kubernetes service
        discovery would do in a cluster): written to the ServiceMonitors' target files."""
        from xorj.controller.tradingstrategy.desired import STRATEGY_LABEL, names
        from xorj.devenv.monitoring import Target, chart_monitoring, template_args

        data = data or self.state.load()
        stack = stack or self._monitoring_stack()
        if not stack.monitors:
            if not stack.prometheus_path.exists():
                return  # no monitoring configured by `up`
            stack.monitors = chart_monitoring(
                self._helm(*template_args(RELEASE, CHART, self.namespace, LEDGER_SECRET)).stdout)[0]
        operator = data["processes"].get("operator")
        if operator and data.get("operator_mode", self.operator) == "process":  # a pod: Prometheus discovers it
            stack.set_targets("operator", [Target(f"127.0.0.1:{operator['metrics_port']}", self.namespace,
                                                  data.get("monitoring_operator_service", "xorj-operator-metrics"),
                                                  f"operator-{operator['pid']}")])
        # the watcher, when one runs on the host (a process record "watcher" with its http port)
        watcher = data["processes"].get("watcher")
        stack.set_targets("watcher", [Target(f"127.0.0.1:{watcher['port']}", self.namespace,
                                             data.get("monitoring_watcher_service", "xorj-watcher"),
                                             f"watcher-{watcher['pid']}")]
                          if watcher and watcher.get("port") and process_alive(watcher) else [])
        if self.executors == "pods":
            return  # Prometheus discovers the executor pods itself (see _monitoring)
        pods = self.kubectl("get", "pods", "-n", self.namespace, "-l", "app.kubernetes.io/component=executor",
                            "-o", "json", check=False)
        targets = []
        processes = {}
        with contextlib.suppress(OSError, ValueError):
            processes = json.loads((self.root / "pod-runtime" / "pods.json").read_text())
        for pod in json.loads(pods.stdout or '{"items": []}').get("items", []):
            meta = pod["metadata"]
            strategy = meta.get("labels", {}).get(STRATEGY_LABEL, "")
            entry = processes.get(f"{meta['namespace']}/{meta['name']}") or {}
            port_file = Path(entry["log"]).parent / "http-port" if entry.get("log") else None
            if port_file and port_file.is_file():
                targets.append(Target(f"127.0.0.1:{port_file.read_text().strip()}", meta["namespace"],
                                      names(strategy)["service"], meta["name"]))
        stack.set_targets("executor", targets)

    def monitoring_summary(self) -> list[str]:
        """Where to look: the Prometheus and Alertmanager URLs and the receiver's file."""
        from xorj.devenv import monitoring

        records = self.state.load().get("processes", {})
        found = monitoring.urls(records)
        if not found:
            return []
        stack = self._monitoring_stack()
        return [f"Prometheus:   {found.get('prometheus', '-')}  (rules: {found.get('prometheus', '')}/api/v1/rules)",
                f"Alertmanager: {found.get('alertmanager', '-')}  (alerts: {found.get('alertmanager', '')}/api/v2/alerts)",
                f"Alerts received (one JSON line each): {stack.received_path}",
                "Dashboard:    `xorj dev dashboard` runs each panel query of the chart's Grafana dashboard "
                f"({CHART.name}/dashboards) against this Prometheus",
                "Chaos report: `xorj chaos run` writes report.md and report.html (timelines) under chaos-results/; "
                "the latest full run's are linked from docs/chaos-results.md"]

    def _pod_runtime(self, data: dict[str, Any]) -> None:
        if process_alive(data["processes"].get("pod-runtime")):
            self.say("    already running")
            return
        runtime_dir = self.root / "pod-runtime"
        pods_file = runtime_dir / "pods.json"
        with contextlib.suppress(FileNotFoundError):
            pods_file.unlink()  # an earlier runtime's: the new one writes it after its first pass
        argv = [sys.executable, "-m", "xorj.devenv.pod_runtime", "--kubeconfig", str(self.cluster.kubeconfig),
                "--state-dir", str(runtime_dir), "--namespace", self.namespace]
        record = start_process("pod-runtime", argv, dict(os.environ), self.root / "logs" / "pod-runtime.log",
                               marker="xorj.devenv.pod_runtime")
        data["processes"]["pod-runtime"] = record
        self.state.save(data)
        wait_until_ready(f"the pod runtime's first pass over the pods (it writes {pods_file})", pods_file.is_file,
                         POD_RUNTIME_START_SECONDS, alive=lambda: _running(record), logs=[record["log"]])

    def _wait_executor_processes(self, strategy: dict[str, Any]) -> None:
        """In processes mode: every executor pod's local process runs and serves /healthz."""
        name = strategy["metadata"]["name"]
        replicas = strategy["spec"].get("executor", {}).get("replicas", 1)
        pods_file = self.root / "pod-runtime" / "pods.json"

        def serving() -> list[str]:
            entries = json.loads(pods_file.read_text())
            up = []
            for key, entry in entries.items():
                port_file = Path(entry["log"]).parent / "http-port" if entry.get("log") else None
                if entry.get("pid") and port_file and port_file.is_file() and _http_ok(
                        f"http://127.0.0.1:{port_file.read_text().strip()}/healthz"):
                    up.append(f"{key} (pid {entry['pid']})")
            return up if len(up) >= replicas else []

        def last_seen() -> str:
            entries = json.loads(pods_file.read_text())
            return "\n".join(f"{key}: pid {e.get('pid')}, restarts {e.get('restarts')}, log {e.get('log')}:\n"
                             f"{log_tail(e.get('log'), 10)}" for key, e in entries.items()) or "no executor pods yet"

        record = self.state.load()["processes"].get("pod-runtime")
        up = wait_until_ready(f"{replicas} executor process(es) of {name} serving /healthz", serving,
                              EXECUTORS_READY_TIMEOUT_SECONDS, last_seen=last_seen,
                              alive=lambda: _running(record), logs=[record["log"]] if record else [])
        self.say(f"    executor processes serving: {', '.join(up)}")

    def _apply_strategy(self, chain: ChainInfo) -> dict[str, Any]:
        """examples/tradingstrategy.yaml pointed at the local chain and vault (as its executors reach
        them). The image is the operator's setting (see _operator), never the strategy's."""
        from xorj.controller.models import TradingStrategy

        strategy = example_strategy()
        name = strategy.get("metadata", {}).get("name") or STRATEGY
        strategy["metadata"] = {"name": name, "namespace": self.namespace}
        spec = strategy["spec"]
        spec["vault"] = {"publicKey": chain.vault_public_key, "secretName": VAULT_SECRET, "secretKey": "keypair.json"}
        spec["endpoints"] = {"rpcUrl": chain.rpc_url, "swapApiUrl": chain.swap_api_url}
        spec["paused"] = False
        TradingStrategy.model_validate(strategy)  # the same rules the API server and operator apply
        self.kubectl("apply", "-f", "-", input=json.dumps(strategy))
        self.say(f"    TradingStrategy {name} (from examples/tradingstrategy.yaml)")
        return strategy

    def _register_fanout_vaults(self, strategy: dict[str, Any], chain: ChainInfo) -> None:
        """A Vault resource per extra chain vault, bound to the demo strategy, with their keys in one
        Secret annotated for that strategy (the operator projects a Secret only into the executors of
        the strategy it names); then wait until each Vault is Ready and the executors rolled with the keys."""
        from xorj.controller.guard import SECRET_BINDING_ANNOTATION
        from xorj.controller.models import Vault, VaultSpec
        from xorj.controller.tradingstrategy.desired import names

        name = strategy["metadata"]["name"]
        vaults = chain.fanout_vaults[:self.vaults - 1]
        self._apply_secret(FANOUT_VAULT_SECRET, {f"{key}.json": keypair for key, keypair in vaults},
                           annotations={SECRET_BINDING_ANNOTATION: name})
        template_before = self._executor_template(names(name)["deployment"])
        vault_names = [f"{name}-fanout-{i + 1}" for i in range(len(vaults))]
        for vault_name, (key, _) in zip(vault_names, vaults, strict=True):
            vault = Vault(metadata={"name": vault_name, "namespace": self.namespace},
                          spec=VaultSpec.model_validate({"strategy": name, "publicKey": key,
                                                         "secretName": FANOUT_VAULT_SECRET,
                                                         "secretKey": f"{key}.json"}))
            self.kubectl("apply", "-f", "-", input=json.dumps(vault.to_wire()))

        def not_ready() -> list[str]:
            out = json.loads(self.kubectl("get", "vaults", "-n", self.namespace, "-o", "json").stdout)
            ready = {v["metadata"]["name"] for v in out["items"]
                     if any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (v.get("status") or {}).get("conditions", []))}
            return [n for n in vault_names if n not in ready]

        wait_until_ready(f"{len(vaults)} Vault(s) of {name} Ready", lambda: not not_ready() or None,
                         EXECUTORS_READY_TIMEOUT_SECONDS, last_seen=lambda: f"not Ready: {', '.join(not_ready())}")
        # the keys reach the executors by a new pod template (the projected Secret): wait for it,
        # so the first CopyTrade does not fan out to vaults the running executors cannot sign for
        wait_until_ready(f"the executors of {name} to project {FANOUT_VAULT_SECRET}",
                         lambda: self._executor_template(names(name)["deployment"]) != template_before or None,
                         EXECUTORS_READY_TIMEOUT_SECONDS)
        self.cluster.kubectl("rollout", "status", f"deployment/{names(name)['deployment']}", "-n", self.namespace,
                             f"--timeout={EXECUTORS_READY_TIMEOUT_SECONDS:.0f}s",
                             timeout=EXECUTORS_READY_TIMEOUT_SECONDS + 30)
        self.say(f"    Vaults {', '.join(vault_names)}: each CopyTrade fans out to {self.vaults} vaults")

    def _executor_template(self, deployment: str) -> Any:
        out = self.kubectl("get", "deployment", deployment, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(out.stdout)["spec"]["template"] if out.returncode == 0 else None

    def _wait_executor_pods(self, strategy: dict[str, Any]) -> None:
        from xorj.controller.tradingstrategy.desired import selector_labels

        name = strategy["metadata"]["name"]
        replicas = strategy["spec"].get("executor", {}).get("replicas", 1)
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(name).items())

        def ready() -> list[str]:
            out = self.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json").stdout
            pods = [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]
            up = [f"{p['metadata']['name']} on {p['spec'].get('nodeName')}" for p in pods
                  if any(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))]
            return up if len(up) >= replicas else []

        node_logs = self._local_node().state_dir / "logs"

        def pods_now() -> str:
            listing = self.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "wide", check=False)
            return f"{listing.stdout}(kubectl describe pod -n {self.namespace} ...; node logs in {node_logs})"

        up = wait_until_ready(f"{replicas} executor pod(s) of {name} Ready on the real node", ready,
                              EXECUTORS_READY_TIMEOUT_SECONDS, last_seen=pods_now,
                              logs=[node_logs / "kubelet.log"])
        self.say(f"    executor pods Ready: {', '.join(up)}")

    def _apply_copytrades(self, strategy: dict[str, Any], chain: ChainInfo) -> list[str]:
        """CopyTrades shaped like examples/copytrades.yaml that buy the local SOL with the vault's USDC."""
        from xorj.controller.models import CopyTrade

        name = strategy["metadata"]["name"]
        lead = (strategy["spec"].get("traders") or ["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"])[0]
        names = []
        for i in range(COPYTRADES):
            trade_name = f"{name}-demo-{i + 1}"
            trade = {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
                     "metadata": {"name": trade_name, "namespace": self.namespace},
                     "spec": {"strategy": name, "leadTrader": lead, "leadSignature": _fake_lead_signature(),
                              "inputMint": chain.input_mint, "outputMint": chain.output_mint,
                              "amount": 1_000_000 * (i + 1),  # 1, 2 and 3 USDC (6 decimals)
                              # as the watcher would: the lead trade's USD value, for the risk limits
                              "notionalUsd": float(i + 1)}}
            CopyTrade.model_validate(trade)
            # a CopyTrade's spec is immutable: keep one that exists (re-running `up` is idempotent)
            if self.kubectl("get", "copytrade", trade_name, "-n", self.namespace, check=False).returncode != 0:
                self.kubectl("create", "-f", "-", input=json.dumps(trade))
            names.append(trade_name)
        self.say(f"    CopyTrades {', '.join(names)}")
        return names

    def _wait_confirmed(self, names: list[str]) -> None:
        last = ""

        def phases() -> dict[str, str]:
            out = self.kubectl("get", "copytrades", "-n", self.namespace, "-o", "json").stdout
            return {i["metadata"]["name"]: (i.get("status") or {}).get("phase") or "-"
                    for i in json.loads(out)["items"] if i["metadata"]["name"] in names}

        deadline = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            current = phases()
            line = ", ".join(f"{n} {p}" for n, p in sorted(current.items()))
            if line != last:
                self.say(f"    {line}")
                last = line
            if current and all(p in ("CONFIRMED", "FAILED") for p in current.values()):
                failed = [n for n, p in current.items() if p != "CONFIRMED"]
                if failed:
                    raise EnvironmentSetupError(f"CopyTrades ended FAILED: {', '.join(failed)} "
                                                f"(kubectl describe copytrade -n {self.namespace} {failed[0]})")
                return
            time.sleep(1)
        raise EnvironmentSetupError(f"CopyTrades not CONFIRMED after {CONFIRM_TIMEOUT_SECONDS:.0f}s: {last}; "
                                    f"{self.logs_hint()}{self.operator_pod_logs()}")

    # -- down -------------------------------------------------------------------------------------

    def down(self) -> None:
        data = self.state.load()
        problems: list[str] = []
        processes = data.get("processes", {})
        for name in PROCESS_NAMES:
            record = processes.get(name)
            if process_alive(record):
                self.say(f"stopping {name} (pid {record['pid']})")
                stop_process(record)
        # executors outlive nothing: the runtime stops them; this catches a runtime killed with -9
        pods_file = self.root / "pod-runtime" / "pods.json"
        with contextlib.suppress(OSError, ValueError):
            for key, pod in json.loads(pods_file.read_text()).items():
                if pod.get("pid") and "executor" in cmdline(int(pod["pid"])):
                    self.say(f"stopping executor of {key} (pid {pod['pid']})")
                    stop_process({"pid": pod["pid"], "marker": "executor", "log": ""}, grace=10)
        if data.get("kubeconfig") and self.cluster.cluster_dir.exists():
            # After the operator stopped (it would re-add finalizers), and before the node goes: pods on
            # a node that is gone are only garbage-collected minutes later, and until then the
            # namespace stays Terminating and a following `up` cannot install into it.
            try:
                self._remove_namespace()
            except StartupTimeout as exc:
                problems.append(str(exc))  # reported once the rest is stopped
        if data.get("ledger_namespace"):  # --ledger external-ha: its own namespace, before the node goes
            try:
                self._remove_ledger_namespace(data["ledger_namespace"])
                data.pop("ledger_namespace", None)
                data.pop("ledger_location", None)
            except StartupTimeout as exc:
                problems.append(str(exc))
        if data.get("ledger_relay_target"):
            from xorj.devenv import ha_ledger

            self._local_node().stop_reach_from_host(data["ledger_relay_target"], ha_ledger.PORT)
            for key in ("ledger_relay_target", "ledger_relay_port", "ledger_dsn_file"):
                data.pop(key, None)
            for name in (ha_ledger.DSN_FILE, ha_ledger.CA_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.root / name).unlink()
        if data.get("node_started_by_demo"):
            self.say("removing the real node (its containers, mounts, namespaces and interfaces)")
            self._local_node().down(progress=lambda m: self.say(f"    {m}"))
            data.pop("node_started_by_demo", None)
        if data.get("postgres_root"):
            from xorj.devenv.postgres import PostgresServer

            root = Path(data["postgres_root"])
            server = PostgresServer(root / "data", data.get("postgres_port"), log_path=root / "postgres.log")
            if server.is_running():
                self.say("stopping Postgres")
                server.stop()
            # the chain starts afresh with every `up`: a ledger of trades on a chain that is gone
            # would only confuse the next demo
            shutil.rmtree(root, ignore_errors=True)
            data.pop("postgres_root", None)
            data.pop("postgres_port", None)
        if data.get("cluster_started_by_demo"):
            self.say("stopping the cluster")
            self.cluster.down(progress=lambda m: self.say(f"    {m}"))
        elif data.get("kubeconfig") and self.cluster.cluster_dir.exists():
            self.say(f"leaving cluster {self.cluster.name} running: it was up before `xorj dev up` "
                     "(`xorj dev cluster down` stops it)")
        data["processes"] = {}
        data.pop("cluster_started_by_demo", None)
        data.pop("kubeconfig", None)
        self.state.save(data)
        if problems:
            raise EnvironmentSetupError("`down` stopped everything else, but: " + "\n".join(problems))

    def _remove_namespace(self) -> None:
        """Remove what the demo put in the cluster and wait until it is gone: the workload, its pods,
        then the namespace. The demo's ledger goes away with it, so the CRs' finalizers have nothing
        left to wait for. Nothing is left terminating: a following `up` starts clean."""
        if not self.cluster.is_running():
            return
        self.say(f"removing namespace {self.namespace} from cluster {self.cluster.name}")
        # an operator pod would put back the finalizers released below: stop it first
        if self.kubectl("scale", "deployment", OPERATOR_DEPLOYMENT, "-n", self.namespace, "--replicas=0",
                        check=False).returncode == 0:
            self.say(f"    waiting for the operator pod of deployment/{OPERATOR_DEPLOYMENT} to be gone")
            wait_until_gone("the operator pod to be gone", lambda: self.kubectl(
                "get", "pods", "-n", self.namespace, "-l", OPERATOR_POD_SELECTOR, "-o", "name").stdout.split(),
                NAMESPACE_GONE_SECONDS)
        for kind in ("copytrades.trading.xorj.io", "vaults.trading.xorj.io", "tradingstrategies.trading.xorj.io",
                     "traderpools.trading.xorj.io"):
            names = self.kubectl("get", kind, "-n", self.namespace, "-o", "name", check=False).stdout.split()
            if names:
                self.say(f"    releasing the finalizers of {len(names)} {kind.split('.')[0]}")
            # many names per kubectl call: after a chaos run there are thousands, and one process per
            # object took longer than the run
            for start in range(0, len(names), FINALIZER_PATCH_BATCH):
                self.kubectl("patch", *names[start:start + FINALIZER_PATCH_BATCH], "-n", self.namespace,
                             "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        with contextlib.suppress(EnvironmentSetupError, subprocess.TimeoutExpired):
            self._helm("uninstall", RELEASE, "--namespace", self.namespace, "--ignore-not-found")
        self.kubectl("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=false", check=False)
        self.say(f"    waiting for the pods of namespace {self.namespace} to be gone")
        wait_until_gone(f"the pods of namespace {self.namespace} to be gone", self._namespace_pods,
                        NAMESPACE_GONE_SECONDS, last_seen=self._describe_namespace_pods)
        self.say(f"    waiting for namespace {self.namespace} to be deleted")
        wait_until_gone(f"namespace {self.namespace} to be deleted", lambda: self._namespace_phase() is not None,
                        NAMESPACE_GONE_SECONDS, last_seen=self._namespace_conditions)

    def _remove_ledger_namespace(self, namespace: str) -> None:
        """Delete the external ledger's namespace and wait until it is gone (Patroni's ConfigMaps go
        with it)."""
        if not (self.cluster.cluster_dir.exists() and self.cluster.is_running()):
            return
        self.say(f"removing the ledger's namespace {namespace}")
        self.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)
        wait_until_gone(f"namespace {namespace} to be deleted",
                        lambda: self.kubectl("get", "namespace", namespace, check=False).returncode == 0,
                        NAMESPACE_GONE_SECONDS,
                        last_seen=lambda: self.kubectl("get", "pods", "-n", namespace, "-o", "wide",
                                                       check=False).stdout)

    def _wait_namespace_not_terminating(self) -> None:
        """A namespace still being deleted (e.g. by a `down` of an older version, or by hand) accepts
        nothing new: wait for it to go, with a limit, rather than fail inside helm."""
        if self._namespace_phase() != "Terminating":
            return
        self.say(f"    namespace {self.namespace} is still terminating: waiting up to "
                 f"{NAMESPACE_GONE_SECONDS:.0f}s for it to be deleted before installing the chart")
        try:
            wait_until_gone(f"namespace {self.namespace}, still terminating, to be deleted",
                            lambda: self._namespace_phase() == "Terminating", NAMESPACE_GONE_SECONDS,
                            last_seen=lambda: f"{self._namespace_conditions()}\n{self._describe_namespace_pods()}")
        except StartupTimeout as exc:
            raise StartupTimeout(f"{exc}\nThe chart cannot be installed into namespace {self.namespace} while it "
                                 "is being deleted; see `kubectl get namespace "
                                 f"{self.namespace} -o yaml` for what holds it.") from exc

    def _namespace_phase(self) -> str | None:
        """The namespace's phase (Active, Terminating), or None when there is no such namespace."""
        result = self.kubectl("get", "namespace", self.namespace, "-o", "jsonpath={.status.phase}", check=False)
        if result.returncode != 0:
            if "NotFound" in (result.stderr or "") or "not found" in (result.stderr or ""):
                return None
            raise EnvironmentSetupError(f"reading namespace {self.namespace}: {(result.stderr or '').strip()}")
        return result.stdout.strip() or None

    def _namespace_pods(self) -> list[str]:
        result = self.kubectl("get", "pods", "-n", self.namespace, "-o", "name", check=False)
        if result.returncode != 0:
            raise EnvironmentSetupError(f"listing pods of {self.namespace}: {(result.stderr or '').strip()}")
        return result.stdout.split()

    def _describe_namespace_pods(self) -> str:
        return self.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False).stdout.strip() \
            or f"no pods in {self.namespace}"

    def _namespace_conditions(self) -> str:
        result = self.kubectl("get", "namespace", self.namespace, "-o", "jsonpath={.status.conditions}",
                              check=False)
        return (result.stdout or result.stderr).strip()[:2000] or "(the namespace controller reports no conditions yet)"


def example_strategy() -> dict[str, Any]:
    """The first TradingStrategy in examples/ (the one a new user reads), or a minimal one."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "TradingStrategy":
                return document
    from solders.keypair import Keypair

    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "spec": {"traders": [str(Keypair().pubkey())], "executor": {"replicas": 2}}}


def top_n_strategy(example: dict[str, Any], namespace: str, chain: ChainInfo) -> dict[str, Any]:
    """The copy loop's strategy: the example's risk, slippage and executor settings, following the
    best of the demo's TraderPool (``topN: 1``) into the chain's second vault, a fixed 2 USD a trade."""
    spec = {key: value for key, value in json.loads(json.dumps(example.get("spec") or {})).items()
            if key not in ("traders", "topN", "vault", "endpoints", "sizing")}
    spec["topN"] = {"count": 1, "pool": POOL}
    spec["vault"] = {"publicKey": chain.follower_vault_public_key, "secretName": FOLLOWER_VAULT_SECRET,
                     "secretKey": "keypair.json"}
    spec["endpoints"] = {"rpcUrl": chain.rpc_url, "swapApiUrl": chain.swap_api_url}
    spec["sizing"] = {"mode": "fixedUsd", "fixedUsd": 2}
    spec["executor"] = {**(spec.get("executor") or {}), "replicas": 1}
    spec["paused"] = False
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "metadata": {"name": TOP_N_STRATEGY, "namespace": namespace}, "spec": spec}


def _fake_lead_signature() -> str:
    """A well-formed signature standing for a lead trader's swap on the public chain (not reachable here)."""
    from solders.signature import Signature

    return str(Signature.from_bytes(secrets.token_bytes(64)))


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status == 200
    except OSError:
        return False
