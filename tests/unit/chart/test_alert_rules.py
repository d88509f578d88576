"""The chart's alert rules, checked and unit-tested with promtool; every alert has a runbook.

The PrometheusRule is rendered with default values (release and namespace "xorj"), its groups are
written out as a Prometheus rule file, and `promtool check rules` and `promtool test rules` run on
it with the test files in tests/unit/chart/alerts/ (one per alert: it fires, it does not fire, and
it is still pending just before its `for:` duration has passed).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.promtool import promtool
from tests.unit.chart.helm import CHART, REPO, named, render

ALERT_TESTS = Path(__file__).parent / "alerts"
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_BASE = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]["runbookBaseUrl"]


def _alerts(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


@pytest.fixture(scope="module")
def rule() -> dict[str, Any]:
    return named(render("metrics.prometheusRule.enabled=true"), "PrometheusRule", "xorj")


@pytest.fixture(scope="module")
def rule_dir(rule, tmp_path_factory) -> Path:
    """rules.yaml (the rendered groups) next to copies of the promtool test files."""
    directory = tmp_path_factory.mktemp("alert-rules")
    (directory / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    for test_file in ALERT_TESTS.glob("*.test.yaml"):
        shutil.copy(test_file, directory / test_file.name)
    return directory


def test_promtool_check_rules_accepts_the_rendered_rules(rule_dir):
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", "rules.yaml", cwd=rule_dir)

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_every_alert_pass(rule_dir):
    files = sorted(p.name for p in rule_dir.glob("*.test.yaml"))
    assert files
    result = promtool("test", "rules", *files, cwd=rule_dir)

    assert result.returncode == 0, result.stdout + result.stderr


def _alert_cases(test_file: Path) -> list[list[tuple[str, int, bool]]]:
    """Per test group of a promtool file: (alertname, eval seconds, fires) of each expectation."""
    groups = []
    for group in yaml.safe_load(test_file.read_text())["tests"]:
        cases = []
        for case in group.get("alert_rule_test", []):
            cases.append((case["alertname"], _seconds(case["eval_time"]), bool(case.get("exp_alerts"))))
        groups.append(cases)
    return groups


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", str(duration)))


def test_every_alert_is_tested_firing_not_firing_and_pending_until_its_for_duration(rule):
    alerts = _alerts(rule)
    groups = [g for f in sorted(ALERT_TESTS.glob("*.test.yaml")) for g in _alert_cases(f)]
    problems = []
    for name, alert in alerts.items():
        mine = [[(t, fires) for n, t, fires in g if n == name] for g in groups]
        mine = [g for g in mine if g]
        if not any(fires for g in mine for _, fires in g):
            problems.append(f"{name}: no test where it fires")
        if not any(not any(fires for _, fires in g) for g in mine):
            problems.append(f"{name}: no test group where it never fires")
        # `for:` is tested when one group expects nothing at t and the alert at most one
        # evaluation interval (1m) later, after the condition has held for the whole duration
        pending_then_firing = any(
            not early_fires and late_fires and 0 < late - early <= 60
            for g in mine for early, early_fires in g for late, late_fires in g)
        if alert.get("for") and not pending_then_firing:
            problems.append(f"{name}: no test that it is still pending 1m before it fires (for: {alert['for']})")
    assert not problems, "\n".join(problems)


def test_every_alert_has_summary_description_and_a_runbook_that_exists(rule):
    problems = []
    for name, alert in _alerts(rule).items():
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{name}: annotation {key} is missing or empty")
        if annotations.get("runbook_url") != f"{RUNBOOK_BASE}/{name}.md":
            problems.append(f"{name}: runbook_url {annotations.get('runbook_url')!r} is not <base>/{name}.md")
        page = RUNBOOKS / f"{name}.md"
        if not page.is_file():
            problems.append(f"{name}: {page.relative_to(REPO)} does not exist")
            continue
        text = page.read_text()
        for section in ("## What it means", "## Confirm", "## Mitigate", "## Escalate"):
            if section not in text:
                problems.append(f"{name}: runbook lacks a '{section}' section")
        if "```promql" not in text:
            problems.append(f"{name}: runbook gives no PromQL to confirm it")
        for brake in ("pause", "resume", "halt"):
            if brake not in text.lower():
                problems.append(f"{name}: runbook does not say how to {brake}")
    assert not problems, "\n".join(problems)


def test_runbook_base_url_is_a_value(rule):
    mirrored = named(render("metrics.prometheusRule.enabled=true",
                            "metrics.prometheusRule.runbookBaseUrl=https://runbooks.example.org/xorj/"),
                     "PrometheusRule", "xorj")
    urls = {a["annotations"]["runbook_url"] for a in _alerts(mirrored).values()}

    assert urls == {f"https://runbooks.example.org/xorj/{name}.md" for name in _alerts(rule)}


def test_no_runbook_without_an_alert(rule):
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}

    assert pages <= set(_alerts(rule)), f"runbooks for alerts the chart does not have: {sorted(pages - set(_alerts(rule)))}"
