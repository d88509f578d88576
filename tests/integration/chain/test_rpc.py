"""Solana JSON-RPC protocol of the local chain: shapes, error codes, blockhash ages, commitment, and
round trips through solana-py's AsyncClient."""

from __future__ import annotations

import asyncio
import base64

import pytest
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tests.integration.chain.conftest import ChainClient

pytestmark = pytest.mark.chain


def _transfer(payer: Keypair, to: Pubkey, lamports: int, blockhash: str) -> VersionedTransaction:
    message = MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(
        from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))], [], Hash.from_string(blockhash))
    return VersionedTransaction(message, [payer])


async def _funded(client: ChainClient, lamports: int = 10**10) -> Keypair:
    payer = Keypair()
    signature = await client.result("requestAirdrop", str(payer.pubkey()), lamports)
    await client.wait_status(signature, "processed")
    return payer


async def _blockhash(client: ChainClient, commitment: str = "processed") -> dict:
    return (await client.result("getLatestBlockhash", {"commitment": commitment}))["value"]


async def test_latest_blockhash_shape_and_commitment_levels(client: ChainClient) -> None:
    processed = await client.result("getLatestBlockhash", {"commitment": "processed"})
    assert set(processed) == {"context", "value"}
    assert processed["context"]["slot"] >= 1
    value = processed["value"]
    height = await client.result("getBlockHeight", {"commitment": "processed"})
    assert value["lastValidBlockHeight"] - 150 <= height <= value["lastValidBlockHeight"]
    client.chain.pause_blocks()  # no block may tick between the reads below
    client.chain.advance_blocks(40)
    processed_slot = await client.result("getSlot", {"commitment": "processed"})
    confirmed_slot = await client.result("getSlot", {"commitment": "confirmed"})
    finalized_slot = await client.result("getSlot")  # default commitment is finalized
    assert processed_slot - confirmed_slot == 1
    assert processed_slot - finalized_slot == 32
    finalized = (await client.result("getLatestBlockhash"))["value"]
    finalized_height = await client.result("getBlockHeight")
    assert finalized["lastValidBlockHeight"] == finalized_height + 150
    # slots run ahead of block heights, as skipped slots make them on a real cluster
    assert finalized_slot > finalized_height


async def test_blocks_advance_on_the_clock(client: ChainClient) -> None:
    first = await client.result("getSlot", {"commitment": "processed"})
    await asyncio.sleep(client.chain.slot_ms * 10 / 1000)
    assert await client.result("getSlot", {"commitment": "processed"}) >= first + 3


async def test_blockhash_valid_for_150_blocks_then_not_found(client: ChainClient) -> None:
    payer = await _funded(client)
    client.chain.pause_blocks()
    old = await _blockhash(client)
    height = await client.result("getBlockHeight", {"commitment": "processed"})
    client.chain.advance_blocks(old["lastValidBlockHeight"] - height)  # now exactly at lastValidBlockHeight
    still_ok = _transfer(payer, Keypair().pubkey(), 1_000_000, old["blockhash"])
    assert "result" in await client.send(still_ok), "a blockhash at its lastValidBlockHeight must still work"
    client.chain.advance_blocks(1)  # one block past lastValidBlockHeight
    too_old = _transfer(payer, Keypair().pubkey(), 2_000_000, old["blockhash"])
    answer = await client.send(too_old)
    assert answer["error"]["code"] == -32002
    assert answer["error"]["data"]["err"] == "BlockhashNotFound"
    assert "Blockhash not found" in answer["error"]["message"]
    # skipPreflight: the node returns the signature but the transaction never lands
    answer = await client.send(too_old, skip_preflight=True)
    assert answer["result"] == str(too_old.signatures[0])
    client.chain.advance_blocks(3)
    assert await client.status(str(too_old.signatures[0])) is None
    valid = (await client.result("isBlockhashValid", old["blockhash"], {"commitment": "processed"}))["value"]
    assert valid is False


