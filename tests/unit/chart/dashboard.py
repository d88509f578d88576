"""The chart's Grafana dashboard, as tests read it: its panels' PromQL with Grafana's variables
replaced by what they stand for when every value is selected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[3] / "charts" / "xorj-operator" / "dashboards" / "xorj-operator.json"
# $namespace and $strategy with "All" selected (allValue .*); Grafana's interval variables at 1m, 1h
VARIABLES = {"$namespace": ".*", "$strategy": ".*", "$__rate_interval": "1m", "$__range": "1h"}
# Panels whose queries may rightly return nothing after a run in which every trade was CONFIRMED (no
# failure, no alert)
EMPTY_WHEN_ALL_CONFIRM = {"Failed trades by reason", "RPC and swap API errors, swaps refused",
                          "Alerts delivered as Events"}
# The watcher's panels: empty where no watcher runs (the executor-only integration run), and skipped
# signals may rightly be none
WATCHER_PANELS = {"Watcher lag", "Watcher detection latency (p50, p90, p99)", "Skipped signals by reason"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def concrete(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def panel_queries(board: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL with variables replaced) of every query of every panel."""
    board = board or dashboard()
    found = []
    for panel in board["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                found.append((nested["title"], target["refId"], concrete(target["expr"])))
    return found
