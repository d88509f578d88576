"""The node's rendered configuration: names carry the xorj prefix, state stays under the state dir,
and the settings this machine needs (cgroupfs, clamped OOM scores, kernel tunables left alone)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml

from xorj.devenv.cluster import KWOKCTL_CONFIG
from xorj.devenv.image import source_hash
from xorj.devenv.node import config


@pytest.fixture
def layout(tmp_path: Path) -> config.NodeLayout:
    return config.NodeLayout(name="xorj-node", state_dir=tmp_path, host_ip="192.0.2.2", link_ip="198.51.100.1", node_ip="198.51.100.2",
                             api_port=32758, kubelet_port=10250)


def test_everything_the_node_creates_is_named_xorj(layout: config.NodeLayout) -> None:
    for name in (layout.netns, layout.host_veth, layout.node_veth, layout.cgroup_root.lstrip("/"), config.BRIDGE):
        assert name.startswith("xorj")
    assert len(layout.host_veth) <= 15 and len(layout.node_veth) <= 15  # IFNAMSIZ


def test_containerd_keeps_its_state_under_the_state_dir(layout: config.NodeLayout) -> None:
    text = config.containerd_toml(layout)
    for line in text.splitlines():
        if line.strip().startswith(("root =", "state =", "address =")) and '""' not in line:
            assert str(layout.state_dir) in line, line
    assert "SystemdCgroup = false" in text
    assert "restrict_oom_score_adj = true" in text
    assert f'sandbox_image = "{config.PAUSE_IMAGE}"' in text


def test_kubelet_uses_cgroupfs_under_its_own_root_and_never_writes_kernel_tunables(layout) -> None:
    text = config.kubelet_config(layout)
    assert "cgroupDriver: cgroupfs" in text
    assert "cgroupRoot: /xorj-node" in text
    assert "protectKernelDefaults: true" in text
    assert f"address: {layout.node_ip}" in text


def test_cni_is_bridge_host_local_portmap_with_ipam_state_local(layout: config.NodeLayout) -> None:
    conf = json.loads(config.cni_conflist(layout))
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]
    assert conf["plugins"][0]["ipam"]["type"] == "host-local"
    assert conf["plugins"][0]["ipam"]["dataDir"].startswith(str(layout.state_dir))


def test_kube_proxy_leaves_global_conntrack_settings_alone(layout: config.NodeLayout) -> None:
    text = config.kube_proxy_config(layout)
    assert "maxPerCore: 0" in text and "min: 0" in text


def test_kwok_is_restricted_to_annotated_nodes() -> None:
    assert 'value: "false"' in KWOKCTL_CONFIG
    assert "manage-nodes-with-annotation-selector" in KWOKCTL_CONFIG
    assert "kubelet-preferred-address-types" in KWOKCTL_CONFIG


def test_the_api_server_certificate_names_the_kubernetes_service_ip(layout: config.NodeLayout) -> None:
    sans = yaml.safe_load(KWOKCTL_CONFIG)["options"]["kubeApiserverCertSANs"]
    assert str(ipaddress.ip_network(layout.service_cidr)[1]) in sans  # what in-cluster clients dial


def test_image_source_hash_changes_with_the_dockerfile(tmp_path: Path) -> None:
    for name in ("Dockerfile", "pyproject.toml", "README.md"):
        (tmp_path / name).write_text(name)
    (tmp_path / "operator").mkdir()
    (tmp_path / "operator" / "a.py").write_text("x = 1\n")
    first = source_hash(tmp_path)
    assert source_hash(tmp_path) == first
    (tmp_path / "Dockerfile").write_text("changed")
    assert source_hash(tmp_path) != first
