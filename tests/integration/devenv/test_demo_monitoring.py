"""The demo's monitoring step on the local cluster and chain, without a node: `Demo._monitoring`
renders the chart, starts Prometheus, Alertmanager and the receiver, points Prometheus at the
operator (a process serving the operator's metrics registry stands in for `xorj operator`, which the
demo starts in step 7) and at the chain, the summary names the URLs and the receiver's file, and
`down` stops all three. (`tests/e2e/chart/test_dev_up.py` checks the same on a whole `xorj dev up`.)"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from xorj.devenv.demo import ChainInfo, Demo
from xorj.devenv.monitoring import PROCESS_NAMES
from xorj.devenv.postgres import free_port
from xorj.devenv.processes import process_running

pytestmark = [pytest.mark.cluster, pytest.mark.chain]

OPERATOR_METRICS = """
import sys
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from xorj.controller import metrics  # noqa: F401 - the operator's metrics
async def serve(_):
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
app = web.Application()
app.router.add_get("/metrics", serve)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_the_demo_scrapes_the_operator_and_chain_and_down_stops_monitoring(k8s_cluster, local_chain,
                                                                           tmp_path: Path) -> None:
    namespace = f"demo-mon-{secrets.token_hex(3)}"
    said: list[str] = []
    demo = Demo(root=tmp_path / "demo", progress=said.append, namespace=namespace, executors="processes")
    demo.cluster = k8s_cluster.local
    port = free_port()
    operator = subprocess.Popen([sys.executable, "-c", OPERATOR_METRICS, str(port)], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chain = ChainInfo(rpc_url=local_chain.rpc_url, swap_api_url=local_chain.swap_api_url, input_mint="",
                      output_mint="", vault_public_key="", vault_keypair=b"")
    data: dict[str, Any] = {"processes": {"operator": {"pid": operator.pid, "marker": "xorj.controller",
                                                       "log": "", "name": "operator", "metrics_port": port}}}
    demo.state.save(data)
    try:
        demo._monitoring(data, chain)
        summary = demo.monitoring_summary()
        prometheus = summary[0].split()[1]
        assert prometheus.startswith("http://127.0.0.1:") and summary[1].startswith("Alertmanager: http://")
        assert summary[2].endswith(str(tmp_path / "demo" / "monitoring" / "alerts-received.jsonl"))

        def up_jobs() -> dict[str, dict[str, str]]:
            targets = get(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
            return {t["labels"]["job"]: t["labels"] for t in targets if t["health"] == "up"}

        deadline = time.monotonic() + 60
        while not {"xorj-operator-metrics", "xorj-chain"} <= set(up_jobs()) and time.monotonic() < deadline:
            time.sleep(1)
        jobs = up_jobs()
        assert jobs["xorj-operator-metrics"]["namespace"] == namespace, jobs
        assert jobs["xorj-chain"]["namespace"] == namespace, jobs
        answer = get(f"{prometheus}/api/v1/query?query=xorj_chain_slot")["data"]["result"]
        assert answer and float(answer[0]["value"][1]) > 0
        rules = get(f"{prometheus}/api/v1/rules")["data"]["groups"]
        fors = {r["name"]: r.get("duration", 0) for g in rules for r in g["rules"] if r["type"] == "alerting"}
        assert fors and max(fors.values()) <= 10, f"the development cap on for: was not applied: {fors}"
        pids = [int(demo.state.load()["processes"][name]["pid"]) for name in PROCESS_NAMES]
    finally:
        demo.down()
    assert not [pid for pid in pids if process_running(pid)], "monitoring left running after down"
    assert operator.poll() is not None or not process_running(operator.pid)
