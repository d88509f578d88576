"""The chart's side of the chain reconciler: its settings reach the operator (the RPC URL from a Secret
when it carries a key), the operator may reach the RPC only when the reconciler is on, and there is
an alert per finding class and one for a reconciler that stopped."""

from __future__ import annotations

import re

from tests.unit.chart.helm import named, render
from xorj.domain.reconciliation import FindingClass

RPC = ("networkPolicy.rpc.cidrs={198.51.100.0/24}", "networkPolicy.rpc.ports={8899}")


def operator_env(*values: str) -> dict[str, dict]:
    deployment = named(render(*values), "Deployment", "xorj-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_reconciler_is_off_without_an_rpc_url():
    env = operator_env()
    assert "XORJ_OPERATOR_RECONCILE_RPC_URL" not in env
    assert env["XORJ_OPERATOR_RECONCILE_INTERVAL_SECONDS"]["value"] == "60"
    egress = named(render(*RPC), "NetworkPolicy", "xorj-operator")["spec"]["egress"]
    assert not any(rule.get("to") == [{"ipBlock": {"cidr": "198.51.100.0/24"}}] for rule in egress)


def test_reconciler_settings_and_rpc_egress():
    env = operator_env("operator.reconcile.rpcUrl=https://rpc.example", "operator.reconcile.intervalSeconds=30",
                       "operator.reconcile.graceSlots=64", *RPC)
    assert env["XORJ_OPERATOR_RECONCILE_RPC_URL"]["value"] == "https://rpc.example"
    assert env["XORJ_OPERATOR_RECONCILE_INTERVAL_SECONDS"]["value"] == "30"
    assert env["XORJ_OPERATOR_RECONCILE_GRACE_SLOTS"]["value"] == "64"
    egress = named(render("operator.reconcile.rpcUrl=https://rpc.example", *RPC), "NetworkPolicy",
                   "xorj-operator")["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}],
            "ports": [{"protocol": "TCP", "port": 8899}]} in egress


def test_a_keyed_rpc_url_comes_from_a_secret():
    env = operator_env("operator.reconcile.rpcUrlSecret.name=rpc-with-key", *RPC)
    assert env["XORJ_OPERATOR_RECONCILE_RPC_URL"] == {
        "name": "XORJ_OPERATOR_RECONCILE_RPC_URL",
        "valueFrom": {"secretKeyRef": {"name": "rpc-with-key", "key": "url"}}}


def test_one_alert_per_finding_class_and_one_for_a_stopped_reconciler():
    rule = named(render("metrics.prometheusRule.enabled=true"), "PrometheusRule", "xorj")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    by_class = {}
    for name, alert in alerts.items():
        match = re.search(r'xorj_reconcile_open_findings\{[^}]*class="([a-z_]+)"', alert["expr"])
        if match:
            by_class[match.group(1)] = name
    assert set(by_class) == {c.metric_label for c in FindingClass}
    stopped = alerts["XorjReconcilerNotRunning"]["expr"]
    assert "xorj_reconcile_enabled" in stopped and "xorj_reconcile_last_success_timestamp_seconds" in stopped
    assert "> 900" in stopped
