"""Start-up on a busy machine (issue 12): with a CPU hog holding every core, the real node's relay and
daemons restarted by `LocalChainNode.up` and all of `xorj dev up` (Postgres, the local chain, the relays to
them, the chart, the operator, executor pods on the real node) come up and confirm the demo's trades.
A first `make demo` on a machine busy with builds once failed with a relay that had 10 s to start.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from tests.e2e.demo.conftest import DemoRun
from tests.fixtures.cpu_hog import cpu_hog, cpu_seconds
from xorj.devenv.cluster import LocalCluster
from xorj.devenv.node import LocalChainNode, processes

pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(3600)]


def test_node_relays_and_demo_services_come_up_while_every_core_is_busy(cli_cluster: LocalCluster,
                                                                       demo_run: DemoRun) -> None:
    # the relays are what is under test: the copy loop's leaders and watcher would only add to the load
    demo_run.env["XORJ_DEMO_LOOP"] = "0"
    node = LocalChainNode(cli_cluster)
    layout = node.layout()
    # the node's API relay and kube-router start again below, under the hog
    processes.stop("relay-api", layout.pids_dir, "xorj.devenv.node.relay", grace=2)
    processes.stop("kube-router", layout.pids_dir, str(layout.state_dir), grace=5)
    assert not node.status().running
    with cpu_hog() as hogs:
        before = [cpu_seconds(h.pid) for h in hogs]
        started = time.monotonic()
        status = node.up(progress=print)
        up = demo_run.up()
        assert all(h.poll() is None for h in hogs), "the hog held the cores throughout"
        used = sum(cpu_seconds(h.pid) - b for h, b in zip(hogs, before, strict=True))
        seconds = time.monotonic() - started
    assert status.ready and status.running, status
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-6000:]}"
    assert demo_run.confirmed(up), up.stdout
    # the machine is shared (other work competes too): the hogs must at least have kept running
    assert used > 0.1 * seconds, f"the hogs used only {used:.0f} CPU seconds in {seconds:.0f}s"
    # the API server's relay, and the demo's relays to Postgres and to the chain (RPC and swap API share a port)
    ledger_port = json.loads((demo_run.state / "demo.json").read_text())["postgres_port"]
    chain_port = urlsplit(json.loads((demo_run.state / "chain" / "chain.json").read_text())["rpc_url"]).port
    relays = {"relay-api", f"relay-{ledger_port}", f"relay-{chain_port}"}
    assert relays <= {p.stem for p in layout.pids_dir.glob("relay-*.pid")}
    assert all(processes.alive(r, layout.pids_dir, "xorj.devenv.node.relay") for r in relays)
