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


def test_the_demo_runs_the_charts_own_operator_deployment_on_the_real_node() -> None:
    """Issue 17 section 3: `xorj dev up` installs the operator as `helm install` does, from the chart's
    Deployment: the image loaded into the node, on the real node, the ledger's CA mounted, the API
    server at the address its certificate names, reachable through the operator's NetworkPolicy."""
    from tests.unit.chart.helm import helm
    from xorj.devenv.demo import (
        CHART,
        LEDGER_CA_PATH,
        LEDGER_CA_SECRET,
        ChainInfo,
        PodEndpoints,
        operator_pod_dsn,
        operator_pod_values,
    )

    chain = ChainInfo("http://xorj-chain:8899", "http://xorj-swap-api:8080/swap/v1", "U" * 43, "S", "V", b"[]")
    relays = {"ledger": "192.0.2.2:41000", "rpc": "192.0.2.2:41001", "swapApi": "192.0.2.2:41002"}
    endpoints = PodEndpoints("postgresql://postgres@xorj-ledger:5432/xorj", chain, scraper_ip="192.0.2.1", relays=relays)
    values = operator_pod_values(image="localhost/xorj-operator:0.1.0-abc", api_host="192.0.2.2", api_port=6443,
                                 reconcile_rpc_url=chain.rpc_url, cash_mint=chain.input_mint,
                                 node_selector={"xorj.dev/node": "real"}, ledger_ca_secret=LEDGER_CA_SECRET)
    result = helm("template", "xorj", str(CHART), "--namespace", "demo", "--set", "postgresql.enabled=false",
                  "--set", "ledger.existingSecret=xorj-ledger", *endpoints.chart_values(), *values)
    assert result.returncode == 0, result.stderr
    documents = result.documents()
    pod = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "localhost/xorj-operator:0.1.0-abc" and container["imagePullPolicy"] == "Never"
    assert pod["nodeSelector"] == {"xorj.dev/node": "real"}
    assert {"key": "xorj.dev/executors", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod["tolerations"]
    assert env["KUBERNETES_SERVICE_HOST"] == "192.0.2.2" and env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["XORJ_OPERATOR_RECONCILE_RPC_URL"] == "http://xorj-chain:8899"
    assert env["XORJ_OPERATOR_EXECUTOR_IMAGE"] == "localhost/xorj-operator:0.1.0-abc"
    assert env["XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR"] == '{"xorj.dev/node":"real"}'
    ca_volume = next(v for v in pod["volumes"] if v["name"] == "ledger-ca")
    assert ca_volume["secret"]["secretName"] == LEDGER_CA_SECRET
    assert operator_pod_dsn(endpoints.dsn).endswith(f"?sslmode=verify-ca&sslrootcert={LEDGER_CA_PATH}")
    # its policy: the API server at that address and port, the ledger's and RPC's relays, the host's scraper
    policy = named(documents, "NetworkPolicy", "xorj-operator")["spec"]
    peers = [(rule["to"], rule["ports"]) for rule in policy["egress"]]
    relay = [{"ipBlock": {"cidr": "192.0.2.2/32"}}]
    assert (relay, [{"protocol": "TCP", "port": 6443}]) in peers
    assert (relay, [{"protocol": "TCP", "port": 41000}]) in peers and (relay, [{"protocol": "TCP", "port": 41001}]) in peers
    assert policy["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.0.2.1/32"}}]


def test_the_operator_pod_names_its_kopf_identity_so_kopf_never_looks_up_its_user() -> None:
    """The image's user (10001) has no passwd entry: without POD_ID, kopf's identity lookup
    (getpass.getuser) raised at start and the chart's operator pod crash-looped (found running it
    on the real node with `xorj dev up`)."""
    pod = named(render(), "Deployment", "xorj-operator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
