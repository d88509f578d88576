"""The local chain's getTransaction carries the full meta a history parser reads: balances over the
static AND lookup-table keys (loadedAddresses), the lookups themselves, and inner instructions (real
LiteSVM execution, no server)."""

from __future__ import annotations

import struct

from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import get_associated_token_address

from xorj.devenv.chain.node import ALT_HEADER_SIZE, LocalChainNode
from xorj.devenv.chain.rpc_methods import RpcMethods
from xorj.domain.trader_history import landed_from_rpc_json

ALT_PROGRAM = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
U64_MAX = 2**64 - 1


def _lookup_table(node: LocalChainNode, addresses: list[Pubkey]) -> Pubkey:
    """An active address lookup table account holding ``addresses`` (the ALT program's layout)."""
    header = (struct.pack("<IQQB", 1, U64_MAX, 0, 0) + bytes([0]) + bytes(32) + bytes(2))
    assert len(header) == ALT_HEADER_SIZE
    data = header + b"".join(bytes(a) for a in addresses)
    key = Keypair().pubkey()
    node.svm.set_account(key, Account(lamports=10**9, data=data, owner=ALT_PROGRAM, executable=False,
                                      rent_epoch=0))
    return key


def _send(node: LocalChainNode, payer: Keypair, message: MessageV0) -> str:
    tx = VersionedTransaction(message, [payer])
    outcome = node.process(tx)
    assert outcome.landed and outcome.err is None, outcome
    node.advance(2)
    return outcome.signature


def test_v0_transfer_through_a_lookup_table_reports_loaded_addresses_and_their_balances() -> None:
    node = LocalChainNode()
    node.advance(5)
    payer = Keypair()
    node.airdrop(payer.pubkey(), 10**10)
    recipient = Keypair().pubkey()
    table = _lookup_table(node, [Keypair().pubkey(), recipient])
    node.advance(2)
    blockhash = Hash.from_string(node.current.blockhash)
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=recipient, lamports=123_456_789))
    message = MessageV0.try_compile(payer.pubkey(), [ix], [AddressLookupTableAccount(table, [Keypair().pubkey(),
                                                                                             recipient])],
                                    blockhash)
    assert message.address_table_lookups and bytes(message.address_table_lookups[0].writable_indexes) == b"\x01"
    signature = _send(node, payer, message)

    answer = RpcMethods(node).call("getTransaction", [signature, {"encoding": "json", "commitment": "confirmed",
                                                                  "maxSupportedTransactionVersion": 0}])
    meta = answer["meta"]
    assert meta["loadedAddresses"] == {"writable": [str(recipient)], "readonly": []}
    lookups = answer["transaction"]["message"]["addressTableLookups"]
    assert lookups == [{"accountKey": str(table), "writableIndexes": [1], "readonlyIndexes": []}]
    static = len(answer["transaction"]["message"]["accountKeys"])
    assert len(meta["preBalances"]) == len(meta["postBalances"]) == static + 1
    assert meta["preBalances"][static] == 0 and meta["postBalances"][static] == 123_456_789
    assert meta["innerInstructions"] == []  # a System transfer calls nothing
    tx = landed_from_rpc_json(answer)
    assert tx.account_keys[static] == str(recipient)
    # the recipient is found by address even though it is only in the lookup table
    listed = RpcMethods(node).call("getSignaturesForAddress", [str(recipient), {"commitment": "confirmed"}])
    assert [entry["signature"] for entry in listed] == [signature]


def test_inner_instructions_of_an_associated_token_account_creation() -> None:
    node = LocalChainNode()
    node.advance(5)
    payer = Keypair()
    node.airdrop(payer.pubkey(), 10**10)
    mint = Keypair().pubkey()
    # a mint account (SPL Token layout: initialized, 6 decimals)
    data = struct.pack("<I", 0) + bytes(32) + struct.pack("<QBB", 0, 6, 1) + struct.pack("<I", 0) + bytes(32)
    node.svm.set_account(mint, Account(lamports=10**9, data=data, owner=TOKEN_PROGRAM_ID, executable=False,
                                       rent_epoch=0))
    ata = get_associated_token_address(payer.pubkey(), mint)
    create = Instruction(ATA_PROGRAM, bytes([1]), [  # CreateIdempotent
        AccountMeta(payer.pubkey(), True, True), AccountMeta(ata, False, True),
        AccountMeta(payer.pubkey(), False, False), AccountMeta(mint, False, False),
        AccountMeta(Pubkey.from_string("11111111111111111111111111111111"), False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False)])
    message = MessageV0.try_compile(payer.pubkey(), [create], [], Hash.from_string(node.current.blockhash))
    signature = _send(node, payer, message)
    answer = RpcMethods(node).call("getTransaction", [signature, {"commitment": "confirmed",
                                                                  "maxSupportedTransactionVersion": 0}])
    inner = answer["meta"]["innerInstructions"]
    assert len(inner) == 1 and inner[0]["index"] == 0
    keys = answer["transaction"]["message"]["accountKeys"]
    programs = [keys[item["programIdIndex"]] for item in inner[0]["instructions"]]
    assert str(TOKEN_PROGRAM_ID) in programs and "11111111111111111111111111111111" in programs
    assert all(item["stackHeight"] == 2 for item in inner[0]["instructions"])
    post = answer["meta"]["postTokenBalances"]
    assert [(b["mint"], b["owner"], b["uiTokenAmount"]["amount"]) for b in post] == [
        (str(mint), str(payer.pubkey()), "0")]