async def test_forced_expiry_invalidates_every_handed_out_blockhash(client: ChainClient) -> None:
    payer = await _funded(client)
    recent = await _blockhash(client)
    client.chain.expire_blockhashes()
    height = await client.result("getBlockHeight", {"commitment": "processed"})
    assert height > recent["lastValidBlockHeight"]
    answer = await client.send(_transfer(payer, Keypair().pubkey(), 1_000_000, recent["blockhash"]))
    assert answer["error"]["data"]["err"] == "BlockhashNotFound"


async def test_confirmation_progresses_to_finalized(client: ChainClient) -> None:
    payer = await _funded(client)
    client.chain.pause_blocks()
    tx = _transfer(payer, Keypair().pubkey(), 5_000_000, (await _blockhash(client))["blockhash"])
    signature = (await client.send(tx))["result"]
    status = await client.status(signature)
    assert status["confirmationStatus"] == "processed" and status["confirmations"] == 0
    assert status["err"] is None and status["status"] == {"Ok": None}
    client.chain.advance_blocks(1)
    status = await client.status(signature)
    assert status["confirmationStatus"] == "confirmed" and status["confirmations"] == 1
    client.chain.advance_blocks(31)
    status = await client.status(signature)
    assert status["confirmationStatus"] == "finalized" and status["confirmations"] is None


async def test_status_cache_without_history_search(client: ChainClient) -> None:
    payer = await _funded(client)
    tx = _transfer(payer, Keypair().pubkey(), 5_000_000, (await _blockhash(client))["blockhash"])
    signature = (await client.send(tx))["result"]
    client.chain.advance_blocks(301)
    recent_only = await client.result("getSignatureStatuses", [signature])
    assert recent_only["value"] == [None]
    assert (await client.status(signature))["confirmationStatus"] == "finalized"


async def test_same_bytes_twice_already_processed(client: ChainClient) -> None:
    payer = await _funded(client)
    receiver = Keypair().pubkey()
    tx = _transfer(payer, receiver, 7_000_000, (await _blockhash(client))["blockhash"])
    assert (await client.send(tx))["result"] == str(tx.signatures[0])
    again = await client.send(tx)
    assert again["error"]["code"] == -32002
    assert again["error"]["data"]["err"] == "AlreadyProcessed"
    assert (await client.send(tx, skip_preflight=True))["result"] == str(tx.signatures[0])
    balance = await client.result("getBalance", str(receiver), {"commitment": "processed"})
    assert balance["value"] == 7_000_000


async def test_processed_transaction_resent_after_expiry_reports_blockhash_not_found(client: ChainClient) -> None:
    payer = await _funded(client)
    receiver = Keypair().pubkey()
    tx = _transfer(payer, receiver, 3_000_000, (await _blockhash(client))["blockhash"])
    assert "result" in await client.send(tx)
    client.chain.expire_blockhashes()
    answer = await client.send(tx)  # agave checks the blockhash age before the status cache
    assert answer["error"]["data"]["err"] == "BlockhashNotFound"
    assert (await client.send(tx, skip_preflight=True))["result"] == str(tx.signatures[0])
    balance = await client.result("getBalance", str(receiver), {"commitment": "processed"})
    assert balance["value"] == 3_000_000


async def test_base58_encoding_and_invalid_params(client: ChainClient) -> None:
    import base58

    payer = await _funded(client)
    tx = _transfer(payer, Keypair().pubkey(), 1_000_000, (await _blockhash(client))["blockhash"])
    answer = await client.rpc("sendTransaction", base58.b58encode(bytes(tx)).decode())  # base58 is the default encoding
    assert answer["result"] == str(tx.signatures[0])
    bad = await client.rpc("sendTransaction", "not base64!", {"encoding": "base64"})
    assert bad["error"]["code"] == -32602
    garbage = await client.rpc("sendTransaction", base64.b64encode(b"\x01garbage").decode(), {"encoding": "base64"})
    assert garbage["error"]["code"] == -32602
    assert (await client.rpc("getBalance", "xyz"))["error"]["code"] == -32602
    assert (await client.rpc("getSlot", {"commitment": "sometimes"}))["error"]["code"] == -32602
    assert (await client.rpc("noSuchMethod"))["error"]["code"] == -32601
    assert (await client.rpc("getSignatureStatuses", ["x" * 10]))["error"]["code"] == -32602


