"""`xorj dev up` / `xorj dev down` end to end on the local cluster, Postgres and chain.

The demo runs in its own namespace and state directory on the session's cluster (which it then does
not stop). It must end with every demo CopyTrade CONFIRMED, with the operator and the executors as real
pods from the project's image on a real node, the operator from the chart's own Deployment (or, in
`--executors processes` mode, the operator and one process per executor pod on the host), end a pod's
process when the pod is deleted, and leave nothing running after `down`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.demo_operator import assert_operator_is_the_charts_pod
from tests.e2e.waiting import wait_until
from tests.unit.chart.dashboard import EMPTY_WHEN_ALL_CONFIRM, WATCHER_PANELS
from xorj.devenv.dashboard import panel_queries as dashboard_queries
from xorj.devenv.dashboard import run_query

pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def executor_processes(pod_name: str) -> list[int]:
    """Host pids of `xorj executor` processes started for the pod (its XORJ_EXECUTOR_ID)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"executor" not in (proc / "cmdline").read_bytes():
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"XORJ_EXECUTOR_ID={pod_name}".encode() in environ and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def uid_of(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    return int(line.split()[1])


def test_dev_up_runs_executors_as_real_pods_on_a_real_node(k8s_cluster, tmp_path: Path) -> None:
    from xorj.controller.tradingstrategy.desired import EXECUTOR_UID, STRATEGY_LABEL
    from xorj.devenv.node.lifecycle import DEFAULT_NODE_NAME

    namespace = f"demo-{secrets.token_hex(3)}"
    state = tmp_path / "demo"
    env = {**os.environ, "XORJ_DEMO_STATE_DIR": str(state), "XORJ_DEMO_NAMESPACE": namespace,
           "XORJ_DEMO_EXECUTORS": "pods"}
    xorj = str(Path(sys.executable).parent / "xorj")
    pids: list[int] = []
    try:
        up = subprocess.run([xorj, "dev", "up"], env=env, capture_output=True, text=True, timeout=1200)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-6000:]}"
        lines = [line for line in up.stdout.splitlines() if "-demo-" in line]
        assert len(lines) == 3 and all("CONFIRMED" in line for line in lines), up.stdout
        image = json.loads((state / "demo.json").read_text())["image"]

        assert_the_copy_loop_ran(up.stdout, k8s_cluster, namespace, state)
        # the operator is the chart's Deployment's pod (the default on the real node), scraped by the
        # host's Prometheus at the pod's address, which it discovers through the operator's Service
        operator = assert_operator_is_the_charts_pod(k8s_cluster.kubectl, namespace, state)
        assert_executor_pods_scraped(up.stdout, {operator["status"]["podIP"]}, service="xorj-operator-metrics")

        def executor_pods() -> list[dict]:
            out = k8s_cluster.kubectl("get", "pods", "-n", namespace, "-l", f"{STRATEGY_LABEL}=alpha",
                                      "-o", "json").stdout
            return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

        pods = executor_pods()
        assert len(pods) == 2, [p["metadata"]["name"] for p in pods]  # examples/tradingstrategy.yaml: replicas 2
        for pod in pods:
            name = pod["metadata"]["name"]
            assert pod["spec"]["nodeName"] == DEFAULT_NODE_NAME, f"{name} is not on the real node"
            statuses = {c["name"]: c for c in pod["status"]["containerStatuses"]}
            # the default pod: the executor, and the signer sidecar that alone mounts the vault key
            assert set(statuses) == {"executor", "signer"}, statuses
            assert all(c["ready"] and c["image"].endswith(image.split("/")[-1]) for c in statuses.values()), statuses
            mounts = {c["name"]: {m["name"] for m in c["volumeMounts"]} for c in pod["spec"]["containers"]}
            assert "vault" in mounts["signer"] and "vault" not in mounts["executor"], mounts
            # a real container: one process on this machine, started for this pod, as the image's user
            (pid,) = executor_processes(name)
            assert uid_of(pid) == EXECUTOR_UID
            pids.append(pid)
            logs = k8s_cluster.kubectl("logs", name, "-n", namespace).stdout
            assert "executor started" in logs and name in logs, logs[-2000:]

        # the host's Prometheus scrapes each executor pod by its IP (a route to the pod subnet, and the
        # executors' NetworkPolicy admitting the scraper's address), as an in-cluster Prometheus would
        assert_executor_pods_scraped(up.stdout, {p["status"]["podIP"] for p in pods})

        # deleting a pod kills its container; the Deployment's replacement runs on the node
        victim = pods[0]["metadata"]["name"]
        k8s_cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        wait_until(lambda: not executor_processes(victim), 90, "the deleted pod's executor process to end")

        def replaced() -> list[int]:
            current = [p for p in executor_pods() if p["metadata"]["name"] != victim]
            ready = [p for p in current if p["spec"].get("nodeName") == DEFAULT_NODE_NAME
                     and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))]
            return [pid for p in ready for pid in executor_processes(p["metadata"]["name"])] if len(ready) == 2 else []

        pids += wait_until(replaced, 120, "a Ready replacement pod with its own executor process")
        # Prometheus follows the replacement to its new address, as service discovery does in a cluster
        assert_executor_pods_scraped(up.stdout, {p["status"]["podIP"] for p in executor_pods()})
    finally:
        down = subprocess.run([xorj, "dev", "down"], env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    still = [pid for pid in pids if alive(pid)]
    assert not still, f"executors left running after `xorj dev down`: {still}"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert DEFAULT_NODE_NAME not in netns, "the demo's node must go with `down` (it started it)"
    assert k8s_cluster.local.is_running(), "down must not stop a cluster it did not start"


def assert_the_copy_loop_ran(stdout: str, k8s_cluster, namespace: str, state: Path) -> None:
    """`make demo`'s copy loop on the real node: the pool ranked the simulated leaders from their chain
    history alone with the steady one on top, the topN strategy follows it, and the watcher's copy of
    its swap was CONFIRMED by the strategy's executor pod."""
    from xorj.devenv.demo import POOL, TOP_N_STRATEGY
    from xorj.devenv.leaders import leader_wallets
    from xorj.domain.leaders import LeaderStyle
    from xorj.watcher.projection import SOURCE_LABEL

    def get(kind: str, name: str) -> dict:
        return json.loads(k8s_cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)

    styles = {w.pubkey: w.style for w in leader_wallets(state / "leaders", create=False)}
    pool = get("traderpool", POOL)
    ranks = sorted(pool["status"]["ranks"], key=lambda r: r["rank"])
    assert len(ranks) == len(styles) == 3, (ranks, styles)
    top = ranks[0]["wallet"]
    assert styles[top] is LeaderStyle.STEADY, [(styles.get(r["wallet"]), r["score"]) for r in ranks]
    strategy = get("tradingstrategy", TOP_N_STRATEGY)
    assert strategy["spec"]["topN"]["pool"] == POOL
    assert strategy["status"]["followedTraderCount"] == 1
    copies = json.loads(k8s_cluster.kubectl("get", "copytrades", "-n", namespace, "-l", f"{SOURCE_LABEL}=watcher",
                                            "-o", "json").stdout)["items"]
    confirmed = [c for c in copies if (c.get("status") or {}).get("phase") == "CONFIRMED"]
    assert confirmed, [((c.get("status") or {}).get("phase"), c["metadata"]["name"]) for c in copies]
    # the view `up` prints ends with the watcher's copy, CONFIRMED for the topN strategy
    printed = re.search(rf"copytrade\.trading\.xorj\.io/(\S+)\s+CONFIRMED\s+{TOP_N_STRATEGY}\s", stdout)
    assert printed, stdout
    (copy,) = [c for c in confirmed if c["metadata"]["name"] == printed.group(1)]
    assert copy["spec"]["strategy"] == TOP_N_STRATEGY and copy["spec"]["leadTrader"] == top, copy["spec"]
    for row in ("traderpool.trading.xorj.io/" + POOL, "tradingstrategy.trading.xorj.io/" + TOP_N_STRATEGY):
        assert row in stdout, stdout  # the printed view tells the loop's story


def assert_executor_pods_scraped(stdout: str, pod_ips: set[str], service: str = "alpha-executor") -> None:
    prometheus = re.search(r"Prometheus:\s+(http://\S+)", stdout)
    assert prometheus, stdout
    health: dict[str, str] = {}

    def all_up() -> bool:
        with urllib.request.urlopen(f"{prometheus.group(1)}/api/v1/targets", timeout=10) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
        health.clear()
        health.update({urllib.parse.urlsplit(t["scrapeUrl"]).hostname: f"{t['health']} {t['lastError']}"
                       for t in targets if t["labels"].get("service") == service})
        return set(health) == pod_ips and all(h.startswith("up") for h in health.values())

    try:
        wait_until(all_up, 90, f"Prometheus to scrape every pod of Service {service}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {service} targets: {health}, pods {sorted(pod_ips)}") from None


def assert_monitoring_scrapes_and_evaluates(stdout: str, state: Path) -> None:
    """The demo's Prometheus (its URL printed) scrapes the operator, the executors and the chain, up,
    and evaluates the chart's alert rules; Alertmanager answers; where alerts are received is printed."""
    prometheus = re.search(r"Prometheus:\s+(http://\S+)", stdout)
    alertmanager = re.search(r"Alertmanager:\s+(http://\S+)", stdout)
    assert prometheus and alertmanager, stdout
    assert f"Alerts received (one JSON line each): {state / 'monitoring' / 'alerts-received.jsonl'}" in stdout

    def get(url: str):
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def jobs_up() -> set[str]:
        targets = get(f"{prometheus.group(1)}/api/v1/targets")["data"]["activeTargets"]
        found = {t["scrapePool"].split("/")[2] if t["scrapePool"].startswith("serviceMonitor/") else t["scrapePool"]
                 for t in targets if t["health"] == "up"}
        return found if {"xorj-operator", "xorj-executors", "xorj-chain"} <= found else set()

    wait_until(jobs_up, 60, "Prometheus to scrape the operator, the executors and the chain")
    rules = {r["name"] for g in get(f"{prometheus.group(1)}/api/v1/rules")["data"]["groups"] for r in g["rules"]}
    assert {"XorjOperatorDown", "XorjCircuitBreakerOpen", "XorjExecutorDown"} <= rules
    assert isinstance(get(f"{alertmanager.group(1)}/api/v2/alerts"), list)

    # every dashboard panel's query parses and, after the demo's trades, returns data
    def answers() -> dict[str, list]:
        # what `xorj dev dashboard` runs; a query Prometheus refuses raises, naming its panel
        return {f"{q.panel} {q.ref}": run_query(prometheus.group(1), q).series for q in dashboard_queries()}

    empty: list[str] = []

    def all_with_data() -> dict[str, list]:
        found = answers()
        empty[:] = [key for key, result in found.items()
                    if not result and key.rsplit(" ", 1)[0] not in EMPTY_WHEN_ALL_CONFIRM | WATCHER_PANELS]
        return {} if empty else found

    try:
        wait_until(all_with_data, 90, "every dashboard query to return data")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still empty: {empty}") from None


def test_dev_up_with_executor_processes_confirms_trades_and_dev_down_stops_everything(
        k8s_cluster, tmp_path: Path) -> None:
    namespace = f"demo-{secrets.token_hex(3)}"
    state = tmp_path / "demo"
    # the copy loop runs with executor processes in tests/integration/devenv/test_demo_loop.py
    env = {**os.environ, "XORJ_DEMO_STATE_DIR": str(state), "XORJ_DEMO_NAMESPACE": namespace,
           "XORJ_DEMO_EXECUTORS": "processes", "XORJ_DEMO_LOOP": "0"}
    xorj = str(Path(sys.executable).parent / "xorj")
    try:
        up = subprocess.run([xorj, "dev", "up"], env=env, capture_output=True, text=True, timeout=1500)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-4000:]}"
        # the kubectl view, every demo trade CONFIRMED, and how to see it again
        lines = [line for line in up.stdout.splitlines() if "-demo-" in line]
        assert len(lines) == 3 and all("CONFIRMED" in line for line in lines), up.stdout
        assert f"-n {namespace} get copytrades" in up.stdout
        for step in ("toolchain", "cluster", "ledger", "chain", "node", "chart", "operator", "executors",
                     "monitoring", "trades"):
            assert step in up.stderr, f"no progress line for {step}"
        assert_monitoring_scrapes_and_evaluates(up.stdout, state)

        # each executor pod is backed by one live local process
        pods = json.loads(k8s_cluster.kubectl("get", "pods", "-n", namespace, "-l",
                                              "app.kubernetes.io/component=executor", "-o", "json").stdout)["items"]
        assert pods
        runtime = json.loads((state / "pod-runtime" / "pods.json").read_text())
        assert set(runtime) == {f"{namespace}/{p['metadata']['name']}" for p in pods}
        assert all(entry["pid"] and alive(entry["pid"]) for entry in runtime.values())

        # terminating a pod terminates its executor; the replacement pod gets a new one
        victim = pods[0]["metadata"]["name"]
        victim_pid = runtime[f"{namespace}/{victim}"]["pid"]
        k8s_cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        wait_until(lambda: not alive(victim_pid), 90, "the deleted pod's executor process to end")

        def replaced():
            current = json.loads((state / "pod-runtime" / "pods.json").read_text())
            return (len(current) == len(pods) and f"{namespace}/{victim}" not in current
                    and all(e["pid"] and alive(e["pid"]) for e in current.values()))

        wait_until(replaced, 90, "a process for the replacement pod")
        pids = [e["pid"] for e in json.loads((state / "pod-runtime" / "pods.json").read_text()).values()]
        demo = json.loads((state / "demo.json").read_text())
        pids += [p["pid"] for p in demo["processes"].values()]
    finally:
        down = subprocess.run([xorj, "dev", "down"], env=env, capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    still = [pid for pid in pids if alive(pid)]
    assert not still, f"left running after `xorj dev down`: {still}"
    assert k8s_cluster.local.is_running(), "down must not stop a cluster it did not start"
