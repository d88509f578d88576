"""``xorj dev chain serve``: the state directory contract and seeding."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import httpx
import pytest
from solders.keypair import Keypair

from tests.fixtures.chain import LocalChainHandle
from tests.integration.chain.conftest import ChainClient

pytestmark = pytest.mark.chain


def test_state_file_and_vault_keypairs(local_chain: LocalChainHandle) -> None:
    state = json.loads((local_chain.state_dir / "chain.json").read_text())
    assert state["rpc_url"].startswith("http://127.0.0.1:")
    assert state["swap_api_url"].endswith("/swap/v1") and state["admin_url"].endswith("/admin")
    assert set(state["mints"]) == {"USDC", "SOL"}
    assert state["mints"]["USDC"]["decimals"] == 6 and state["mints"]["SOL"]["decimals"] == 9
    assert len(local_chain.vaults) >= 4
    for pubkey, path in local_chain.vaults.items():
        assert path.parent == local_chain.state_dir / "vaults" and path.name == f"{pubkey}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = json.loads(path.read_text())
        assert isinstance(secret, list) and len(secret) == 64  # Solana CLI keypair format
        assert str(Keypair.from_bytes(bytes(secret)).pubkey()) == pubkey
    log = (local_chain.state_dir / "chain.log").read_text()
    assert "xorj-chain ready" in log
    for path in local_chain.vaults.values():
        assert path.read_text() not in log  # no secret in the output


async def test_vaults_are_funded(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    balance = await client.result("getBalance", vault, {"commitment": "processed"})
    assert balance["value"] == 10 * 10**9
    assert await client.token_balance(vault, "USDC") == 100_000 * 10**6
    assert await client.token_balance(vault, "SOL") == 0


def test_serve_refuses_a_non_loopback_host(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", "from xorj.cli import main; main()", "dev", "chain", "serve",
                             "--host", "0.0.0.0", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--host" in result.stderr


def test_known_vault_keypair_is_funded_and_stale_keys_removed(tmp_path) -> None:
    from tests.fixtures.chain import start_local_chain, stop_local_chain
    from xorj.devenv.chain.environment import write_keypair

    known = Keypair()
    key_file = tmp_path / "known.json"
    write_keypair(key_file, known)
    state_dir = tmp_path / "state"
    (state_dir / "vaults").mkdir(parents=True)
    stale = state_dir / "vaults" / f"{Keypair().pubkey()}.json"
    stale.write_text("[]")
    handle = start_local_chain(state_dir, vaults=1, extra_args=["--vault-keypair", str(key_file)])
    try:
        assert str(known.pubkey()) in handle.vaults and len(handle.vaults) == 2
        assert not stale.exists()
        answer = httpx.post(handle.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getBalance",
                                                  "params": [str(known.pubkey()), {"commitment": "processed"}]})
        assert answer.json()["result"]["value"] == 10 * 10**9
    finally:
        stop_local_chain(handle)
    assert handle.process.returncode == 0  # SIGTERM ends it cleanly


async def test_metrics_report_requests_slot_and_faults(client: ChainClient) -> None:
    """/metrics (what the local Prometheus scrapes) counts requests by method and fired faults."""
    from prometheus_client.parser import text_string_to_metric_families

    await client.result("getSlot")
    async with httpx.AsyncClient() as http:
        await http.post(f"{client.chain.admin_url}/faults", json={"kind": "error", "method": "getBalance"})
        await client.rpc("getBalance", client.chain.take_vault())
        answer = await http.get(client.chain.rpc_url.rstrip("/") + "/metrics")
    assert answer.status_code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.text) for s in family.samples}
    assert samples[("xorj_chain_requests_total", (("method", "getSlot"),))] >= 1
    assert samples[("xorj_chain_slot", ())] > 0
    assert samples[("xorj_chain_faults_active", ())] == 1
    assert samples[("xorj_chain_faults_fired_total", (("kind", "error"), ("method", "getBalance")))] >= 1
