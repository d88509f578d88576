"""Fault injection on the local chain: each kind does what it says, including the dangerous one (the
transaction lands but the answer is lost), with counts, probabilities and scopes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed

from tests.integration.chain.conftest import ChainClient

pytestmark = pytest.mark.chain


async def test_latency_delays_then_answers(client: ChainClient) -> None:
    client.chain.set_fault(kind="latency", method="getSlot", delay_ms=300, count=1)
    started = time.monotonic()
    assert isinstance(await client.result("getSlot"), int)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await client.result("getSlot")
    assert time.monotonic() - started < 0.3  # count=1: only once


async def test_timeout_never_processes_the_transaction(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    tx, _, _ = await client.signed_swap(vault, amount=10**6)
    client.chain.set_fault(kind="timeout", method="sendTransaction", hang_s=1.0, count=1)
    with pytest.raises(httpx.ReadTimeout):
        await client.send(tx, timeout=0.3)
    await asyncio.sleep(1.2)
    client.chain.advance_blocks(2)
    assert await client.status(str(tx.signatures[0])) is None
    assert client.chain.swap_signatures(vault) == []
    assert client.chain.state()["faultsFired"]["timeout:sendTransaction"] >= 1


@pytest.mark.parametrize("answer", ["timeout", "close", "error", "http_error"])
async def test_answer_lost_after_processing_the_transaction_landed(client: ChainClient, answer: str) -> None:
    vault = client.chain.take_vault()
    usdc_before = await client.token_balance(vault, "USDC")
    tx, quote, _ = await client.signed_swap(vault, amount=3 * 10**6)
    client.chain.set_fault(kind="drop_after_process", method="sendTransaction", answer=answer, hang_s=1.0,
                           status=500, count=1)
    if answer == "timeout":
        with pytest.raises(httpx.ReadTimeout):
            await client.send(tx, timeout=0.3)
    elif answer == "close":
        with pytest.raises(httpx.RemoteProtocolError):
            await client.send(tx)
    elif answer == "error":
        reply = await client.send(tx)
        assert reply["error"]["code"] == -32005
    else:
        with pytest.raises(httpx.HTTPStatusError) as raised:
            await client.send(tx)
        assert raised.value.response.status_code == 500
    # the client saw a failure, yet the swap is on chain: exactly one fill
    status = await client.wait_status(str(tx.signatures[0]), "confirmed")
    assert status["err"] is None
    assert client.chain.swap_signatures(vault) == [str(tx.signatures[0])]
    assert await client.token_balance(vault, "USDC") == usdc_before - int(quote["inAmount"])
    # the safe reaction, rebroadcasting the same bytes, fills nothing more
    again = await client.send(tx)
    assert again["error"]["data"]["err"] == "AlreadyProcessed"
    assert client.chain.swap_signatures(vault) == [str(tx.signatures[0])]


async def test_error_answers_with_count(client: ChainClient) -> None:
    client.chain.set_fault(kind="error", method="getLatestBlockhash", count=2)
    for _ in range(2):
        answer = await client.rpc("getLatestBlockhash")
        assert answer["error"]["code"] == -32005
        assert answer["error"]["message"] == "Node is unhealthy"
    assert "result" in await client.rpc("getLatestBlockhash")
    client.chain.set_fault(kind="error", method="getBalance", code=-32603, message="Internal error", count=1)
    assert (await client.rpc("getBalance", client.chain.take_vault()))["error"]["code"] == -32603


async def test_http_error_and_malformed_answers(client: ChainClient) -> None:
    client.chain.set_fault(kind="http_error", method="getSignatureStatuses", status=502, count=1)
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await client.rpc("getSignatureStatuses", [])
    assert raised.value.response.status_code == 502
    client.chain.set_fault(kind="malformed", method="getSlot", count=1)
    with pytest.raises(json.JSONDecodeError):
        await client.rpc("getSlot")
    assert isinstance(await client.result("getSlot"), int)


async def test_probability_and_scopes(client: ChainClient) -> None:
    client.chain.set_fault(kind="error", method="getSlot", probability=0.0)
    for _ in range(5):
        assert "result" in await client.rpc("getSlot")
    client.chain.reset_faults()
    client.chain.set_fault(kind="http_error", method="*", status=503)
    with pytest.raises(httpx.HTTPStatusError):
        await client.rpc("getHealth")
    quote = await client.quote("USDC", "SOL", 10**6)  # "*" is every JSON-RPC method, not the swap API
    client.chain.reset_faults()
    client.chain.set_fault(kind="error", method="jupiter", message="route service down")
    answer = await client.http.get(client.chain.swap_api_url + "/quote", params={
        "inputMint": client.chain.mints["USDC"], "outputMint": client.chain.mints["SOL"], "amount": "1000"})
    assert answer.status_code == 500 and answer.json()["error"] == "route service down"
    answer = await client.http.post(client.chain.swap_api_url + "/swap",
                                    json={"quoteResponse": quote, "userPublicKey": client.chain.take_vault()})
    assert answer.status_code == 500
    assert "result" in await client.rpc("getSlot")  # the RPC is unaffected


async def test_swap_api_timeout_and_drop(client: ChainClient) -> None:
    client.chain.set_fault(kind="timeout", method="quote", hang_s=1.0, count=1)
    with pytest.raises(httpx.ReadTimeout):
        await client.http.get(client.chain.swap_api_url + "/quote", timeout=0.3, params={
            "inputMint": client.chain.mints["USDC"], "outputMint": client.chain.mints["SOL"], "amount": "1000"})
    assert "outAmount" in await client.quote("USDC", "SOL", 1000)


async def test_pause_stops_blocks_and_reset_resumes(client: ChainClient) -> None:
    client.chain.pause_blocks()
    slot = await client.result("getSlot", {"commitment": "processed"})
    await asyncio.sleep(client.chain.slot_ms * 4 / 1000)
    assert await client.result("getSlot", {"commitment": "processed"}) == slot
    client.chain.reset_faults()
    await asyncio.sleep(client.chain.slot_ms * 8 / 1000)
    assert await client.result("getSlot", {"commitment": "processed"}) > slot


async def test_solana_py_default_transport_retry_hides_a_timeout(client: ChainClient) -> None:
    """A known solana-py trap: it re-POSTs once on a transport error unless max_transport_retries=0."""
    requests_before = client.chain.state()["requests"].get("getSlot", 0)
    client.chain.set_fault(kind="timeout", method="getSlot", hang_s=1.0, count=1)
    rpc = AsyncClient(client.chain.rpc_url, timeout=0.3)
    try:
        assert (await rpc.get_slot(Processed)).value > 0  # the caller never learns of the timeout
    finally:
        await rpc.close()
    assert client.chain.state()["requests"]["getSlot"] - requests_before == 2


async def test_solana_py_without_transport_retries_sees_timeouts_and_node_errors(client: ChainClient) -> None:
    rpc = AsyncClient(client.chain.rpc_url, timeout=0.3, max_transport_retries=0)
    try:
        client.chain.set_fault(kind="timeout", method="getSlot", hang_s=1.0, count=1)
        with pytest.raises(Exception) as raised:
            await rpc.get_slot(Processed)
        assert "Timeout" in repr(raised.value) or "Timeout" in repr(raised.value.__cause__)
        assert (await rpc.get_slot(Processed)).value > 0
        client.chain.set_fault(kind="error", method="getSlot", count=1)
        with pytest.raises(Exception) as raised:
            await rpc.get_slot(Processed)
        assert "-32005" in repr(raised.value) or "unhealthy" in repr(raised.value)
    finally:
        await rpc.close()


async def test_admin_rejects_bad_faults_naming_the_field(client: ChainClient) -> None:
    for body, field in (({"kind": "explode"}, "kind"), ({"kind": "latency", "probability": 2}, "probability"),
                        ({"kind": "error", "count": 0}, "count"), ({"kind": "latency", "color": "red"}, "color"),
                        ({"kind": "http_error", "status": 200}, "status")):
        answer = await client.http.post(client.chain.admin_url + "/faults", json=body)
        assert answer.status_code == 400
        assert field in answer.json()["error"]
    answer = await client.http.post(client.chain.admin_url + "/price", json={"bps": "up"})
    assert answer.status_code == 400 and "bps" in answer.json()["error"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from xorj.cli import main; main()", "dev", "chain", *args],
                          capture_output=True, text=True, timeout=60)


async def test_fault_cli_against_the_running_chain(client: ChainClient) -> None:
    state_dir = str(client.chain.state_dir)
    added = _cli("fault", "add", "--state-dir", state_dir, "--kind", "error", "--method", "getBalance",
                 "--count", "1")
    assert added.returncode == 0, added.stderr
    fault_id = json.loads(added.stdout)["id"]
    assert any(f["id"] == fault_id for f in client.chain.state()["faults"])
    assert (await client.rpc("getBalance", client.chain.take_vault()))["error"]["code"] == -32005
    price_before = client.chain.state()["price"]
    moved = _cli("fault", "price", "--state-dir", state_dir, "--bps", "-300")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["price"] == pytest.approx(price_before * 0.97, rel=1e-6)
    slot = client.chain.state()["slot"]
    assert _cli("fault", "expire", "--state-dir", state_dir).returncode == 0
    assert client.chain.state()["slot"] >= slot + 151
    assert _cli("fault", "reset", "--state-dir", state_dir).returncode == 0
    assert client.chain.state()["faults"] == []
    bad = _cli("fault", "add", "--state-dir", state_dir, "--kind", "latency", "--probability", "7")
    assert bad.returncode != 0 and "probability" in bad.stderr


async def test_status_lag_hides_recent_transactions_but_not_the_height(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    tx, _, _ = await client.signed_swap(vault, amount=10**6)
    signature = (await client.send(tx))["result"]
    client.chain.pause_blocks()
    client.chain.set_fault(kind="status_lag", method="getSignatureStatuses", blocks=10, count=1)
    height = await client.result("getBlockHeight", {"commitment": "processed"})
    assert await client.status(signature) is None  # a lagging node has not seen it yet
    assert await client.result("getBlockHeight", {"commitment": "processed"}) == height
    assert (await client.status(signature))["err"] is None  # count=1: the next answer is current
    client.chain.set_fault(kind="status_lag", method="getSignatureStatuses", blocks=10, count=1)
    client.chain.advance_blocks(11)
    assert (await client.status(signature)) is not None  # older than the lag: visible


async def test_status_lag_lags_the_context_slot_and_the_executor_rpc_sees_it(client: ChainClient) -> None:
    """A node 60 blocks behind answers as of a slot 60 blocks back; the executor's client reads that
    context slot and the finalized block (slot and height of one bank), so the expiry rule can tell
    the lagging "not found" is older than the finalized block."""
    from solders.signature import Signature

    from xorj.chain.rpc import SolanaRpc
    from xorj.chain.status_batch import StatusBatcher
    from xorj.domain.expiry import ExpiryVerdict, expiry_verdict

    vault = client.chain.take_vault()
    tx, _, _ = await client.signed_swap(vault, amount=10**6)
    signature = (await client.send(tx))["result"]
    client.chain.pause_blocks()
    client.chain.advance_blocks(40)  # finalized (32 deep), yet unseen by a node 60 behind
    state = client.chain.state()
    async with SolanaRpc(client.chain.rpc_url) as rpc:
        finalized = await rpc.finalized_point()
        assert (finalized.slot, finalized.height) == (state["finalizedSlot"], state["blockHeight"] - 32)
        fresh = await rpc.signature_statuses([Signature.from_string(signature)])
        assert fresh.context_slot == state["slot"] and fresh.statuses[0].confirmation == "finalized"
        client.chain.set_fault(kind="status_lag", method="getSignatureStatuses", blocks=60, count=1)
        lagging = await StatusBatcher(rpc).read(Signature.from_string(signature))
    assert lagging.status is None and lagging.status_context_slot == state["slot"] - 60
    assert lagging.finalized == finalized
    verdict = expiry_verdict(last_valid_block_height=finalized.height - 1, finalized=lagging.finalized,
                             status_context_slot=lagging.status_context_slot)
    assert verdict is ExpiryVerdict.STALE_STATUS
