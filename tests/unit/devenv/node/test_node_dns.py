"""Cluster DNS as kind deploys it: the kubelet points pods at kube-dns, and the addon's objects carry
the Corefile, the pinned image and the node's placement."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xorj.devenv.node import config, dns


@pytest.fixture
def layout(tmp_path: Path) -> config.NodeLayout:
    return config.NodeLayout(name="xorj-node", state_dir=tmp_path, host_ip="192.0.2.2", link_ip="198.51.100.1",
                             node_ip="198.51.100.2", api_port=32758, kubelet_port=10250, service_cidr="10.0.0.0/24")


def _objects(**overrides) -> dict[str, dict]:
    arguments = {"image": "localhost/xorj-coredns:1.15.0-abc", "dns_ip": "10.0.0.10", "api_host": "192.0.2.2",
                 "api_port": 32758, "node_selector": {"xorj.dev/node": "real"}, **overrides}
    listed = dns.manifests(**arguments)
    assert listed["kind"] == "List"
    return {item["kind"]: item for item in listed["items"]}


def test_the_cluster_dns_address_is_the_tenth_of_the_service_range(layout: config.NodeLayout) -> None:
    assert layout.cluster_dns_ip == "10.0.0.10"
    assert config.NodeLayout(**{**layout.__dict__, "service_cidr": "10.96.0.0/16"}).cluster_dns_ip == "10.96.0.10"


def test_the_kubelet_hands_pods_the_cluster_dns_and_domain(layout: config.NodeLayout) -> None:
    kubelet = yaml.safe_load(config.kubelet_config(layout))

    assert kubelet["clusterDNS"] == ["10.0.0.10"]
    assert kubelet["clusterDomain"] == "cluster.local"


def test_kube_dns_service_holds_the_cluster_dns_address_for_udp_and_tcp() -> None:
    service = _objects()["Service"]

    assert (service["metadata"]["namespace"], service["metadata"]["name"]) == ("kube-system", "kube-dns")
    assert service["spec"]["clusterIP"] == "10.0.0.10"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} >= {(53, "UDP"), (53, "TCP")}
    assert service["spec"]["selector"] == _objects()["Deployment"]["spec"]["selector"]["matchLabels"]


def test_the_corefile_serves_the_cluster_domain_from_the_api_and_forwards_nowhere() -> None:
    corefile = _objects()["ConfigMap"]["data"]["Corefile"]

    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile
    assert "cache 30" in corefile and "ready" in corefile and "health {" in corefile
    assert "forward" not in corefile  # nothing leaves the node: an outside name fails at once


def test_coredns_runs_the_given_image_on_the_real_node_and_tolerates_its_taints() -> None:
    deployment = _objects(taints=("xorj.dev/executors=true:NoSchedule",))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]

    assert container["image"] == "localhost/xorj-coredns:1.15.0-abc"
    assert container["imagePullPolicy"] == "Never"
    assert container["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert pod["nodeSelector"]["xorj.dev/node"] == "real"
    assert pod["dnsPolicy"] == "Default"
    assert {"key": "xorj.dev/executors", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["serviceAccountName"] == "coredns"
    assert container["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}


def test_coredns_reaches_the_api_server_at_the_address_its_certificate_names() -> None:
    env = {e["name"]: e["value"] for e in _objects()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env == {"KUBERNETES_SERVICE_HOST": "192.0.2.2", "KUBERNETES_SERVICE_PORT": "32758"}


def test_coredns_may_list_and_watch_what_its_kubernetes_plugin_reads() -> None:
    objects = _objects()
    rules = {(group, resource): set(rule["verbs"])
             for rule in objects["ClusterRole"]["rules"]
             for group in rule["apiGroups"] for resource in rule["resources"]}

    for needed in [("", "services"), ("", "pods"), ("", "namespaces"), ("discovery.k8s.io", "endpointslices")]:
        assert {"list", "watch"} <= rules[needed], needed
    assert objects["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]


def test_the_image_name_changes_with_the_binary() -> None:
    first = dns.image_reference(b"binary one", "v1.15.0")

    assert first.startswith("localhost/xorj-coredns:1.15.0-")
    assert first != dns.image_reference(b"binary two", "v1.15.0")
