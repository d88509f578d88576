"""The chart's Grafana dashboard without Grafana: each panel's PromQL, with Grafana's variables
replaced by what they stand for when every value is selected, run against a Prometheus (the local
environment's). ``xorj dev dashboard`` prints the answers; the tests run the same queries."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xorj.devenv.demo import CHART
from xorj.errors import EnvironmentSetupError

DASHBOARD = CHART / "dashboards" / "xorj-operator.json"
# $namespace and $strategy with "All" selected (allValue .*); Grafana's interval variables at 1m, 1h
VARIABLES = {"$namespace": ".*", "$strategy": ".*", "$__rate_interval": "1m", "$__range": "1h"}
QUERY_SECONDS = 10


@dataclass(frozen=True)
class PanelQuery:
    panel: str  # the panel's title
    ref: str  # the query's refId within the panel
    expr: str  # PromQL, variables replaced


@dataclass(frozen=True)
class PanelAnswer:
    query: PanelQuery
    series: list[tuple[dict[str, str], str]]  # (labels, value) of each series of the instant query


def dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text())


def concrete(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def panel_queries(board: dict[str, Any] | None = None) -> list[PanelQuery]:
    """Every query of every panel (rows' nested panels included), in the dashboard's order."""
    board = board or dashboard()
    found = []
    for panel in board["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                found.append(PanelQuery(nested["title"], target["refId"], concrete(target["expr"])))
    return found


def run_query(prometheus: str, query: PanelQuery) -> PanelAnswer:
    """One instant query; a query Prometheus refuses is an error naming the panel."""
    url = f"{prometheus.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query.expr})}"
    try:
        with urllib.request.urlopen(url, timeout=QUERY_SECONDS) as response:  # noqa: S310 - a URL we were given
            answer = json.loads(response.read())
    except OSError as exc:
        raise EnvironmentSetupError(f"panel {query.panel!r} ({query.ref}): {prometheus} did not answer: {exc}") from exc
    if answer.get("status") != "success":
        raise EnvironmentSetupError(f"panel {query.panel!r} ({query.ref}): Prometheus refused the query: "
                                    f"{answer.get('error', answer)}")
    return PanelAnswer(query, [(item["metric"], item["value"][1]) for item in answer["data"]["result"]])


def render(answers: list[PanelAnswer], max_series: int = 4) -> list[str]:
    """A readable listing: each panel's query and its first series' values."""
    lines = []
    for answer in answers:
        lines.append(f"{answer.query.panel} [{answer.query.ref}]: {len(answer.series)} series")
        for labels, value in answer.series[:max_series]:
            shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("__name__", "instance", "job"))
            lines.append(f"    {value:>14}  {shown}")
        if len(answer.series) > max_series:
            lines.append(f"    ... {len(answer.series) - max_series} more")
    return lines
