"""Benchmark: 1,000 CopyTrades (and optionally thousands of Vaults) through the operator on the local
cluster and a real Postgres.

Prints: the time from the first apply until every CopyTrade's status shows a terminal phase that
equals the ledger's; the operator's memory (RSS at start, peak, at the end, and per object);
Kubernetes API requests per trade (the operator's own requests exactly, from its metrics, and all
requests on trading.xorj.io and Events seen by the API server, from its /metrics); its handler
retries for "ledger unavailable" (its log) and the most handlers waiting at once for a ledger
connection (its xorj_operator_ledger_pool_waiting_requests, sampled each second).

``--vaults N`` first creates N Vaults of a strategy of their own ("fleet", every key in one bound
Secret) and waits until each is Registered, so the operator holds both kinds at once; the CopyTrades
go to a one-vault strategy (a CopyTrade of the fleet would fan out into N trades: the ledger's and
bench_executor's subject, not the operator's memory). ``--memory-profile FRAMES`` runs the operator
with its allocation trace on (XORJ_OPERATOR_MEMORY_PROFILE_FRAMES) and prints the largest holders
by file and by line when all are mirrored; the trace costs memory of its own, so take the RSS
figures from a run without it.

The executor's part is played by a thread that claims and confirms trades through the real ledger
as soon as they are admitted (the chain's speed is bench_executor's subject, not this one's), so
the figure is the operator's: admission, mirroring and status writes.

    python bench/bench_operator.py [--count 1000] [--vaults 0] [--memory-profile 0]
    python bench/bench_operator.py --count 10000 --vaults 1000     # the platform's object counts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from solders.keypair import Keypair

from tests.e2e.operator.conftest import OperatorProcess
from tests.e2e.operator.ledger_driver import LedgerDriver
from tests.e2e.operator.manifests import copytrade, secret, signature, strategy, vault
from xorj.devenv.cluster import LocalCluster
from xorj.devenv.postgres import PostgresServer
from xorj.ledger import Ledger


def say(msg: str) -> None:
    print(f"[bench_operator] {msg}", file=sys.stderr, flush=True)


def apiserver_requests(cluster: LocalCluster) -> dict[str, float]:
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    out: dict[str, float] = {"xorj": 0.0, "events": 0.0}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        value = float(line.rsplit(" ", 1)[1])
        if 'group="trading.xorj.io"' in line:
            out["xorj"] += value
        elif re.search(r'resource="events"', line):
            out["events"] += value
    return out


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    """The process's peak (VmHWM) or current (VmRSS) resident set, from the kernel."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def create_in_chunks(cluster: LocalCluster, namespace: str, items: list[dict], chunk: int) -> None:
    # create, not apply: one POST per object (apply would GET first), so the figure is the
    # operator's, not kubectl's
    for offset in range(0, len(items), chunk):
        cluster.kubectl("create", "-n", namespace, "-f", "-",
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items[offset:offset + chunk]}))


def column(cluster: LocalCluster, namespace: str, kind: str, path: str) -> list[str]:
    """One field of every object of ``kind`` (a paged list; only that column is printed and parsed)."""
    out = cluster.kubectl("get", kind, "-n", namespace, "--no-headers", "-o", f"custom-columns=X:{path}",
                          timeout=300).stdout
    return out.split()


def print_memory_profile(report: dict) -> None:
    if not report.get("tracing"):
        print("memory profile: not tracing")
        return
    print(f"memory profile (tracemalloc, after a gc): {report['traced_kib'] / 1024:.1f} MiB traced now, "
          f"{report['traced_peak_kib'] / 1024:.1f} MiB at the traced peak")
    print("  largest holders by file:")
    for row in report["by_file"]:
        print(f"    {row['kib'] / 1024:8.2f} MiB {row['blocks']:9d} blocks  {row['where']}")
    print("  largest holders by line:")
    for row in report["by_line"]:
        print(f"    {row['kib'] / 1024:8.2f} MiB {row['blocks']:9d} blocks  {row['where']}")
    print("  largest holders by stack (allocating line first):")
    for row in report["by_stack"]:
        print(f"    {row['kib'] / 1024:8.2f} MiB {row['blocks']:9d} blocks")
        for frame in row["where"]:
            print(f"        {frame}")


