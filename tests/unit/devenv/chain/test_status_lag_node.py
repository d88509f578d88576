"""The local chain's ``status_lag`` fault answers as a node N blocks behind: context slot, heights and
transaction statuses all as of the lagging head (pure: the node and its JSON-RPC methods, no server)."""

from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from xorj.devenv.chain.node import LocalChainNode
from xorj.devenv.chain.rpc_methods import RpcMethods


def _chain_with_recent_transaction() -> tuple[LocalChainNode, RpcMethods, str]:
    node = LocalChainNode()
    node.advance(200)
    signature = node.airdrop(Keypair().pubkey(), 10**9)  # a real transaction, in the current block
    node.advance(40)
    return node, RpcMethods(node), signature


def test_lagging_answers_carry_the_lagging_context_slot_and_miss_recent_transactions():
    node, rpc, signature = _chain_with_recent_transaction()
    current = rpc.call("getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])
    assert current["context"]["slot"] == node.slot
    assert current["value"][0]["confirmationStatus"] == "finalized"  # 40 blocks >= finalize depth 32

    rpc.status_lag_blocks = 60
    lagging = rpc.call("getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])
    assert lagging["context"]["slot"] == node.slot - 60
    assert lagging["value"] == [None]  # landed 40 blocks ago: the node 60 behind has not seen it
    assert rpc.call("getTransaction", [signature, {"encoding": "json", "commitment": "confirmed"}]) is None

    rpc.status_lag_blocks = 30  # 10 blocks past it: found, at the depth that node sees
    seen = rpc.call("getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])
    assert seen["context"]["slot"] == node.slot - 30
    assert seen["value"][0]["confirmationStatus"] == "confirmed" and seen["value"][0]["confirmations"] == 10


def test_lagging_heights_and_slots_count_back_from_the_lagging_head():
    node, rpc, _ = _chain_with_recent_transaction()
    rpc.status_lag_blocks = 60
    assert rpc.call("getBlockHeight", [{"commitment": "processed"}]) == node.height - 60
    assert rpc.call("getBlockHeight", [{"commitment": "finalized"}]) == node.height - 60 - 32
    assert rpc.call("getSlot", [{"commitment": "confirmed"}]) == node.slot - 61
    epoch = rpc.call("getEpochInfo", [{"commitment": "finalized"}])
    assert (epoch["absoluteSlot"], epoch["blockHeight"]) == (node.slot - 92, node.height - 92)
    blockhash = rpc.call("getLatestBlockhash", [{"commitment": "processed"}])
    assert blockhash["context"]["slot"] == node.slot - 60
    assert blockhash["value"]["lastValidBlockHeight"] == node.height - 60 + 150
    balance = rpc.call("getBalance", [str(Pubkey.default()), {"commitment": "processed"}])
    assert balance["context"]["slot"] == node.slot - 60  # state is the latest; only its context lags
    rpc.status_lag_blocks = 0
    assert rpc.call("getBlockHeight", [{"commitment": "processed"}]) == node.height


def test_a_lag_longer_than_the_kept_history_stops_at_the_oldest_kept_block():
    node, rpc, _ = _chain_with_recent_transaction()
    node.advance(1_000)
    rpc.status_lag_blocks = 100_000
    oldest = next(iter(node.blocks))
    assert rpc.call("getBlockHeight", [{"commitment": "finalized"}]) == oldest
