"""The local environment's alerting path, end to end, without a node: the toolchain's Prometheus
scrapes a process serving the operator's real metrics registry (through the static configuration
rendered from the chart's ServiceMonitors), evaluates the chart's PrometheusRule groups, and
Alertmanager delivers the alert to the local webhook receiver: firing when the operator reports an
unknown transaction (XorjReconcileUnknownTransaction), resolved once it no longer does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.toolchain import toolchain_binary
from tests.polling import wait_for
from tests.unit.chart.helm import CHART, helm
from xorj.chaos import marks
from xorj.chaos.probes import alert_fired
from xorj.chaos.target import resolve
from xorj.devenv.demo import start_process
from xorj.devenv.monitoring import Monitoring, Target, received_alerts, template_args
from xorj.devenv.postgres import free_port

NAMESPACE = "xorj"
ALERT = "XorjReconcileUnknownTransaction"

# The operator's own metrics (xorj.controller.metrics, with the reconciler's), served as its /metrics
# does; the open unknown-transaction findings are read from a file so the test can raise and clear them.
OPERATOR_METRICS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from xorj.controller import metrics  # noqa: F401 - registers the operator's metrics
    from xorj.reconciler import metrics as reconciler

    findings = Path(sys.argv[2])

    async def serve(_):
        reconciler.OPEN_FINDINGS.labels("unknown_transaction").set(float(findings.read_text() or 0))
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
""")


def rendered_chart() -> str:
    result = helm(*template_args("xorj", CHART, NAMESPACE, "xorj-ledger"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Monitoring, dict[str, Any], Path]]:
    findings = tmp_path / "findings"
    findings.write_text("0")
    exporter_port = free_port()
    exporter = subprocess.Popen([sys.executable, "-c", OPERATOR_METRICS, str(exporter_port), str(findings)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    monitoring = Monitoring(tmp_path / "monitoring", lambda name: Path(toolchain_binary(name)))
    ports = {"prometheus": free_port(), "alertmanager": free_port(), "alert-receiver": free_port()}
    records: dict[str, Any] = {}
    try:
        monitoring.configure(rendered_chart(), ports)
        monitoring.set_targets("operator", [Target(f"127.0.0.1:{exporter_port}", NAMESPACE,
                                                   "xorj-xorj-operator-operator-metrics", "operator-0")])
        monitoring.start(records, ports, start_process)
        yield monitoring, records, findings
    finally:
        Monitoring.stop(records)
        exporter.terminate()
        exporter.wait(10)


def test_an_alert_fires_reaches_the_receiver_and_resolves(stack) -> None:
    monitoring, records, findings = stack
    prometheus = f"http://127.0.0.1:{records['prometheus']['port']}"
    alertmanager = f"http://127.0.0.1:{records['alertmanager']['port']}"

    def logs() -> str:
        return "\n".join(f"--- {n}\n{Path(r['log']).read_text()[-1500:]}" for n, r in records.items())

    # the chart's rule groups are loaded, and the operator's target is scraped with its cluster labels
    groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert ALERT in {r["name"] for g in groups for r in g["rules"]}
    wait_for(lambda: [t for t in get_json(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
                      if t["health"] == "up" and t["labels"]["namespace"] == NAMESPACE], 60,
             "the operator target to be up", interval=0.5, describe=logs)
    time.sleep(6)
    assert not [a for a in received_alerts(monitoring.received_path) if a["alertname"] == ALERT], \
        "the alert arrived before its condition held"

    # the chaos probe asks Alertmanager while the fault is injected, then cleared
    chaos = {"ledger_dsn": "postgresql://not-used-by-this-probe/x", "alertmanager_url": alertmanager,
             "run_id": f"monitoring-{time.monotonic_ns()}"}
    target = resolve(chaos)
    probe: dict[str, Any] = {}
    asking = threading.Thread(target=lambda: probe.update(alert_fired(ALERT, "CHAIN_RECONCILIATION", 90, 120, chaos)))
    marks.fault(target, "CHAIN_RECONCILIATION")
    findings.write_text("1")
    asking.start()
    fired = wait_for(lambda: [a for a in received_alerts(monitoring.received_path)
                              if a["alertname"] == ALERT and a["status"] == "firing"], 90,
                     "the alert to reach the receiver", interval=0.5, describe=logs)
    assert fired[0]["labels"]["severity"] == "critical"
    assert fired[0]["annotations"]["runbook_url"].endswith(f"/{ALERT}.md")
    assert [a for a in get_json(f"{alertmanager}/api/v2/alerts") if a["labels"]["alertname"] == ALERT]

    findings.write_text("0")
    marks.write(target, "cleared")
    wait_for(lambda: [a for a in received_alerts(monitoring.received_path)
                      if a["alertname"] == ALERT and a["status"] == "resolved"], 120,
             "the alert to be resolved at the receiver", interval=0.5, describe=logs)
    asking.join(150)
    assert probe["ok"] and probe["fired"] and probe["resolved"], probe
    # fired within a few scrape and evaluation intervals (2 s and 5 s here) of the fault; resolved likewise
    assert 0 <= probe["fired_after_s"] <= 30 and 0 <= probe["resolved_after_s"] <= 60, probe


def test_the_alert_probe_says_when_alertmanager_never_saw_the_alert(stack) -> None:
    _, records, _ = stack
    chaos = {"ledger_dsn": "postgresql://not-used-by-this-probe/x", "run_id": f"monitoring-{time.monotonic_ns()}",
             "alertmanager_url": f"http://127.0.0.1:{records['alertmanager']['port']}"}
    marks.fault(resolve(chaos), "RPC_FAILURE")
    verdict = alert_fired("XorjCircuitBreakerOpen", "RPC_FAILURE", 3, 3, chaos)
    assert (verdict["ok"], verdict["fired"], verdict["checked"]) == (False, False, True)
    no_alertmanager = {**chaos, "alertmanager_url": None}
    verdict = alert_fired("XorjCircuitBreakerOpen", "RPC_FAILURE", 3, 3, no_alertmanager)
    assert (verdict["ok"], verdict["checked"]) == (False, False) and "no Alertmanager" in verdict["error"]