async def test_bad_signature_is_rejected_by_preflight(client: ChainClient) -> None:
    payer = await _funded(client)
    tx = _transfer(payer, Keypair().pubkey(), 1_000_000, (await _blockhash(client))["blockhash"])
    forged = VersionedTransaction.populate(tx.message, [Keypair().sign_message(b"other")])
    answer = await client.send(forged)
    assert answer["error"]["code"] == -32003


async def test_failed_transaction_lands_with_fee_and_error(client: ChainClient) -> None:
    payer = await _funded(client, 10**9)
    tx = _transfer(payer, Keypair().pubkey(), 10**12, (await _blockhash(client))["blockhash"])
    preflight = await client.send(tx)
    assert preflight["error"]["code"] == -32002
    assert preflight["error"]["data"]["err"] == {"InstructionError": [0, {"Custom": 1}]}
    assert any("insufficient lamports" in line for line in preflight["error"]["data"]["logs"])
    signature = (await client.send(tx, skip_preflight=True))["result"]
    status = await client.wait_status(signature, "confirmed")
    assert status["err"] == {"InstructionError": [0, {"Custom": 1}]}
    assert status["status"] == {"Err": status["err"]}
    transaction = await client.result("getTransaction", signature,
                                      {"commitment": "confirmed", "maxSupportedTransactionVersion": 0})
    assert transaction["meta"]["err"] == status["err"]
    assert transaction["meta"]["fee"] == 5000
    assert transaction["meta"]["preBalances"][0] - transaction["meta"]["postBalances"][0] == 5000


async def test_get_transaction_needs_max_supported_version_for_v0(client: ChainClient) -> None:
    payer = await _funded(client)
    tx = _transfer(payer, Keypair().pubkey(), 1_000_000, (await _blockhash(client))["blockhash"])
    signature = (await client.send(tx))["result"]
    await client.wait_status(signature, "confirmed")
    answer = await client.rpc("getTransaction", signature, {"commitment": "confirmed"})
    assert answer["error"]["code"] == -32015
    processed = await client.rpc("getTransaction", signature, {"commitment": "processed"})
    assert processed["error"]["code"] == -32602
    b64 = await client.result("getTransaction", signature, {"commitment": "confirmed", "encoding": "base64",
                                                           "maxSupportedTransactionVersion": 0})
    assert base64.b64decode(b64["transaction"][0]) == bytes(tx)
    assert b64["version"] == 0


async def test_simulate_transaction(client: ChainClient) -> None:
    payer = await _funded(client)
    tx = _transfer(payer, Keypair().pubkey(), 1_000_000, (await _blockhash(client))["blockhash"])
    simulated = await client.result("simulateTransaction", base64.b64encode(bytes(tx)).decode(),
                                    {"encoding": "base64", "commitment": "processed"})
    assert simulated["value"]["err"] is None and simulated["value"]["unitsConsumed"] > 0
    assert await client.status(str(tx.signatures[0])) is None  # nothing committed
    stale = _transfer(payer, Keypair().pubkey(), 1_000_000, "11111111111111111111111111111111")
    replaced = await client.result("simulateTransaction", base64.b64encode(bytes(stale)).decode(),
                                   {"encoding": "base64", "replaceRecentBlockhash": True})
    assert replaced["value"]["err"] is None
    assert replaced["value"]["replacementBlockhash"]["blockhash"]
    not_replaced = await client.result("simulateTransaction", base64.b64encode(bytes(stale)).decode(),
                                       {"encoding": "base64"})
    assert not_replaced["value"]["err"] == "BlockhashNotFound"


