"""The chart's CRDs are the generated ones; its alerts use metrics the code really exports."""

from __future__ import annotations

import importlib
import re

import yaml

from tests.unit.chart.helm import CHART, REPO, named, render

# Files the chart may carry beyond the repository's crds/ (none: kopf's peering CRDs are in crds/ too).
CHART_ONLY_CRDS: set[str] = set()
REQUIRED_ALERTS = {"XorjTradeFailureRateHigh", "XorjCircuitBreakerOpen", "XorjLedgerUnreachable",
                   "XorjExecutorDown", "XorjOperatorWatchStale", "XorjReconcileUnknownTransaction",
                   "XorjReconcileUnrecordedLanding", "XorjReconcileConfirmedNotFinal", "XorjReconcilerNotRunning",
                   # one per fault class of the chaos suite (issue 16): RPC failure, on-chain failure,
                   # kill switch, unsafe transaction refused, watcher lag
                   "XorjRpcErrors", "XorjOnChainFailures", "XorjKillSwitchEngaged", "XorjUnsafeSwapRefused",
                   "XorjWatcherLagging"}
# Metrics exported by Kubernetes itself (kube-state-metrics, Prometheus' scrape health).
EXTERNAL_METRICS = {"kube_deployment_status_replicas_available", "kube_deployment_spec_replicas", "up"}


def test_chart_crds_equal_the_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "crds/ is empty: run `xorj crds`"
    stale = sorted(n for n in generated if shipped.get(n) != generated[n])
    extra = sorted(set(shipped) - set(generated) - CHART_ONLY_CRDS)
    assert not stale and not extra, (
        f"charts/xorj-operator/crds/ differs from crds/ (stale: {stale}, extra: {extra}); "
        "copy them: cp crds/*.yaml charts/xorj-operator/crds/")


def test_kopf_peering_crd_ships_namespaced_and_keeps_status() -> None:
    crds = [d for p in (CHART / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    (crd,) = [d for d in crds if d["metadata"]["name"] == "kopfpeerings.kopf.dev"]
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["group"] == "kopf.dev"
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True


def exported_metric_names() -> set[str]:
    """Sample names the executor and the watcher (their own registry per process) and the operator
    (module-level metrics in the default registry) really expose. A labelled histogram has no sample
    before its first observation: its _count, _sum and _bucket series count as exposed."""
    from prometheus_client import REGISTRY

    from xorj.executor.metrics import ExecutorMetrics
    from xorj.watcher.metrics import WatcherMetrics

    importlib.import_module("xorj.controller.metrics")
    names: set[str] = set()
    importlib.import_module("xorj.controller.tradingstrategy.reconcile")
    for registry in (ExecutorMetrics("demo").registry, WatcherMetrics().registry, REGISTRY):
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_count", "_sum", "_bucket"))
    return names


def test_prometheus_rule_has_the_alerts_and_uses_real_metrics() -> None:
    rule = named(render("metrics.prometheusRule.enabled=true"), "PrometheusRule", "xorj")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert REQUIRED_ALERTS <= set(alerts)
    exported = exported_metric_names()
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        used = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[|\)|$|\s)", alert["expr"]))
        metrics = {m for m in used if m.startswith("xorj_")} | (used & EXTERNAL_METRICS)
        assert metrics, f"{name} uses no metric"
        missing = {m for m in metrics if m.startswith("xorj_")} - exported
        assert not missing, f"{name} uses metrics nobody exports: {sorted(missing)}"


def test_monitoring_is_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert "PrometheusRule" not in kinds and "ServiceMonitor" not in kinds


WATCHER_SETS = ("watcher.enabled=true", "watcher.rpcUrl=https://rpc.example",
                "watcher.priceApiUrl=https://price.example/price/v3")


def test_the_watcher_service_monitor_selects_the_watcher_service_and_its_metrics_port() -> None:
    documents = render("metrics.serviceMonitor.enabled=true", *WATCHER_SETS)
    (monitor,) = [d for d in documents if d["kind"] == "ServiceMonitor"
                  and d["metadata"]["labels"].get("app.kubernetes.io/component") == "watcher"]
    (service,) = [d for d in documents if d["kind"] == "Service"
                  and d["metadata"]["labels"].get("app.kubernetes.io/component") == "watcher"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_no_watcher_service_monitor_without_the_watcher() -> None:
    monitors = [d for d in render("metrics.serviceMonitor.enabled=true") if d["kind"] == "ServiceMonitor"]
    assert monitors and all(m["metadata"]["labels"].get("app.kubernetes.io/component") != "watcher"
                            for m in monitors)
