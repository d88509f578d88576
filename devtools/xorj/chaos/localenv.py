"""The local chaos environment: the parts the ledger/chain/executor scenarios act on, as real
processes, without Kubernetes (for CI; the cluster scenarios run on ``xorj dev up`` or kind).

``up`` starts a Postgres server with the ledger schema, the local chain (``xorj dev chain serve``),
a cuttable TCP proxy in front of Postgres (:mod:`xorj.chaos.proxy`) and an executor pool
(:mod:`xorj.chaos.supervisor`, replicas of ``xorj executor`` whose DSN goes through the proxy). It
writes ``env.json`` (pids, ports, paths and the ``target`` the probes read) and ``down`` stops it all.
``XORJ_CHAOS_ENV=<dir>/env.json`` points experiments at it.

The copy loop runs beside it (the watcher experiments act on it; the others leave it alone): a lead
trader's key (funded on the chain, swapped with by :func:`xorj.chaos.actions.lead_swaps`), a
TradingStrategy following it (``FOLLOWER``, with the chain's second vault, in a strategies file), the
watcher (``xorj watcher`` under its own supervisor, polling through its own RPC node
``/nodes/watcher/`` so a fault can lag it alone, pushed to by the chain's WebSocket and by webhook
deliveries) and an executor pool of that strategy (direct to Postgres, not through the proxy, so the
ledger faults of the other experiments stay as they were).

The executors' settings can be overridden while it runs (the kill switch): ``executor.env.json``
in the same directory is read by the pool each time it starts a replica.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xorj.devenv.processes import process_running, terminate
from xorj.devenv.waiting import wait_until_ready
from xorj.errors import EnvironmentSetupError

STRATEGY = "chaos"
DATABASE = "xorj"

# Short bounds so faults resolve within an experiment: leases of 4 s, client timeouts of 2-3 s, a
# breaker that reopens after 20 s (production defaults are longer; the algorithm is the same).
EXECUTOR_SETTINGS: dict[str, str] = {
    "XORJ_LEASE_SECONDS": "4", "XORJ_POLL_INTERVAL_SECONDS": "0.2", "XORJ_REBROADCAST_INTERVAL_SECONDS": "1.0",
    "XORJ_RPC_TIMEOUT_SECONDS": "2", "XORJ_SEND_TIMEOUT_SECONDS": "2", "XORJ_SWAP_API_TIMEOUT_SECONDS": "3",
    "XORJ_SHUTDOWN_GRACE_SECONDS": "5", "XORJ_CLAIM_INTERVAL_SECONDS": "0.1", "XORJ_CONCURRENCY": "4",
    "XORJ_HTTP_HOST": "127.0.0.1", "XORJ_MAX_PRICE_IMPACT": "0.05", "XORJ_SLIPPAGE_CAP_BPS": "300",
    "XORJ_BREAKER_FAILURES_IN_A_ROW": "3", "XORJ_BREAKER_FAILURES_IN_WINDOW": "5",
    "XORJ_BREAKER_WINDOW_SECONDS": "30", "XORJ_BREAKER_OPEN_SECONDS": "20", "XORJ_MAX_DAILY_TRADES": "100000",
    "XORJ_MAX_DAILY_VOLUME_USD": "100000000",
}


# The namespace the chaos environment's targets are labelled with (the chart's rules select it), and the
# cap on every alert's `for:` here: the experiments' faults last tens of seconds (see EXECUTOR_SETTINGS)
MONITORING_NAMESPACE = "xorj"
MONITORING_MAX_FOR = "10s"  # = xorj.devenv.monitoring.DEV_MAX_FOR
# XorjWatcherLagging's threshold here (the chart's watcherLagSeconds, 60 by default). With 60 s the
# alert fires at the earliest 60 s + `for:` + a scrape and an evaluation (about 80 s) into a polling
# outage, longer than a watcher experiment's whole fault window; 10 s keeps the rule's expression
# and makes it fire about 25 s in. (A SIGKILLed watcher alone never fires it: while dead it exports
# no series, and a new process reports no lag until its first polling round.)
WATCHER_LAG_SECONDS = 10
# The fault window of XorjRpcErrors, XorjOnChainFailures and XorjUnsafeSwapRefused here (the chart's
# faultWindow, 2m by default): such an alert resolves once no failure has happened for this long, and
# the next experiment asking for it first waits until it has (begin_run's quiet wait). With 2m those
# waits were about 9 of the `ci` set's 17 minutes; 30 s is still three times the `for:` cap, so an
# alert fires and holds as in a cluster. The expressions are the chart's; its promtool unit tests
# keep checking the 2m window.
FAULT_WINDOW = "30s"

# The copy loop: the strategy the watcher copies the lead trader for, its executors and the watcher.
FOLLOWER_NAMESPACE = MONITORING_NAMESPACE
FOLLOWER_NAME = "chaos-follower"
FOLLOWER_STRATEGY = f"{FOLLOWER_NAMESPACE}/{FOLLOWER_NAME}"  # the ledger's key (namespace/name)
FOLLOWER_FIXED_USD = 3
WATCHER_RPC_NODE = "watcher"
WATCHER_SETTINGS: dict[str, str] = {
    "XORJ_WATCHER_HTTP_HOST": "127.0.0.1", "XORJ_WATCHER_POLL_INTERVAL_SECONDS": "0.5",
    "XORJ_RPC_TIMEOUT_SECONDS": "2", "XORJ_LOG_LEVEL": "INFO",
}
LEADER_LAMPORTS = 10**9
LEADER_USDC = 1_000_000 * 10**6


def follower_strategy(leader: str, vault: str, rpc_url: str, swap_api_url: str) -> dict[str, Any]:
    """The TradingStrategy the watcher follows the lead trader with (its strategies file): a fixed
    USD amount per lead swap, the chain's own endpoints."""
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "metadata": {"namespace": FOLLOWER_NAMESPACE, "name": FOLLOWER_NAME},
            "spec": {"traders": [leader], "vault": {"publicKey": vault, "secretName": f"{FOLLOWER_NAME}-vault"},
                     "endpoints": {"rpcUrl": rpc_url, "swapApiUrl": swap_api_url},
                     "sizing": {"mode": "fixedUsd", "fixedUsd": FOLLOWER_FIXED_USD}}}


