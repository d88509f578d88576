"""Helpers of the reconciler's integration tests: transactions signed with a vault's key outside the
executor (sent, or only signed), the ledger rows an executor would write for them, and one pass."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass

import httpx
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tests.integration.executor.harness import rpc
from tests.integration.ledger.helpers import on_the_loop
from xorj.chain.rpc import SolanaRpc
from xorj.domain.reconciliation import FinalityGrace
from xorj.ledger.repository import Ledger
from xorj.reconciler.service import PassReport, ReconcileSettings, reconcile_pass


@dataclass(frozen=True)
class SignedTx:
    signature: str
    raw: bytes
    last_valid_block_height: int


def vault_key(local_chain, vault: str) -> Keypair:
    return Keypair.from_bytes(local_chain.vault_keypair_bytes(vault))


def signed_transfer(rpc_url: str, payer: Keypair, to: Pubkey | None = None, lamports: int = 1_000_000,
                    latest: dict | None = None) -> SignedTx:
    """A SOL transfer signed by ``payer`` (the vault's key used by hand), not sent. ``latest``: a
    getLatestBlockhash value to use (default: ask for one)."""
    latest = latest or rpc(rpc_url, "getLatestBlockhash", [{"commitment": "confirmed"}])["value"]
    message = MessageV0.try_compile(
        payer.pubkey(),
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to or Keypair().pubkey(), lamports=lamports))],
        [], Hash.from_string(latest["blockhash"]))
    tx = VersionedTransaction(message, [payer])
    return SignedTx(str(tx.signatures[0]), bytes(tx), latest["lastValidBlockHeight"])


def send(rpc_url: str, tx: SignedTx) -> str:
    signature = rpc(rpc_url, "sendTransaction", [base64.b64encode(tx.raw).decode(),
                                                 {"encoding": "base64", "skipPreflight": False}])
    assert signature == tx.signature
    return signature


def send_batch(rpc_url: str, txs: list[SignedTx]) -> list[str]:
    """Send many transactions in one JSON-RPC batch request (quicker than one request each)."""
    batch = [{"jsonrpc": "2.0", "id": i, "method": "sendTransaction",
              "params": [base64.b64encode(tx.raw).decode(), {"encoding": "base64", "skipPreflight": True}]}
             for i, tx in enumerate(txs)]
    answers = sorted(httpx.post(rpc_url, json=batch, timeout=60).json(), key=lambda a: a["id"])
    assert [a.get("result") for a in answers] == [tx.signature for tx in txs], answers[:3]
    return [tx.signature for tx in txs]


def wait_finalized(rpc_url: str, signatures: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = rpc(rpc_url, "getSignatureStatuses", [signatures, {"searchTransactionHistory": True}])["value"]
        if all(s is not None and s["confirmationStatus"] == "finalized" for s in statuses):
            return
        assert time.monotonic() < deadline, f"not finalized after {timeout}s: {statuses}"
        time.sleep(0.2)


def one_pass(ledger: Ledger, rpc_url: str, vaults: list[str] | None, *, grace_seconds: float = 120.0,
             grace_slots: int = 150, page_limit: int = 1000) -> PassReport:
    settings = ReconcileSettings(grace=FinalityGrace(seconds=grace_seconds, slots=grace_slots), page_limit=page_limit,
                                 max_signatures_per_vault=max(page_limit, 100_000))

    async def main() -> PassReport:
        async with on_the_loop(ledger) as on_loop, SolanaRpc(rpc_url) as client:
            return await reconcile_pass(on_loop, client, settings, vaults)

    return asyncio.run(main())
