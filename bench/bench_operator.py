"""Benchmark: 1,000 CopyTrades through the operator on the local cluster and a real Postgres.

Prints: the time from the first apply until every CopyTrade's status shows a terminal phase that
equals the ledger's; the operator's peak RSS; Kubernetes API requests per trade (the operator's own
requests exactly, from its metrics, and all requests on trading.xorj.io and Events seen by the API
server, from its /metrics).

The executor's part is played by a thread that claims and confirms trades through the real ledger
as soon as they are admitted (the chain's speed is bench_executor's subject, not this one's), so
the figure is the operator's: admission, mirroring and status writes.

    python bench/bench_operator.py [--count 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.operator.conftest import OperatorProcess
from tests.e2e.operator.ledger_driver import LedgerDriver
from tests.e2e.operator.manifests import copytrade, signature, strategy
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


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


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
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()

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
    op = OperatorProcess(namespace=namespace, dsn=dsn, log_path=Path(f"/tmp/bench-operator-{os.getpid()}.log"),
                         extra_env={"XORJ_OPERATOR_COPYTRADE_RESYNC_SECONDS": "30"})
    stop = threading.Event()
    try:
        op.wait_started()
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
        for offset in range(0, args.count, args.chunk):
            items = [copytrade(f"b-{i}", "bench", signature(f"bench-{os.getpid()}-{i}"))
                     for i in range(offset, min(args.count, offset + args.chunk))]
            # create, not apply: one POST per object (apply would GET first), so the figure is the
            # operator's, not kubectl's
            cluster.kubectl("create", "-n", namespace, "-f", "-",
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        applied = time.monotonic() - start
        say(f"applied {args.count} CopyTrades in {applied:.1f}s")
        peak = 0
        while True:
            peak = max(peak, peak_rss_kib(op.proc.pid))
            items = json.loads(cluster.kubectl("get", "copytrades", "-n", namespace, "-o", "json",
                                               timeout=120).stdout)["items"]
            done = sum(1 for o in items if (o.get("status") or {}).get("phase") == "CONFIRMED")
            if done == args.count:
                break
            if time.monotonic() - start > 1800:
                raise SystemExit(f"only {done}/{args.count} terminal after 30 minutes")
            time.sleep(2)
        elapsed = time.monotonic() - start
        counts = ledger.counts_by_state()
        after = apiserver_requests(cluster)
        own = op.metric("xorj_operator_kube_requests_total") - own_before
        bench_own = args.count + elapsed / 2  # this script's applies and polls, roughly
        print(f"copytrades: {args.count}")
        print(f"ledger counts: { {k.value: v for k, v in counts.items()} }")
        print(f"time to all terminal and mirrored: {elapsed:.1f} s from the first apply "
              f"({args.count / elapsed:.1f} trades/s); applying alone took {applied:.1f} s, "
              f"the last status followed {elapsed - applied:.1f} s after the last apply")
        print(f"operator peak RSS: {peak / 1024:.1f} MiB")
        print(f"operator's own API requests per trade (status PATCH, GET, DELETE): {own / args.count:.2f}")
        xorj_requests = after["xorj"] - before["xorj"] - bench_own
        print(f"API server requests on trading.xorj.io per trade (all clients but the bench's own "
              f"creates and polls): {xorj_requests / args.count:.2f}")
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).read().decode()
        q = histogram_quantiles(text, "xorj_operator_mirror_latency_seconds", (0.5, 0.99))
        print(f"ledger NOTIFY -> CopyTrade status PATCH latency: p50 <= {q[0.5]} s, p99 <= {q[0.99]} s")
        print(f"Event requests per trade: {(after['events'] - before['events']) / args.count:.2f}")
    finally:
        stop.set()
        op.stop()
        for kind in ("copytrades", "tradingstrategies"):
            names = cluster.kubectl("get", kind, "-n", namespace, "-o", "name", check=False).stdout.split()
            for name in names:
                cluster.kubectl("patch", "-n", namespace, name, "--type=merge",
                                "-p", '{"metadata":{"finalizers":null}}', check=False)
        ledger.close()
        server.destroy()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


if __name__ == "__main__":
    main()