def _start(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env or dict(os.environ), start_new_session=True)
    return process.pid


def _wait_file(path: Path, what: str, pid: int, timeout: float, log: Path) -> dict[str, Any]:
    """The JSON file a process writes once it serves (its readiness signal)."""
    return wait_until_ready(f"{what} (writing {path.name})", lambda: json.loads(path.read_text()), timeout,
                            alive=lambda: process_running(pid), logs=[log], interval=0.1)


def stop_pid(pid: int | None, grace: float = 20.0) -> None:
    """SIGTERM the process group of ``pid`` (started in its own session), SIGKILL after ``grace``."""
    terminate(pid, grace=grace, group=True)


class LocalChaosEnv:
    def __init__(self, root: Path, progress: Callable[[str], None] = lambda _: None) -> None:
        self.root = root
        self.path = root / "env.json"
        self.say = progress

    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)

    def up(self, replicas: int = 2) -> dict[str, Any]:
        from xorj.chaos.actions import postgres_control
        from xorj.devenv.postgres import PostgresServer, free_port
        from xorj.ledger.migrate import migrate

        if self.load().get("running"):
            raise EnvironmentSetupError(f"a chaos environment already runs in {self.root}: `xorj chaos env down` first")
        self.root.mkdir(parents=True, exist_ok=True)
        logs = self.root / "logs"
        state: dict[str, Any] = {"running": True, "processes": {}}
        self._save(state)
        try:
            self.say("ledger: starting Postgres")
            server = PostgresServer.temporary()
            server.port = free_port()
            state["postgres"] = {"data_dir": str(server.data_dir), "port": server.port,
                                 "log": str(server.log_path), "root": str(server.data_dir.parent)}
            self._save(state)
            server.initdb()
            # started from a helper process: the postmaster is nobody's long-lived child (see postgres_control)
            postgres_control("start", str(server.data_dir), server.port, str(server.log_path))
            state["postgres"] = {"data_dir": str(server.data_dir), "port": server.port,
                                 "log": str(server.log_path), "root": str(server.data_dir.parent)}
            self._save(state)
            dsn = server.create_database(DATABASE, exist_ok=True)
            migrate(dsn)

            self.say("chain: starting the local chain")
            chain_dir = self.root / "chain"
            with contextlib.suppress(FileNotFoundError):
                (chain_dir / "chain.json").unlink()
            pid = _start([sys.executable, "-c", "from xorj.cli import main; main()", "dev", "chain", "serve",
                          "--state-dir", str(chain_dir), "--vaults", "2", "--slot-ms", "100"], logs / "chain.log")
            state["processes"]["chain"] = pid
            self._save(state)
            chain = _wait_file(chain_dir / "chain.json", "the local chain", pid, 120, logs / "chain.log")

            self.say("proxy: starting the cuttable TCP proxy in front of Postgres")
            proxy_file = self.root / "proxy.json"
            with contextlib.suppress(FileNotFoundError):
                proxy_file.unlink()
            pid = _start([sys.executable, "-m", "xorj.chaos.proxy", "--target", f"127.0.0.1:{server.port}",
                          "--state-file", str(proxy_file)], logs / "proxy.log")
            state["processes"]["proxy"] = pid
            proxy = _wait_file(proxy_file, "the TCP proxy", pid, 30, logs / "proxy.log")
            state["proxy"] = {"control_url": f"http://127.0.0.1:{proxy['control_port']}",
                              "listen_port": proxy["listen_port"]}

            vault, keypair_file = next(iter(chain["vaults"].items()))
            executor_env = {
                **os.environ, **EXECUTOR_SETTINGS,
                "XORJ_LEDGER_DSN": f"postgresql://postgres@127.0.0.1:{proxy['listen_port']}/{DATABASE}",
                "XORJ_STRATEGY": STRATEGY, "XORJ_RPC_URL": chain["rpc_url"], "XORJ_SWAP_API_URL": chain["swap_api_url"],
                "XORJ_VAULT_KEYPAIR_FILE": keypair_file, "XORJ_VAULT_PUBKEY": vault,
                "XORJ_CHAOS_EXECUTOR_OVERRIDES": str(self.root / "executor.env.json"),
            }
            monitoring, ports, watcher_service = self._configure_monitoring()
            self.say(f"executors: starting {replicas} `xorj executor` replicas")
            pool_file = self.root / "executors.json"
            with contextlib.suppress(FileNotFoundError):
                pool_file.unlink()
            # the pool keeps the executors' ServiceMonitor target file current as replicas come and go
            pid = _start([sys.executable, "-m", "xorj.chaos.supervisor", "--replicas", str(replicas),
                          "--state-file", str(pool_file), "--log-dir", str(logs / "executors"),
                          "--prometheus-targets", str(monitoring.targets_path("executor")),
                          "--target-label", f"namespace={MONITORING_NAMESPACE}",
                          "--target-label", f"service={STRATEGY}-executor",
                          "--target-label", f"job={STRATEGY}-executor"],
                         logs / "supervisor.log", env=executor_env)
            state["processes"]["executors"] = pid
            state["executors_file"] = str(pool_file)
            _wait_file(pool_file, "the executor pool", pid, 30, logs / "supervisor.log")
            self._start_copy_loop(state, chain, dsn, executor_env, monitoring, watcher_service)
            state["target"] = {
                "ledger_dsn": dsn, "chain_admin_url": chain["admin_url"], "strategy": STRATEGY, "vault": vault,
                "input_mint": chain["mints"]["USDC"]["address"], "output_mint": chain["mints"]["SOL"]["address"],
            }
            state["replicas"] = replicas
            self._save(state)
            self.say("monitoring: Prometheus (the chart's rules), Alertmanager and the alert receiver")
            from xorj.devenv.demo import start_process

            records: dict[str, Any] = {}
            state["monitoring"] = records
            monitoring.start(records, ports, start_process)
            state["target"]["alertmanager_url"] = f"http://127.0.0.1:{ports['alertmanager']}"
            self._save(state)
        except BaseException:
            self.down()
            raise
        self.say(f"chaos environment up: XORJ_CHAOS_ENV={self.path}")
        return state

    def _start_copy_loop(self, state: dict[str, Any], chain: dict[str, Any], dsn: str, executor_env: dict[str, str],
                         monitoring: Any, watcher_service: str) -> None:
        """The lead trader, the follower strategy's executor pool and the supervised watcher."""
        import secrets

        import yaml
        from solders.keypair import Keypair

        from xorj.chain.prices import price_api_url_for
        from xorj.chaos.actions import _http
        from xorj.devenv.chain.environment import write_keypair

        logs = self.root / "logs"
        vaults = list(chain["vaults"].items())
        if len(vaults) < 2:
            raise EnvironmentSetupError("the chaos chain seeded fewer than 2 vaults: the follower strategy needs its own")
        follower_vault, follower_keypair_file = vaults[1]
        self.say("copy loop: a lead trader funded on the chain, the strategy following it")
        leader = Keypair()
        leader_file = self.root / "leader.json"
        leader_file.unlink(missing_ok=True)
        write_keypair(leader_file, leader)
        _http(chain["admin_url"].rstrip("/") + "/fund", "POST", {
            "pubkey": str(leader.pubkey()), "lamports": LEADER_LAMPORTS, "tokens": {"USDC": LEADER_USDC, "SOL": 0}})
        strategies_file = self.root / "strategies.yaml"
        strategies_file.write_text(yaml.safe_dump(follower_strategy(str(leader.pubkey()), follower_vault,
                                                                    chain["rpc_url"], chain["swap_api_url"])))
        token_file = self.root / "webhook-token"
        token_file.unlink(missing_ok=True)
        token_file.touch(mode=0o600)
        token = secrets.token_urlsafe(24)
        token_file.write_text(token)

        self.say("copy loop: one `xorj executor` of the follower strategy")
        follower_env = {**executor_env, "XORJ_STRATEGY": FOLLOWER_STRATEGY, "XORJ_VAULT_PUBKEY": follower_vault,
                        "XORJ_VAULT_KEYPAIR_FILE": follower_keypair_file,
                        "XORJ_LEDGER_DSN": dsn}  # direct: the proxy's cuts are the executor experiments' faults
        follower_env.pop("XORJ_CHAOS_EXECUTOR_OVERRIDES", None)  # the kill switch is the other pool's
        follower_file = self.root / "follower-executors.json"
        follower_file.unlink(missing_ok=True)
        pid = _start([sys.executable, "-m", "xorj.chaos.supervisor", "--replicas", "1", "--prefix", "follower",
                      "--state-file", str(follower_file), "--log-dir", str(logs / "follower-executors")],
                     logs / "follower-supervisor.log", env=follower_env)
        state["processes"]["follower-executors"] = pid
        self._save(state)
        _wait_file(follower_file, "the follower executor pool", pid, 30, logs / "follower-supervisor.log")

        self.say("copy loop: `xorj watcher` under its own supervisor")
        rpc_base = chain["rpc_url"].rstrip("/")
        watcher_env = {**{k: v for k, v in os.environ.items() if not k.startswith("XORJ_")}, **WATCHER_SETTINGS,
                       "XORJ_LEDGER_DSN": dsn, "XORJ_RPC_URL": f"{rpc_base}/nodes/{WATCHER_RPC_NODE}/",
                       "XORJ_WATCHER_WS_URL": rpc_base.replace("http://", "ws://", 1) + "/",
                       "XORJ_PRICE_API_URL": price_api_url_for(chain["swap_api_url"]),
                       "XORJ_WATCHER_STRATEGIES_FILE": str(strategies_file), "XORJ_WATCHER_WEBHOOK_TOKEN": token,
                       "XORJ_WATCHER_CASH_MINTS": json.dumps([chain["mints"]["USDC"]["address"]])}
        watcher_file = self.root / "watcher.json"
        watcher_file.unlink(missing_ok=True)
        pid = _start([sys.executable, "-m", "xorj.chaos.supervisor", "--command", "watcher", "--replicas", "1",
                      "--state-file", str(watcher_file), "--log-dir", str(logs / "watcher"),
                      "--prometheus-targets", str(monitoring.targets_path("watcher")),
                      "--target-label", f"namespace={MONITORING_NAMESPACE}",
                      "--target-label", f"service={watcher_service}", "--target-label", f"job={watcher_service}"],
                     logs / "watcher-supervisor.log", env=watcher_env)
        state["processes"]["watcher"] = pid
        state["watcher"] = {"file": str(watcher_file), "token_file": str(token_file), "rpc_node": WATCHER_RPC_NODE}
        state["leader"] = {"pubkey": str(leader.pubkey()), "key_file": str(leader_file)}
        state["followers"] = [{"strategy": FOLLOWER_STRATEGY, "vault": follower_vault}]
        self._save(state)
        _wait_file(watcher_file, "the watcher supervisor", pid, 30, logs / "watcher-supervisor.log")

    def _configure_monitoring(self) -> tuple[Any, dict[str, int], str]:
        """Render the chart's ServiceMonitors and PrometheusRule into the local Prometheus' and
        Alertmanager's configuration (xorj.devenv.monitoring), ``for:`` capped at MONITORING_MAX_FOR,
        the watcher's lag threshold at WATCHER_LAG_SECONDS and the fault window at FAULT_WINDOW; also
        the name of the chart's watcher Service (its targets' job)."""
        from xorj.devenv import monitoring
        from xorj.devenv.demo import CHART, LEDGER_SECRET, RELEASE
        from xorj.devenv.postgres import free_port
        from xorj.devenv.toolchain import Toolchain

        toolchain = Toolchain()
        rendered = subprocess.run([str(toolchain.path("helm")), *monitoring.template_args(
            RELEASE, CHART, MONITORING_NAMESPACE, LEDGER_SECRET),
            "--set", f"metrics.prometheusRule.watcherLagSeconds={WATCHER_LAG_SECONDS}",
            "--set", f"metrics.prometheusRule.faultWindow={FAULT_WINDOW}"], capture_output=True, text=True, timeout=120,
            check=False)
        if rendered.returncode != 0:
            raise EnvironmentSetupError(f"helm template (monitoring) failed: {rendered.stderr.strip()}")
        stack = monitoring.Monitoring(self.root / "monitoring", toolchain.path, self.say)
        ports = {name: free_port() for name in monitoring.PROCESS_NAMES}
        stack.configure(rendered.stdout, ports, max_for=MONITORING_MAX_FOR)
        return stack, ports, monitoring.chart_service(rendered.stdout, "watcher")

    def down(self) -> None:
        from xorj.chaos.actions import postgres_control
        from xorj.devenv.monitoring import Monitoring
        from xorj.devenv.postgres import PostgresServer

        state = self.load()
        Monitoring.stop(state.get("monitoring") or {}, self.say)
        for name in ("watcher", "follower-executors", "executors", "proxy", "chain"):
            pid = state.get("processes", {}).get(name)
            if process_running(pid):
                self.say(f"stopping {name} (pid {pid})")
                stop_pid(pid)
        pg = state.get("postgres")
        if pg:
            server = PostgresServer(Path(pg["data_dir"]), pg["port"], log_path=Path(pg["log"]))
            if server.is_running():
                self.say("stopping Postgres")
                postgres_control("stop", pg["data_dir"], pg["port"], pg["log"])
            shutil.rmtree(pg["root"], ignore_errors=True)
        if state:
            state.update(running=False, processes={})
            state.pop("postgres", None)
            self._save(state)
