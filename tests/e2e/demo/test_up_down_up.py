"""`xorj dev up`, `xorj dev down`, `xorj dev up` back to back (issue 12): `down` leaves nothing
terminating, so the next `up` installs the chart at once, whether the cluster was started by
`xorj dev cluster up` (down leaves it and its node running) or by `xorj dev up` itself (down stops it).
Each `up` runs the operator as the chart's pod on the real node.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.demo.conftest import DemoRun
from tests.e2e.demo_operator import assert_operator_is_the_charts_pod
from xorj.devenv.cluster import LocalCluster
from xorj.devenv.node import LocalChainNode
from xorj.devenv.node.lifecycle import DEFAULT_NODE_NAME

pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(3600)]


def netns_names() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def up_confirms(demo: DemoRun, attempt: str) -> None:
    up = demo.up()
    assert up.returncode == 0, f"{attempt} `xorj dev up` failed:\n{up.stdout}\n{up.stderr[-6000:]}"
    assert demo.confirmed(up), up.stdout
    # the operator is the chart's pod (the default on the real node): `down` must take it away with the
    # namespace before it removes the node, and the next `up` installs it again
    assert_operator_is_the_charts_pod(demo.cluster.kubectl, demo.namespace, demo.state)


def test_up_down_up_on_a_cluster_started_by_xorj_dev_cluster_up(cli_cluster: LocalCluster,
                                                                  demo_run: DemoRun) -> None:
    for attempt in ("first", "second"):
        up_confirms(demo_run, attempt)
        down = demo_run.down()
        assert down.returncode == 0, f"{down.stdout}\n{down.stderr[-4000:]}"
        # nothing left terminating: the namespace, and so its pods, are gone when `down` returns
        assert demo_run.namespace_phase() is None, f"namespace {demo_run.namespace} left behind by `down`"
        assert cli_cluster.is_running(), "down must not stop a cluster it did not start"
        assert LocalChainNode(cli_cluster).status().ready, "down must not remove a node it did not start"


def test_up_down_up_on_a_cluster_from_xorj_dev_cluster_up_no_node(cli_cluster_without_node: LocalCluster,
                                                                   demo_run: DemoRun) -> None:
    """The issue's case: `down` removed the node the demo had added while the namespace's pods were
    still on it, the namespace stayed Terminating for minutes, and the next `up` failed in helm."""
    cluster = cli_cluster_without_node
    for attempt in ("first", "second"):
        up_confirms(demo_run, attempt)
        down = demo_run.down()
        assert down.returncode == 0, f"{down.stdout}\n{down.stderr[-4000:]}"
        assert demo_run.namespace_phase() is None, f"namespace {demo_run.namespace} left behind by `down`"
        assert cluster.is_running(), "down must not stop a cluster it did not start"
        assert DEFAULT_NODE_NAME not in netns_names(), "down removes the node it started"


def test_up_down_up_with_the_cluster_started_by_xorj_dev_up(no_cluster: LocalCluster, demo_run: DemoRun) -> None:
    for attempt in ("first", "second"):
        up_confirms(demo_run, attempt)
        node = LocalChainNode(no_cluster)
        assert node.joined() == no_cluster.name, "the demo's node joins the cluster the demo started"
        down = demo_run.down()
        assert down.returncode == 0, f"{down.stdout}\n{down.stderr[-4000:]}"
        assert f"namespace {demo_run.namespace}" in down.stderr, "down removes the workload before the node"
        assert not no_cluster.cluster_dir.exists(), "down stops the cluster it started"
        assert DEFAULT_NODE_NAME not in netns_names(), "down removes the node it started"
        assert not any(p.get("pid") for p in demo_run.processes().values())