def histogram_quantiles(metrics_text: str, name: str, quantiles: tuple[float, ...]) -> dict[float, float]:
    """Upper bucket bounds holding each quantile of a Prometheus histogram."""
    buckets = []
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    out = {}
    for q in quantiles:
        out[q] = next((b for b, c in buckets if total and c >= q * total), float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000, help="CopyTrades")
    parser.add_argument("--vaults", type=int, default=0, help="Vaults of a strategy of their own, created first")
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--memory-profile", type=int, default=0, metavar="FRAMES",
                        help="trace the operator's allocations with this many frames and print the largest holders")
    args = parser.parse_args()
    # `timeout` sends SIGTERM: exit through the finally below, which stops the operator (its own
    # session: it would outlive us) and the Postgres server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    cluster = LocalCluster()
    say("cluster up")
    cluster.up(progress=say)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    namespace = f"bench-{os.getpid()}"
    cluster.kubectl("create", "namespace", namespace)

    server = PostgresServer.temporary()
    server.start()
    dsn = server.create_database("bench_ledger")
    ledger = Ledger.connect(dsn, max_size=8)
    env = {"XORJ_OPERATOR_COPYTRADE_RESYNC_SECONDS": "30"}
    if args.memory_profile:
        env["XORJ_OPERATOR_MEMORY_PROFILE_FRAMES"] = str(args.memory_profile)
    op = OperatorProcess(namespace=namespace, dsn=dsn, log_path=Path(f"/tmp/bench-operator-{os.getpid()}.log"),
                         extra_env=env)
    stop = threading.Event()
    queue_peak = [0.0]

    def sample_ledger_queue() -> None:
        # handlers waiting for a ledger connection (their turn): what the operator holds while the
        # ledger is its bottleneck
        while not stop.wait(1.0):
            with contextlib.suppress(OSError):
                queue_peak[0] = max(queue_peak[0], op.metric("xorj_operator_ledger_pool_waiting_requests"))

    try:
        op.wait_started()
        threading.Thread(target=sample_ledger_queue, daemon=True).start()
        rss_start = rss_kib(op.proc.pid, "VmRSS")
        vaults_time = 0.0
        if args.vaults:
            fleet_keys = [str(Keypair().pubkey()) for _ in range(args.vaults)]
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
                secret("vault-keypair", {"keypair.json": "[]"}, bound_to=("fleet",))))
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
                secret("fleet-keys", {"placeholder": "[]"}, bound_to=("fleet",))))
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(strategy("fleet")))
            vstart = time.monotonic()
            create_in_chunks(cluster, namespace, [vault(f"v-{i}", "fleet", key, secret_name="fleet-keys",
                                                        secretKey=f"{key}.json")
                                                  for i, key in enumerate(fleet_keys)], args.chunk)
            while True:
                registered = sum(1 for r in column(cluster, namespace, "vaults",
                                                    ".status.conditions[?(@.type==\"Registered\")].status")
                                 if r == "True")
                if registered == args.vaults:
                    break
                if time.monotonic() - vstart > 1800:
                    raise SystemExit(f"only {registered}/{args.vaults} Vaults registered after 30 minutes")
                time.sleep(2)
            vaults_time = time.monotonic() - vstart
            say(f"{args.vaults} Vaults registered in {vaults_time:.1f}s")
        rss_vaults = rss_kib(op.proc.pid, "VmRSS")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(strategy("bench")))
        driver = LedgerDriver(ledger, f"{namespace}/bench")

        def executor() -> None:
            while not stop.is_set():
                trades = driver.claim_all()
                for t in trades:
                    driver.confirm(t.trade_id, driver.submit(t.trade_id))
                if not trades:
                    time.sleep(0.1)

        threading.Thread(target=executor, daemon=True).start()
        before = apiserver_requests(cluster)
        own_before = op.metric("xorj_operator_kube_requests_total")
        start = time.monotonic()
        create_in_chunks(cluster, namespace, [copytrade(f"b-{i}", "bench", signature(f"bench-{os.getpid()}-{i}"))
                                              for i in range(args.count)], args.chunk)
        applied = time.monotonic() - start
        say(f"applied {args.count} CopyTrades in {applied:.1f}s")
        polls = 0
        while True:
            polls += 1
            done = column(cluster, namespace, "copytrades", ".status.phase").count("CONFIRMED")
            if done == args.count:
                break
            if time.monotonic() - start > 1800:
                raise SystemExit(f"only {done}/{args.count} terminal after 30 minutes")
            time.sleep(2)
        elapsed = time.monotonic() - start
        peak, rss_end = rss_kib(op.proc.pid, "VmHWM"), rss_kib(op.proc.pid, "VmRSS")
        counts = ledger.counts_by_state()
        after = apiserver_requests(cluster)
        own = op.metric("xorj_operator_kube_requests_total") - own_before
        bench_own = args.count / args.chunk + polls * (1 + args.count // 500)  # this script's creates and pages
        objects = args.count + args.vaults
        print(f"copytrades: {args.count}, vaults: {args.vaults}")
        print(f"ledger counts: { {k.value: v for k, v in counts.items()} }")
        if args.vaults:
            print(f"vaults: {args.vaults} created and Registered in {vaults_time:.1f} s "
                  f"({args.vaults / vaults_time:.1f} vaults/s)")
        print(f"time to all terminal and mirrored: {elapsed:.1f} s from the first apply "
              f"({args.count / elapsed:.1f} trades/s); applying alone took {applied:.1f} s, "
              f"the last status followed {elapsed - applied:.1f} s after the last apply")
        print(f"operator RSS: {rss_start / 1024:.1f} MiB started, {rss_vaults / 1024:.1f} MiB with the vaults, "
              f"{rss_end / 1024:.1f} MiB at the end; peak {peak / 1024:.1f} MiB"
              + (" (allocation trace on: not the figure to compare)" if args.memory_profile else ""))
        print(f"operator memory per object: {(peak - rss_start) / objects:.1f} KiB of peak RSS above start-up "
              f"({objects} objects)" + (f"; {(rss_vaults - rss_start) / args.vaults:.1f} KiB per Vault"
                                         if args.vaults else ""))
        print(f"operator's own API requests per trade (status PATCH, GET, DELETE): {own / args.count:.2f}")
        xorj_requests = after["xorj"] - before["xorj"] - bench_own
        print(f"API server requests on trading.xorj.io per trade (all clients but the bench's own "
              f"creates and polls): {xorj_requests / args.count:.2f}")
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).read().decode()
        q = histogram_quantiles(text, "xorj_operator_mirror_latency_seconds", (0.5, 0.99))
        print(f"ledger NOTIFY -> CopyTrade status PATCH latency: p50 <= {q[0.5]} s, p99 <= {q[0.99]} s")
        print(f"Event requests per trade: {(after['events'] - before['events']) / args.count:.2f}")
        retries = op.log_text().count("failed temporarily: ledger unavailable")
        print(f"operator ledger: {retries} handler retries for \"ledger unavailable\" (its log); at most "
              f"{queue_peak[0]:.0f} handlers waiting for a connection (sampled each second)")
        if args.memory_profile:
            url = f"http://127.0.0.1:{op.metrics_port}/debug/memory?top=25"
            print_memory_profile(json.loads(urllib.request.urlopen(url, timeout=300).read()))
    finally:
        stop.set()
        op.stop()
        for kind in ("copytrades", "vaults", "tradingstrategies"):
            # one kubectl for all objects of a kind (thousands of kubectl runs would take minutes)
            listed = cluster.kubectl("get", kind, "-n", namespace, "-o", "json", check=False, timeout=300).stdout
            if listed.strip():
                cluster.kubectl("patch", "-n", namespace, "-f", "-", "--type=merge",
                                "-p", '{"metadata":{"finalizers":null}}', input=listed, check=False, timeout=600)
        ledger.close()
        server.destroy()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


if __name__ == "__main__":
    main()
