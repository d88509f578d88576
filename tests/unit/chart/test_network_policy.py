"""NetworkPolicies: executors reach only DNS, the ledger, the RPC and the swap API."""

from __future__ import annotations

from tests.unit.chart.helm import named, of_kind, render, template


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def executor_pod_labels() -> dict:
    """The labels of an executor pod, as the operator builds its Deployment."""
    from xorj.controller.tradingstrategy import desired

    return desired.pod_labels("demo")


def copyable_executor_labels() -> dict:
    """What anyone who may create pods in a watched namespace can put on a pod of theirs: the executor
    labels without the ledger-client label (which the chart's admission policy keeps to the operator)."""
    from xorj.controller.tradingstrategy import desired

    return desired.labels("demo")


def test_executor_policy_selects_the_operators_executor_pods() -> None:
    policy = named(render(), "NetworkPolicy", "xorj-executors")
    assert selects(policy["spec"]["podSelector"], executor_pod_labels())
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_executor_egress_is_dns_ledger_rpc_and_swap_api_only() -> None:
    documents = render("networkPolicy.rpc.cidrs={198.51.100.0/24}", "networkPolicy.rpc.ports={8899}",
                       "networkPolicy.swapApi.cidrs={203.0.113.7/32}", "networkPolicy.swapApi.ports={8080}")
    egress = named(documents, "NetworkPolicy", "xorj-executors")["spec"]["egress"]
    assert len(egress) == 4
    dns, ledger, rpc, swap = egress
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    ledger_pod = named(documents, "StatefulSet", "xorj-postgresql")["spec"]["template"]["metadata"]["labels"]
    assert selects(ledger["to"][0]["podSelector"], ledger_pod)
    assert ledger["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert rpc == {"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}], "ports": [{"protocol": "TCP", "port": 8899}]}
    assert swap == {"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    for rule in egress:
        assert rule.get("to"), "an egress rule without `to` would allow every destination"


def test_external_ledger_peers_come_from_values() -> None:
    documents = render("postgresql.enabled=false", "ledger.existingSecret=pg-app",
                       "ledger.podSelector.cnpg\\.io/cluster=pg", "ledger.namespaceSelector.team=db")
    ledger = named(documents, "NetworkPolicy", "xorj-executors")["spec"]["egress"][1]
    assert ledger["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "pg"}},
                             "namespaceSelector": {"matchLabels": {"team": "db"}}}]
    assert not [p for p in of_kind(documents, "NetworkPolicy") if p["metadata"]["name"] == "xorj-ledger"]


def test_ledger_accepts_only_the_operator_and_executors() -> None:
    documents = render("watchNamespaces={a,b}")
    policy = named(documents, "NetworkPolicy", "xorj-ledger")
    assert policy["spec"]["egress"] == []
    (rule,) = policy["spec"]["ingress"]
    operator_pod = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["metadata"]["labels"]
    peers = rule["from"]
    assert selects(peers[0]["podSelector"], operator_pod)
    assert [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers[1:]] == ["a", "b"]
    assert all(selects(p["podSelector"], executor_pod_labels()) for p in peers[1:])


def test_ledger_admits_executors_by_the_label_only_the_operator_sets() -> None:
    from xorj.controller.tradingstrategy import desired

    documents = render("watchNamespaces={a,b}")
    peers = named(documents, "NetworkPolicy", "xorj-ledger")["spec"]["ingress"][0]["from"][1:]
    assert peers
    for peer in peers:
        assert peer["podSelector"]["matchLabels"][desired.LEDGER_CLIENT_LABEL] == "true"
        assert not selects(peer["podSelector"], copyable_executor_labels())
    # the same label name the admission policy guards
    policy = named(documents, "ValidatingAdmissionPolicy", "xorj-xorj-ledger-client")
    labelled = next(v for v in policy["spec"]["variables"] if v["name"] == "labelled")["expression"]
    assert f"'{desired.LEDGER_CLIENT_LABEL}' in variables.pod.metadata.labels" in labelled


def test_every_watched_namespace_gets_an_executor_policy() -> None:
    documents = render("watchNamespaces={a,b}")
    assert {p["metadata"]["namespace"] for p in of_kind(documents, "NetworkPolicy")
            if p["metadata"]["name"] == "xorj-executors"} == {"a", "b"}


def test_policies_can_be_turned_off() -> None:
    assert not of_kind(render("networkPolicy.enabled=false"), "NetworkPolicy")


