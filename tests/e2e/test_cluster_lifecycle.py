"""`up` on a stopped cluster starts it, `up` again is a no-op, `down` leaves no process behind.

Uses a cluster of its own so the session cluster other tests use is never stopped."""

from __future__ import annotations

import secrets

import pytest

from xorj.devenv.cluster import LocalCluster, process_running

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def spare_cluster():
    cluster = LocalCluster(name=f"xorj-e2e-{secrets.token_hex(3)}")
    yield cluster
    cluster.down(force=True)


def test_up_is_idempotent_and_down_stops_everything(spare_cluster):
    first = spare_cluster.up()
    assert first.running and first.nodes_ready == 2
    pids = spare_cluster.pids()
    assert sorted(pids) == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"]

    second = spare_cluster.up()
    assert second.server == first.server
    assert spare_cluster.pids() == pids  # the same processes: nothing was restarted

    spare_cluster.down()

    assert [name for name, pid in pids.items() if process_running(pid)] == []
    assert not spare_cluster.cluster_dir.exists()
    assert not spare_cluster.status().running
    spare_cluster.down()  # a second down is a no-op


def test_up_replaces_a_cluster_whose_api_server_died(spare_cluster):
    import os
    import signal

    spare_cluster.up()
    os.kill(spare_cluster.pids()["kube-apiserver"], signal.SIGKILL)

    status = spare_cluster.up()

    assert status.running and status.nodes_ready == 2
    assert spare_cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
