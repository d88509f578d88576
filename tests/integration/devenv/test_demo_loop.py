"""The demo's copy loop (issue 14 section 5) on the local cluster and a chain of its own, without a
node (executors as local processes through the pod runtime, as `xorj dev up --executors processes`):
the simulated leaders trade a backdated history, the backfill stores it in the ledger, a TraderPool
ranks them (by the real operator), a `topN: 1` strategy follows the pool's best with its own vault,
and the watcher copies that leader's live swaps into a CopyTrade that ends CONFIRMED on the chain.
`down` stops the leaders and the watcher. (tests/e2e/demo runs the same on a whole `xorj dev up`.)"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from xorj.devenv.demo import POOL, TOP_N_STRATEGY, Demo, PodEndpoints
from xorj.devenv.processes import process_running

pytestmark = [pytest.mark.cluster, pytest.mark.chain]


def rpc(url: str, method: str, *params: Any) -> Any:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                        timeout=10).json()
    return answer["result"]


def test_the_loop_copies_the_pools_best_leader_into_a_confirmed_copytrade(k8s_cluster, tmp_path: Path) -> None:
    namespace = f"demo-loop-{secrets.token_hex(3)}"
    said: list[str] = []
    demo = Demo(root=tmp_path / "demo", progress=said.append, namespace=namespace, executors="processes", loop=True)
    demo.cluster = k8s_cluster.local
    data: dict[str, Any] = {"processes": {}, "kubeconfig": str(demo.cluster.kubeconfig)}
    demo.state.save(data)
    pids: list[int] = []
    try:
        dsn = demo._postgres(data)
        chain = demo._chain(data)  # the demo's own chain: the leaders' backdated clock stamps no one else's
        demo._install_chart(dsn, chain, PodEndpoints(dsn, chain).chart_values())
        demo._operator(data, dsn, demo._executor_ledger_dsn(data, dsn, relayed=False))
        demo._pod_runtime(data)
        confirmed = demo.copy_loop(data, dsn, chain, None)

        pids = [int(demo.state.load()["processes"][name]["pid"]) for name in ("leaders", "watcher")]
        leaders = demo.state.load()["processes"]["leaders"]["wallets"]
        pool = json.loads(demo.kubectl("get", "traderpool", POOL, "-n", namespace, "-o", "json").stdout)
        top = pool["status"]["topTrader"]
        assert top in leaders and pool["status"]["eligible"] >= 1
        strategy = json.loads(demo.kubectl("get", "tradingstrategy", TOP_N_STRATEGY, "-n", namespace,
                                           "-o", "json").stdout)
        assert strategy["spec"]["topN"]["count"] == 1 and strategy["spec"]["topN"]["pool"] == POOL
        copytrade = json.loads(demo.kubectl("get", "copytrade", confirmed, "-n", namespace, "-o", "json").stdout)
        assert copytrade["metadata"]["labels"]["trading.xorj.io/source"] == "watcher"
        assert copytrade["spec"]["strategy"] == TOP_N_STRATEGY and copytrade["spec"]["leadTrader"] == top
        assert copytrade["status"]["phase"] == "CONFIRMED"
        # from the chain: the lead swap is the leader's own transaction, the copy the follower vault's
        lead = rpc(chain.rpc_url, "getTransaction", copytrade["spec"]["leadSignature"],
                   {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"})
        assert lead["transaction"]["message"]["accountKeys"][0] == top and lead["meta"]["err"] is None
        fill = copytrade["status"]["finalSignature"]
        copied = rpc(chain.rpc_url, "getTransaction", fill,
                     {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"})
        assert copied["transaction"]["message"]["accountKeys"][0] == chain.follower_vault_public_key
        assert copied["meta"]["err"] is None
        # the keys of the leaders and the vault never reach what the demo says
        said_text = "\n".join(said)
        for key_file in (tmp_path / "demo" / "leaders" / "leaders").glob("*.json"):
            assert key_file.read_text() not in said_text
    finally:
        demo.down()
    assert pids and not [pid for pid in pids if process_running(pid)], "leaders or watcher left running after down"
