"""The chart's Grafana dashboard: shipped as a ConfigMap for Grafana's sidecar behind a value; its JSON
validates against the structure of the dashboard schema version it declares; every panel's PromQL
parses (promtool) and names metrics the code exports.

No Grafana dashboard JSON Schema can be had offline (Grafana keeps its schema as CUE kinds in its own
repository), so DASHBOARD_SCHEMA_V39 below is a minimal structural schema written here from Grafana's
dashboard model for schemaVersion 39 (Grafana 10.4 / 11): the fields Grafana needs to load a
dashboard and its panels, with their types."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from tests.fixtures.promtool import promtool
from tests.unit.chart.dashboard import DASHBOARD, dashboard, panel_queries
from tests.unit.chart.helm import render

_DATASOURCE = {"type": "object", "required": ["type", "uid"],
               "properties": {"type": {"const": "prometheus"}, "uid": {"type": "string"}}}
_GRID = {"type": "object", "required": ["x", "y", "w", "h"], "additionalProperties": False,
         "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 23},
                        "y": {"type": "integer", "minimum": 0},
                        "w": {"type": "integer", "minimum": 1, "maximum": 24},
                        "h": {"type": "integer", "minimum": 1}}}
_TARGET = {"type": "object", "required": ["refId", "expr", "datasource"],
           "properties": {"refId": {"type": "string", "pattern": "^[A-Z]$"}, "expr": {"type": "string", "minLength": 1},
                          "datasource": _DATASOURCE, "legendFormat": {"type": "string"},
                          "format": {"enum": ["time_series", "table", "heatmap"]}}}
_PANEL = {"type": "object", "required": ["id", "type", "title", "gridPos"],
          "properties": {"id": {"type": "integer", "minimum": 1},
                         "type": {"enum": ["row", "timeseries", "stat", "heatmap", "text", "gauge", "table", "bargauge"]},
                         "title": {"type": "string", "minLength": 1}, "description": {"type": "string"},
                         "gridPos": _GRID, "datasource": _DATASOURCE,
                         "targets": {"type": "array", "items": _TARGET},
                         "fieldConfig": {"type": "object", "required": ["defaults", "overrides"]},
                         "options": {"type": "object"}, "collapsed": {"type": "boolean"},
                         "panels": {"type": "array"}},
          "allOf": [{"if": {"properties": {"type": {"enum": ["timeseries", "stat", "heatmap", "gauge", "table",
                                                                   "bargauge"]}}},
                     "then": {"required": ["targets", "datasource"], "properties": {"targets": {"minItems": 1}}}}]}
DASHBOARD_SCHEMA_V39 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "time", "templating"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"const": 39},
        "version": {"type": "integer"},
        "editable": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "timezone": {"type": "string"},
        "refresh": {"type": "string"},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {"type": "object", "required": ["list"], "properties": {"list": {"type": "array", "items": {
            "type": "object", "required": ["name", "type"],
            "properties": {"name": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                           "type": {"enum": ["query", "datasource", "custom", "constant", "interval", "textbox"]}}}}}},
        "annotations": {"type": "object"},
        "panels": {"type": "array", "minItems": 1, "items": _PANEL},
    },
}


def test_the_dashboard_validates_against_the_schema_of_the_version_it_declares() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39, "a new schemaVersion needs its structural schema here"
    jsonschema.validate(board, DASHBOARD_SCHEMA_V39)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    used = set(re.findall(r"\$\{?([a-zA-Z_]\w*)", json.dumps(board["panels"])))
    assert used - {"__rate_interval", "__range"} <= variables, "a panel uses an undefined variable"


def test_the_schema_check_catches_a_broken_dashboard() -> None:
    board = dashboard()
    board["panels"][1]["gridPos"]["w"] = 30
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(board, DASHBOARD_SCHEMA_V39)


def test_every_panel_query_parses(tmp_path) -> None:
    queries = panel_queries()
    assert len(queries) >= 15
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)]}]}
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "queries.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _exported_names() -> set[str]:
    from xorj.controller import metrics  # noqa: F401 - registers the operator's metrics
    from xorj.executor.metrics import ExecutorMetrics
    from xorj.ledger.pool_metrics import LedgerPoolCollector

    class FakePoolLedger:
        """Stands in for a connected Ledger: the collector reads only its pool counters."""

        def pool_stats(self) -> dict[str, int]:
            return {"pool_size": 1, "pool_available": 1, "pool_max": 4, "requests_waiting": 0}

    from xorj.watcher.metrics import WatcherMetrics

    executor = ExecutorMetrics("ns/s", CollectorRegistry())
    executor.registry.register(LedgerPoolCollector("xorj_executor", FakePoolLedger()))
    operator_pool = CollectorRegistry()
    operator_pool.register(LedgerPoolCollector("xorj_operator", FakePoolLedger()))
    names = set()
    for registry in (REGISTRY, executor.registry, operator_pool, WatcherMetrics().registry):
        for family in registry.collect():
            # a labelled metric with no child yet has no samples: name its series from its type
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
            names |= {family.name + suffix for suffix in suffixes}
    return names


def test_every_metric_a_panel_reads_is_exported() -> None:
    exported = _exported_names()
    used = {name for _, _, expr in panel_queries() for name in re.findall(r"\bxorj_[a-z_]+\b", expr)}
    assert used and used <= exported, f"not exported by any process: {sorted(used - exported)}"


def test_the_dashboard_ships_as_a_sidecar_configmap_only_when_enabled() -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    (configmap,) = [d for d in render("metrics.grafanaDashboard.enabled=true",
                                      "metrics.grafanaDashboard.annotations.grafana_folder=xorj")
                    if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "xorj"}
    assert json.loads(configmap["data"]["xorj-operator.json"]) == json.loads(DASHBOARD.read_text())


def test_the_watcher_has_lag_detection_latency_and_skipped_signal_panels() -> None:
    queries = {title: expr for title, _, expr in panel_queries()}
    assert "xorj_watcher_poll_lag_seconds" in queries["Watcher lag"]
    assert "xorj_watcher_detection_seconds_bucket" in queries["Watcher detection latency (p50, p90, p99)"]
    assert "by (reason)" in queries["Skipped signals by reason"]
    assert "xorj_watcher_signals_skipped_total" in queries["Skipped signals by reason"]
    assert not [p for p in dashboard()["panels"] if p["type"] == "text" and "watcher" in p["title"].lower()]
