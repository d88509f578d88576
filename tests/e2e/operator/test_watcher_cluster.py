"""The watcher against the real Kubernetes API server, the real operator, the local chain and the
ledger: it reads who follows whom from TradingStrategies (not from a file), a simulated leader's swap
becomes a trade in the ledger and then a CopyTrade that kubectl shows (written after the commit,
labelled as the watcher's) which the operator adopts as the trade's own; a strategy whose filters
refuse the swap gets a SignalSkipped Event with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.operator.manifests import strategy
from tests.integration.watcher.helpers import Leader, run
from tests.polling import wait_for
from xorj.chain.prices import price_api_url_for

pytestmark = [pytest.mark.cluster, pytest.mark.chain]


def test_the_watcher_copies_a_followed_leader_into_a_copytrade_the_operator_adopts(
        kube, operators, local_chain, ledger_owner_dsn, tmp_path) -> None:
    leader = Leader(local_chain)
    run(leader.fund())
    sol = local_chain.mints["SOL"]
    endpoints = {"rpcUrl": local_chain.rpc_url, "swapApiUrl": local_chain.swap_api_url}
    kube.apply(strategy("live", traders=[leader.pubkey], endpoints=endpoints,
                        vault={"publicKey": local_chain.take_vault(), "secretName": "vault-keypair"},
                        sizing={"mode": "fixedUsd", "fixedUsd": 2}))
    kube.apply(strategy("picky", traders=[leader.pubkey], endpoints=endpoints, paused=True,
                        executor={"replicas": 0},
                        vault={"publicKey": local_chain.take_vault(), "secretName": "vault-keypair"},
                        filters={"denyMints": [sol]}))
    operators()
    port_file = tmp_path / "watcher.port"
    env = {**os.environ, "XORJ_LEDGER_DSN": ledger_owner_dsn, "XORJ_RPC_URL": local_chain.rpc_url,
           "XORJ_PRICE_API_URL": price_api_url_for(local_chain.swap_api_url),
           "XORJ_WATCHER_HTTP_HOST": "127.0.0.1", "XORJ_WATCHER_HTTP_PORT": "0",
           "XORJ_WATCHER_HTTP_PORT_FILE": str(port_file), "XORJ_WATCHER_POLL_INTERVAL_SECONDS": "0.3",
           "XORJ_WATCHER_FOLLOW_REFRESH_SECONDS": "1", "XORJ_WATCHER_PROJECT_SECONDS": "1",
           "XORJ_WATCHER_CASH_MINTS": f'["{local_chain.mints["USDC"]}"]'}
    log_path = tmp_path / "watcher.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from xorj.cli import main; main()", "watcher"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import httpx

        def following() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"watcher exited: {log_path.read_text()[-3000:]}")
            if not port_file.exists() or not port_file.read_text():
                return False
            text = httpx.get(f"http://127.0.0.1:{port_file.read_text()}/metrics", timeout=5).text
            return any(line.startswith("xorj_watcher_followed_leaders ") and float(line.split()[1]) >= 1
                       for line in text.splitlines())

        wait_for(following, 60, "the watcher to follow the leader from the TradingStrategies")
        signature = run(leader.swap("USDC", "SOL", 3 * 10**6))

        def projected() -> dict[str, Any] | None:
            items = [c for c in kube.list("copytrades", "trading.xorj.io/source=watcher")
                     if c["spec"]["leadSignature"] == signature]
            return items[0] if items and (items[0].get("status") or {}).get("admission") else None

        copytrade = wait_for(projected, 60, "the watcher's CopyTrade, adopted by the operator")
        assert copytrade["spec"]["strategy"] == "live" and copytrade["spec"]["leadTrader"] == leader.pubkey
        assert copytrade["status"]["admission"] == "Admitted"
        assert "by the watcher" in copytrade["status"]["admissionMessage"]
        assert not [c for c in kube.list("copytrades") if c["spec"]["strategy"] == "picky"]
        skipped = wait_for(lambda: [e for e in kube.events("picky") if e["reason"] == "SignalSkipped"], 30,
                           "the SignalSkipped Event on the strategy that skipped")
        assert "PAUSED" in skipped[0]["message"] and signature in skipped[0]["message"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = log_path.read_text()
    assert "Traceback" not in text and ledger_owner_dsn not in text
