"""Local chain benchmark: how fast the LiteSVM JSON-RPC + Jupiter stand-in serves swaps, so the
executor's figures can be read against the ceiling the chain itself imposes.

Starts ``xorj dev chain serve`` (its own process), then for 1 and C concurrent clients runs
quote -> swap -> sign -> sendTransaction (with preflight) and prints swaps/s and p50/p99 latency of the
whole round trip, plus the server's CPU seconds per swap and its idle CPU share.

    python bench/bench_chain.py                  # 300 swaps, 1 and 4 clients
    python bench/bench_chain.py --swaps 1000 --clients 1 8 --slot-ms 400

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from solders.message import to_bytes_versioned  # noqa: E402
from solders.transaction import VersionedTransaction  # noqa: E402

from tests.fixtures.chain import LocalChainHandle, start_local_chain, stop_local_chain  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_swap(http: httpx.AsyncClient, chain: LocalChainHandle, vault: str, keypair: Keypair, amount: int) -> None:
    quote = (await http.get(chain.swap_api_url + "/quote", params={
        "inputMint": chain.mints["USDC"], "outputMint": chain.mints["SOL"], "amount": str(amount),
        "slippageBps": "100"})).json()
    body = (await http.post(chain.swap_api_url + "/swap", json={"quoteResponse": quote, "userPublicKey": vault})).json()
    tx = VersionedTransaction.from_bytes(base64.b64decode(body["swapTransaction"]))
    signatures = list(tx.signatures)
    signatures[0] = keypair.sign_message(to_bytes_versioned(tx.message))
    signed = VersionedTransaction.populate(tx.message, signatures)
    answer = (await http.post(chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": [
        base64.b64encode(bytes(signed)).decode(), {"encoding": "base64", "preflightCommitment": "confirmed"}]})).json()
    if "result" not in answer:
        raise RuntimeError(f"swap failed: {answer.get('error')}")


async def run(chain: LocalChainHandle, swaps: int, clients: int) -> tuple[float, list[float]]:
    vaults = [(pubkey, Keypair.from_bytes(chain.vault_keypair_bytes(pubkey))) for pubkey in chain.vaults]
    latencies: list[float] = []
    counter = iter(range(swaps))

    async def worker(index: int) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            for n in counter:
                vault, keypair = vaults[(index + n) % len(vaults)]
                started = time.perf_counter()
                await one_swap(http, chain, vault, keypair, 1_000_000 + n)  # distinct amounts: distinct txs
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return time.perf_counter() - started, sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=300)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--slot-ms", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xorj-bench-chain-") as tmp:
        print(f"starting the local chain (slot {args.slot_ms} ms)", flush=True)
        chain = start_local_chain(Path(tmp), slot_ms=args.slot_ms, vaults=8)
        try:
            pid = chain.process.pid
            idle_before = cpu_seconds(pid)
            time.sleep(3)
            print(f"idle server CPU: {(cpu_seconds(pid) - idle_before) / 3 * 100:.1f}% of one core")
            for clients in args.clients:
                cpu_before = cpu_seconds(pid)
                elapsed, latencies = asyncio.run(run(chain, args.swaps, clients))
                cpu = cpu_seconds(pid) - cpu_before
                p50 = latencies[len(latencies) // 2] * 1000
                p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
                print(f"{clients} client(s): {args.swaps / elapsed:6.1f} swaps/s  round trip p50 {p50:5.1f} ms  "
                      f"p99 {p99:5.1f} ms  server CPU {cpu / args.swaps * 1000:.2f} ms/swap", flush=True)
        finally:
            stop_local_chain(chain)


if __name__ == "__main__":
    main()
