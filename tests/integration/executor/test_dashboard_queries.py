"""The chart's Grafana dashboard against a real Prometheus after real trades: the toolchain's
Prometheus scrapes two `xorj executor` processes that trade on the local chain, and a process serving
the operator's own metrics registry (its ledger pool connected to the same ledger), through the
configuration rendered from the chart's ServiceMonitors; every panel's query (variables at "All")
is accepted by Prometheus' /api/v1/query and, except the failure and alert panels and the watcher's
(no watcher runs here), returns data.
(`tests/e2e/chart/test_dev_up.py` runs the same queries against the demo's Prometheus.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.toolchain import toolchain_binary
from tests.integration.executor.harness import (
    admit,
    executor_env,
    executors,
    wait_terminal,
)
from tests.unit.chart.dashboard import EMPTY_WHEN_ALL_CONFIRM, WATCHER_PANELS, panel_queries
from tests.unit.chart.helm import CHART, helm
from xorj.devenv import dashboard as board
from xorj.devenv.demo import start_process
from xorj.devenv.monitoring import Monitoring, Target, template_args
from xorj.devenv.postgres import free_port

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

USDC = 10**6
OPERATOR_METRICS = textwrap.dedent("""
    import sys
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from xorj.controller import metrics
    from xorj.ledger import Ledger

    metrics.LEDGER_POOL.ledger = Ledger.connect(sys.argv[2], apply_migrations=False, max_size=8)

    async def serve(_):
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
""")


def test_every_dashboard_query_returns_data_after_trades(local_chain, ledger, ledger_dsn, scenario,
                                                         tmp_path: Path) -> None:
    rendered = helm(*template_args("xorj", CHART, "xorj", "xorj-ledger"))
    assert rendered.returncode == 0, rendered.stderr
    monitoring = Monitoring(tmp_path / "monitoring", lambda name: Path(toolchain_binary(name)))
    ports = {"prometheus": free_port(), "alertmanager": free_port(), "alert-receiver": free_port()}
    monitoring.configure(rendered.stdout, ports)
    operator_port = free_port()
    operator = subprocess.Popen([sys.executable, "-c", OPERATOR_METRICS, str(operator_port), ledger_dsn],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records: dict[str, Any] = {}
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    try:
        with executors(2, env, tmp_path) as running:
            monitoring.set_targets("operator", [Target(f"127.0.0.1:{operator_port}", "xorj", "xorj-operator-metrics",
                                                       "operator-0")])
            monitoring.set_targets("executor", [Target(f"127.0.0.1:{p.port()}", "xorj", "demo-executor",
                                                       f"executor-{i}") for i, p in enumerate(running)])
            monitoring.start(records, ports, start_process)
            prometheus = f"http://127.0.0.1:{ports['prometheus']}"
            time.sleep(6)  # a scrape before the trades, so the counters' first increase is seen
            ids = admit(ledger, scenario, 4, 2 * USDC + 7, notional_usd=Decimal(2))
            trades = wait_terminal(ledger, ids, 90)
            assert all(t.state.value == "CONFIRMED" for t in trades), trades

            empty: list[str] = []
            deadline = time.monotonic() + 90
            while True:
                empty.clear()
                for panel in board.panel_queries():  # a query Prometheus refuses raises, naming its panel
                    answer = board.run_query(prometheus, panel)
                    if not answer.series and panel.panel not in EMPTY_WHEN_ALL_CONFIRM | WATCHER_PANELS:
                        empty.append(f"{panel.panel} {panel.ref}")
                if not empty or time.monotonic() > deadline:
                    break
                time.sleep(3)
            assert not empty, f"dashboard queries with no data after trades: {empty}"

            # `xorj dev dashboard` runs the same queries and prints what each returned
            printed = subprocess.run([str(Path(sys.executable).parent / "xorj"), "dev", "dashboard", "--prometheus", prometheus,
                                      "-o", "json"], capture_output=True, text=True, timeout=120)
            assert printed.returncode == 0, printed.stderr
            listed = {(a["panel"], a["ref"]): a["series"] for a in json.loads(printed.stdout)}
            assert set(listed) == {(title, ref) for title, ref, _ in panel_queries()}
            assert listed[("Trades finished per second, by state", "A")], listed
            unreachable = subprocess.run([str(Path(sys.executable).parent / "xorj"), "dev", "dashboard", "--prometheus",
                                          f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=120)
            assert unreachable.returncode == 1 and "did not answer" in unreachable.stderr, unreachable.stderr
    finally:
        Monitoring.stop(records)
        operator.terminate()
        operator.wait(10)
