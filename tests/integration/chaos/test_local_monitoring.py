"""The local chaos environment evaluates the chart's own alert rules, rendered by the real helm, with its
windows shortened as its leases and breaker are: every `for:` capped at 10 s, the watcher's lag
threshold at 10 s and the fault window at 30 s. (That the alerts then fire and resolve within an
experiment is what tests/integration/chaos/test_suite.py checks; the chart's own durations are checked
by the promtool unit tests in tests/unit/chart/alerts.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from xorj.chaos import localenv
from xorj.devenv.monitoring import duration_seconds

CHART_RULES = Path(__file__).resolve().parents[3] / "charts/xorj-operator/templates/prometheusrule.yaml"
FAULT_WINDOW_ALERTS = ("XorjRpcErrors", "XorjOnChainFailures", "XorjUnsafeSwapRefused")


def test_the_rules_use_the_chaos_windows_and_the_charts_expressions(tmp_path):
    stack, _ports, _watcher_service = localenv.LocalChaosEnv(tmp_path)._configure_monitoring()
    rules = {rule["alert"]: rule for group in yaml.safe_load(stack.rules_path.read_text())["groups"]
             for rule in group["rules"] if "alert" in rule}
    for name in FAULT_WINDOW_ALERTS:
        expr = rules[name]["expr"]
        windows = re.findall(r"\[(\w+)\]|offset (\w+)", expr)
        assert windows and {a or b for a, b in windows} == {localenv.FAULT_WINDOW}, (name, expr)
    assert re.search(rf"> {localenv.WATCHER_LAG_SECONDS}\b", rules["XorjWatcherLagging"]["expr"])
    capped = [duration_seconds(rule["for"]) for rule in rules.values() if "for" in rule]
    assert capped and max(capped) <= duration_seconds(localenv.MONITORING_MAX_FOR)
    # the rules are the chart's: every alert of its PrometheusRule is there
    assert set(rules) == set(re.findall(r"- alert: (\w+)", CHART_RULES.read_text()))
