"""The NetworkPolicy ledger partition: which rules go, which stay, which policies it touches."""

from __future__ import annotations

import pytest

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


def test_the_executors_dsn_names_a_service_or_an_address() -> None:
    at = netpol.dsn_target
    assert at("postgresql://u@xorj-postgresql.hadev.svc:5432/xorj?target_session_attrs=read-write", "alpha") == \
        netpol.DsnTarget("xorj-postgresql.hadev.svc", 5432, "xorj-postgresql", "hadev")
    assert at("host=xorj-postgresql.hadev.svc.cluster.local dbname=x", "alpha").service == "xorj-postgresql"
    assert at("postgresql://u@ledger/x", "alpha") == netpol.DsnTarget("ledger", 5432, "ledger", "alpha")
    assert at("postgresql://u@192.0.2.7:5433/x", "alpha") == netpol.DsnTarget("192.0.2.7", 5433, None, None)
    assert at("postgresql://u@db.example.com:6432/x", "alpha").service is None


def _slice(port_name: str, port: int, *addresses: str) -> dict:
    return {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


def test_the_ledger_peer_is_what_the_service_translates_to_not_the_probes_relay() -> None:
    """The chart's HA ledger on `xorj dev up --ledger ha`: the executors' DSN names the primary Service
    (5432), whose EndpointSlice holds the leader's pod, port 5432; the probes' DSN is a host relay's
    port, which no executor rule names (the cut narrowed to it left the ledger rule in place)."""
    where = netpol.dsn_target("postgresql://xorj-postgresql.hadev.svc:5432/xorj", "hadev")
    service = {"spec": {"ports": [{"name": "postgresql", "port": 5432, "targetPort": 5432}]}}
    assert netpol.ledger_peer(where, service, [_slice("postgresql", 5432, "10.88.0.12")]) == ([5432], ["10.88.0.12"])
    # a host ledger behind a selector-less Service whose EndpointSlice is a relay on the node
    host = netpol.dsn_target("postgresql://xorj-dev-ledger:5432/xorj", "alpha")
    relay = {"spec": {"ports": [{"name": "postgresql", "port": 5432, "targetPort": 41234}]}}
    assert netpol.ledger_peer(host, relay, [_slice("postgresql", 41234, "10.88.0.1"), _slice("other", 9, "x")]) == \
        ([41234], ["10.88.0.1"])
    # an address: its own port
    ip = netpol.dsn_target("postgresql://192.0.2.7:5433/x", "alpha")
    assert netpol.ledger_peer(ip, None, []) == ([5433], ["192.0.2.7"])
    with pytest.raises(ValueError, match="no endpoint"):
        netpol.ledger_peer(where, service, [])
    with pytest.raises(ValueError, match="no port 5432"):
        netpol.ledger_peer(where, {"spec": {"ports": [{"name": "x", "port": 1}]}}, [])


def test_the_ha_charts_executor_policy_loses_the_ledger_members_at_5432() -> None:
    spec = named(render("ledger.mode=ha", "networkPolicy.rpc.ports={8899}", "networkPolicy.swapApi.ports={8080}"),
                 "NetworkPolicy", "xorj-executors")["spec"]
    cut = netpol.without_ledger(spec, 5432)
    assert [{p["port"] for p in rule["ports"]} for rule in cut["egress"]] == [{53}, {8899}, {8080}]
    # narrowed to a relay's port instead (what the action did before), the ledger rule stayed
    assert netpol.without_ledger(spec, 41234)["egress"] == spec["egress"]


def test_the_cut_policy_excepts_every_address_of_the_ledger() -> None:
    (rule,) = netpol.cut_policy(EXECUTOR, ["10.88.0.12", "10.88.0.13"])["spec"]["egress"]
    assert rule["to"][0]["ipBlock"]["except"] == ["10.88.0.12/32", "10.88.0.13/32"]