async def test_accounts_and_misc_methods(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    info = await client.result("getAccountInfo", vault, {"encoding": "base64"})
    assert info["value"]["owner"] == "11111111111111111111111111111111"
    assert info["value"]["lamports"] > 0
    missing = await client.result("getAccountInfo", str(Keypair().pubkey()), {"encoding": "base64"})
    assert missing["value"] is None
    usdc = await client.token_balance(vault, "USDC")
    assert usdc == 100_000 * 10**6
    assert (await client.rpc("getTokenAccountBalance", vault))["error"]["code"] == -32602
    assert await client.result("getHealth") == "ok"
    assert "solana-core" in await client.result("getVersion")
    assert await client.result("getMinimumBalanceForRentExemption", 165) == 2039280
    history = await client.result("getSignaturesForAddress", vault, {"limit": 10})
    assert isinstance(history, list)


async def test_signatures_for_address_newest_first_with_paging(client: ChainClient) -> None:
    payer = await _funded(client)
    signatures = []
    for lamports in (1_000_000, 2_000_000, 3_000_000):
        tx = _transfer(payer, Keypair().pubkey(), lamports, (await _blockhash(client))["blockhash"])
        signatures.append((await client.send(tx))["result"])
    await client.wait_status(signatures[-1], "confirmed")
    listed = await client.result("getSignaturesForAddress", str(payer.pubkey()), {"commitment": "confirmed"})
    assert [entry["signature"] for entry in listed][:3] == signatures[::-1]
    page = await client.result("getSignaturesForAddress", str(payer.pubkey()),
                               {"commitment": "confirmed", "before": signatures[2], "limit": 1})
    assert [entry["signature"] for entry in page] == [signatures[1]]
    assert set(listed[0]) >= {"signature", "slot", "err", "memo", "blockTime", "confirmationStatus"}


async def test_solana_py_async_client_round_trip(solana_client, client: ChainClient) -> None:
    payer = Keypair()
    airdrop = await solana_client.request_airdrop(payer.pubkey(), 2 * 10**9)
    await client.wait_status(str(airdrop.value), "confirmed")
    assert (await solana_client.get_balance(payer.pubkey(), Processed)).value == 2 * 10**9
    latest = await solana_client.get_latest_blockhash(Confirmed)
    height = (await solana_client.get_block_height(Processed)).value
    assert latest.value.last_valid_block_height - 150 <= height <= latest.value.last_valid_block_height
    receiver = Keypair().pubkey()
    message = MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(
        from_pubkey=payer.pubkey(), to_pubkey=receiver, lamports=10**6))], [], latest.value.blockhash)
    tx = VersionedTransaction(message, [payer])
    opts = TxOpts(skip_preflight=False, preflight_commitment=Confirmed, skip_confirmation=True)
    sent = await solana_client.send_raw_transaction(bytes(tx), opts=opts)
    assert sent.value == tx.signatures[0]
    with pytest.raises(RPCException) as raised:
        await solana_client.send_raw_transaction(bytes(tx), opts=opts)
    failure = raised.value.args[0]
    assert isinstance(failure, SendTransactionPreflightFailureMessage)
    assert "already been processed" in failure.message
    await client.wait_status(str(tx.signatures[0]), "confirmed")
    statuses = await solana_client.get_signature_statuses([tx.signatures[0]], search_transaction_history=True)
    assert statuses.value[0] is not None and statuses.value[0].err is None
    fetched = await solana_client.get_transaction(tx.signatures[0], commitment=Confirmed,
                                                  max_supported_transaction_version=0)
    assert fetched.value is not None and fetched.value.slot == statuses.value[0].slot
    assert fetched.value.transaction.meta.err is None
    history = await solana_client.get_signatures_for_address(payer.pubkey(), commitment=Confirmed)
    assert history.value[0].signature == tx.signatures[0]
    info = await solana_client.get_account_info(receiver, Processed)
    assert info.value.lamports == 10**6
    assert (await solana_client.get_slot(Finalized)).value <= (await solana_client.get_slot(Processed)).value
    assert (await solana_client.is_connected()) is True
