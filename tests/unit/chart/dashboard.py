"""The chart's Grafana dashboard, as tests read it (the queries come from xorj.devenv.dashboard, which
`xorj dev dashboard` runs too), and which panels may rightly be empty after a given run."""

from __future__ import annotations

from typing import Any

from xorj.devenv.dashboard import DASHBOARD, dashboard
from xorj.devenv.dashboard import panel_queries as _panel_queries

__all__ = ["DASHBOARD", "EMPTY_WHEN_ALL_CONFIRM", "WATCHER_PANELS", "dashboard", "panel_queries"]

# Panels whose queries may rightly return nothing after a run in which every trade was CONFIRMED (no
# failure, no alert)
EMPTY_WHEN_ALL_CONFIRM = {"Failed trades by reason", "RPC and swap API errors, swaps refused",
                          "Alerts delivered as Events"}
# The watcher's panels: empty where no watcher runs (the executor-only integration run), and skipped
# signals may rightly be none
WATCHER_PANELS = {"Watcher lag", "Watcher detection latency (p50, p90, p99)", "Skipped signals by reason"}


def panel_queries(board: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL with variables replaced) of every query of every panel."""
    return [(q.panel, q.ref, q.expr) for q in _panel_queries(board)]
