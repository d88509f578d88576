"""The operator's live /metrics follow Prometheus' conventions, as `promtool check metrics` judges
them, after it admitted a CopyTrade on the real API server and ledger."""

from __future__ import annotations

import urllib.request

import pytest

from tests.fixtures.promtool import metric_lint_problems
from tests.polling import wait_for

from .conftest import Kubectl
from .manifests import copytrade, signature, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def test_live_operator_metrics_pass_promtool_lint(kube: Kubectl, operators) -> None:
    operator = operators()
    kube.apply(strategy("linted"))
    kube.apply(copytrade("lint-1", "linted", signature("lint-lead-1")))
    wait_for(lambda: ((kube.get("copytrade", "lint-1") or {}).get("status") or {}).get("phase") == "PENDING",
             60, "lint-1 admitted")
    wait_for(lambda: operator.metric("xorj_operator_admissions_total") >= 1, 30, "the admission counted")

    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    exposition = urllib.request.urlopen(url, timeout=5).read().decode()

    assert "xorj_operator_reconciles_total{" in exposition  # the lint saw real samples
    assert metric_lint_problems(exposition) == ""
