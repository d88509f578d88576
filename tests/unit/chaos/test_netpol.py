"""The NetworkPolicy ledger partition: which rules go, which stay, which policies it touches."""

from __future__ import annotations

from tests.unit.chart.helm import named, render
from xorj.chaos import netpol
from xorj.controller.tradingstrategy.desired import labels

EXECUTOR = labels("demo")


def test_the_charts_executor_policy_loses_the_ledger_and_keeps_dns_rpc_and_swap_api() -> None:
    documents = render("postgresql.enabled=false", "ledger.existingSecret=l", "ledger.cidrs={192.0.2.7/32}",
                       "ledger.port=5433", "networkPolicy.rpc.ports={8899}", "networkPolicy.swapApi.ports={8080}")
    spec = named(documents, "NetworkPolicy", "xorj-executors")["spec"]
    assert netpol.selects(spec["podSelector"], EXECUTOR) and netpol.limits_egress(spec)
    cut = netpol.without_ledger(spec, 5433)
    kept = [{p["port"] for p in rule["ports"]} for rule in cut["egress"]]
    assert kept == [{53}, {8899}, {8080}]
    assert len(spec["egress"]) == 4, "the original is left as it was (restore needs it)"
    assert cut["ingress"] == spec["ingress"]


def test_rules_that_could_reach_the_ledger_port_all_go() -> None:
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},  # every port
        {"ports": [{"protocol": "TCP", "port": 5000, "endPort": 6000}]},  # a range over it
        {"ports": [{"protocol": "TCP", "port": "postgres"}]},  # a named port: could be it
        {"ports": [{"protocol": "TCP", "port": 443}]},
    ]}
    assert netpol.without_ledger(spec, 5432)["egress"] == [{"ports": [{"protocol": "TCP", "port": 443}]}]


def test_policies_are_matched_by_labels_and_expressions() -> None:
    assert netpol.selects({}, EXECUTOR)  # every pod
    assert not netpol.selects({"matchLabels": {"app.kubernetes.io/component": "operator"}}, EXECUTOR)
    assert netpol.selects({"matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In",
                                                 "values": ["executor"]}]}, EXECUTOR)
    assert not netpol.selects({"matchExpressions": [{"key": "app.kubernetes.io/component",
                                                     "operator": "DoesNotExist"}]}, EXECUTOR)
    assert not netpol.limits_egress({"podSelector": {}, "policyTypes": ["Ingress"]})
    assert netpol.limits_egress({"podSelector": {}, "egress": []})


def test_with_no_egress_policy_the_cut_allows_all_but_the_ledger() -> None:
    policy = netpol.cut_policy(EXECUTOR, "192.0.2.7")
    (rule,) = policy["spec"]["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["192.0.2.7/32"]}}]
    assert policy["spec"]["podSelector"]["matchLabels"] == EXECUTOR
