from __future__ import annotations

import yaml

from xorj.devenv.cluster import KWOK_NODE_ANNOTATION, KWOKCTL_CONFIG, node_manifest


def test_kwok_nodes_are_managed_by_kwok_and_take_ordinary_pods():
    node = yaml.safe_load(node_manifest("kwok-node-0"))

    assert node["kind"] == "Node" and node["metadata"]["name"] == "kwok-node-0"
    assert node["metadata"]["annotations"][KWOK_NODE_ANNOTATION] == "fake"
    assert "taints" not in node.get("spec", {})  # untainted: Deployments schedule without tolerations
    assert node["status"]["allocatable"]["pods"] == "110"


def test_components_listen_on_loopback_only():
    config = yaml.safe_load(KWOKCTL_CONFIG)

    assert config["kind"] == "KwokctlConfiguration"
    assert config["options"]["bindAddress"] == "127.0.0.1"