def test_the_demo_opens_executor_egress_to_exactly_its_relayed_endpoints() -> None:
    from xorj.devenv.demo import ChainInfo, PodEndpoints

    chain = ChainInfo("http://198.51.100.9:8899", "http://198.51.100.9:8080/swap/v1", "U", "S", "V", b"[]")
    endpoints = PodEndpoints("postgresql://postgres@198.51.100.9:5433/xorj", chain)
    values = endpoints.chart_values()[1::2]  # without the "--set"s
    documents = render("postgresql.enabled=false", "ledger.existingSecret=xorj-ledger", *values)
    _, ledger, rpc, swap = named(documents, "NetworkPolicy", "xorj-executors")["spec"]["egress"]
    host = [{"ipBlock": {"cidr": "198.51.100.9/32"}}]
    assert ledger == {"to": host, "ports": [{"protocol": "TCP", "port": 5433}]}
    assert rpc == {"to": host, "ports": [{"protocol": "TCP", "port": 8899}]}
    assert swap == {"to": host, "ports": [{"protocol": "TCP", "port": 8080}]}


def test_the_demo_admits_exactly_its_host_scraper_to_executor_metrics() -> None:
    from xorj.devenv.demo import ChainInfo, PodEndpoints

    chain = ChainInfo("http://198.51.100.9:8899", "http://198.51.100.9:8080/swap/v1", "U", "S", "V", b"[]")
    values = PodEndpoints("postgresql://postgres@198.51.100.9:5433/xorj", chain,
                          scraper_ip="198.51.100.1").chart_values()[1::2]
    documents = render("postgresql.enabled=false", "ledger.existingSecret=xorj-ledger", *values)
    (ingress,) = named(documents, "NetworkPolicy", "xorj-executors")["spec"]["ingress"]
    assert ingress["from"] == [{"ipBlock": {"cidr": "198.51.100.1/32"}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 9102}]
    # without a real node (executor processes), the chart's default scraper stays
    default = PodEndpoints("postgresql://postgres@198.51.100.9:5433/xorj", chain).chart_values()[1::2]
    (ingress,) = named(render("postgresql.enabled=false", "ledger.existingSecret=xorj-ledger", *default),
                       "NetworkPolicy", "xorj-executors")["spec"]["ingress"]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}


def test_executor_egress_has_no_open_default_and_says_which_value_is_missing() -> None:
    # The chart's own defaults (the test helper's endpoint values left out): no CIDR is implied.
    result = template(endpoints=("networkPolicy.swapApi.cidrs={192.0.2.20/32}",))
    assert result.returncode != 0
    assert "networkPolicy.rpc.cidrs is required while networkPolicy.enabled" in result.stderr
    result = template(endpoints=("networkPolicy.rpc.cidrs={192.0.2.10/32}",))
    assert result.returncode != 0
    assert "networkPolicy.swapApi.cidrs is required while networkPolicy.enabled" in result.stderr
    # Turned off, nothing is demanded (and NOTES warns).
    assert template("networkPolicy.enabled=false", endpoints=()).returncode == 0


def test_no_rule_allows_every_peer() -> None:
    documents = render("watchNamespaces={a,b}")
    for policy in of_kind(documents, "NetworkPolicy"):
        if policy["metadata"]["name"] == "xorj-operator" and not policy["spec"]["egress"][-1].get("to"):
            # The API server's address differs per cluster: with networkPolicy.apiServer.cidrs unset the
            # operator may reach any address on the API server's ports (documented in values.yaml).
            policy = {**policy, "spec": {**policy["spec"], "egress": policy["spec"]["egress"][:-1]}}
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{policy['metadata']['name']}: an egress rule without `to` allows everything"
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: an ingress rule without `from` admits every pod"


def test_every_product_pod_is_under_a_default_deny() -> None:
    documents = render("watchNamespaces={a,b}")
    denies = {p["metadata"]["namespace"]: p["spec"] for p in of_kind(documents, "NetworkPolicy")
              if p["metadata"]["name"] == "xorj-default-deny"}
    assert set(denies) == {"xorj", "a", "b"}
    for spec in denies.values():
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
        assert not spec.get("ingress") and not spec.get("egress")
        assert selects(spec["podSelector"], executor_pod_labels())
    for kind in ("Deployment", "StatefulSet"):
        for workload in of_kind(documents, kind):
            assert selects(denies["xorj"]["podSelector"], workload["spec"]["template"]["metadata"]["labels"]), (
                f"{kind} {workload['metadata']['name']} escapes the default deny")


def test_metrics_are_scraped_only_from_the_named_namespaces() -> None:
    documents = render()
    for name in ("xorj-executors", "xorj-operator"):
        (rule,) = [r for r in named(documents, "NetworkPolicy", name)["spec"]["ingress"]]
        assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    closed = render(values={"networkPolicy.metricsFrom": []})
    assert named(closed, "NetworkPolicy", "xorj-executors")["spec"]["ingress"] == []
    refused = template(values={"networkPolicy.metricsFrom": [{"podSelector": {}}]})
    assert refused.returncode != 0 and "namespaceSelector" in refused.stderr
    # an address block admits a scraper outside the pods, but never the whole internet
    for cidr in ("0.0.0.0/0", "10.0.0.0/4"):
        refused = template(values={"networkPolicy.metricsFrom": [{"ipBlock": {"cidr": cidr}}]})
        assert refused.returncode != 0 and "cidr" in refused.stderr, cidr
