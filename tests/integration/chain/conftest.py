"""Helpers shared by the local chain's integration tests: a raw JSON-RPC caller, a solana-py client,
swap building and signing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from tests.fixtures.chain import LocalChainHandle


@dataclass
class ChainClient:
    chain: LocalChainHandle
    http: httpx.AsyncClient

    async def rpc(self, method: str, *params: Any, timeout: float = 10.0) -> dict[str, Any]:
        """One JSON-RPC call; returns the whole answer (result or error)."""
        answer = await self.http.post(self.chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                                 "params": list(params)}, timeout=timeout)
        answer.raise_for_status()
        return answer.json()

    async def result(self, method: str, *params: Any) -> Any:
        answer = await self.rpc(method, *params)
        assert "error" not in answer, answer
        return answer["result"]

    async def quote(self, input_symbol: str, output_symbol: str, amount: int, slippage_bps: int = 50) -> dict:
        answer = await self.http.get(self.chain.swap_api_url + "/quote", params={
            "inputMint": self.chain.mints[input_symbol], "outputMint": self.chain.mints[output_symbol],
            "amount": str(amount), "slippageBps": str(slippage_bps)})
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def swap_transaction(self, quote: dict, vault: str) -> tuple[VersionedTransaction, dict]:
        answer = await self.http.post(self.chain.swap_api_url + "/swap",
                                      json={"quoteResponse": quote, "userPublicKey": vault,
                                            "wrapAndUnwrapSol": True})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return VersionedTransaction.from_bytes(base64.b64decode(body["swapTransaction"])), body

    def sign(self, tx: VersionedTransaction, vault: str) -> VersionedTransaction:
        keypair = Keypair.from_bytes(self.chain.vault_keypair_bytes(vault))
        signatures = list(tx.signatures)
        signatures[0] = keypair.sign_message(to_bytes_versioned(tx.message))
        return VersionedTransaction.populate(tx.message, signatures)

    async def signed_swap(self, vault: str, input_symbol: str = "USDC", output_symbol: str = "SOL",
                          amount: int = 50_000_000, slippage_bps: int = 50
                          ) -> tuple[VersionedTransaction, dict, dict]:
        quote = await self.quote(input_symbol, output_symbol, amount, slippage_bps)
        tx, body = await self.swap_transaction(quote, vault)
        return self.sign(tx, vault), quote, body

    async def send(self, tx: VersionedTransaction, skip_preflight: bool = False, timeout: float = 10.0) -> dict:
        return await self.rpc("sendTransaction", base64.b64encode(bytes(tx)).decode(),
                              {"encoding": "base64", "skipPreflight": skip_preflight,
                               "preflightCommitment": "confirmed"}, timeout=timeout)

    async def token_balance(self, owner: str, symbol: str) -> int:
        ata = get_associated_token_address(Pubkey.from_string(owner), Pubkey.from_string(self.chain.mints[symbol]))
        value = (await self.result("getTokenAccountBalance", str(ata), {"commitment": "processed"}))["value"]
        return int(value["amount"])

    async def status(self, signature: str) -> dict | None:
        result = await self.result("getSignatureStatuses", [signature], {"searchTransactionHistory": True})
        return result["value"][0]

    async def wait_status(self, signature: str, level: str = "confirmed", timeout: float = 20.0) -> dict:
        import asyncio

        order = ["processed", "confirmed", "finalized"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = await self.status(signature)
            if status and order.index(status["confirmationStatus"]) >= order.index(level):
                return status
            assert loop.time() < deadline, f"{signature} not {level} after {timeout}s: {status}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def client(chain_faults_reset: LocalChainHandle) -> AsyncIterator[ChainClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield ChainClient(chain_faults_reset, http)


@pytest.fixture
async def solana_client(chain_faults_reset: LocalChainHandle) -> AsyncIterator[AsyncClient]:
    rpc = AsyncClient(chain_faults_reset.rpc_url, commitment=Confirmed, timeout=10)
    try:
        yield rpc
    finally:
        await rpc.close()


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1)
