"""Seed and run the local chain: mints, a market with liquidity, funded vaults, and the state file.

``serve()`` is what ``xorj dev chain serve`` runs. The state directory it fills is the contract with
everything else (fixtures, the demo, the executor's local settings):

  DIR/chain.json                 rpc_url, swap_api_url, price_api_url, admin_url, mints, vaults, market, pid
  DIR/vaults/<pubkey>.json       each vault's keypair, Solana CLI format (JSON array of 64 bytes), 0600
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from solders.keypair import Keypair

from xorj.devenv.chain.faults import FaultEngine
from xorj.devenv.chain.market import Market
from xorj.devenv.chain.node import LocalChainNode, NodeConfig
from xorj.devenv.chain.rpc_server import ADMIN_PREFIX, PRICE_API_PATH, SWAP_API_PREFIX, ChainServer
from xorj.devenv.files import write_private
from xorj.errors import InvalidInputError

LAMPORTS_PER_SOL = 10**9


@dataclass(frozen=True)
class SeedConfig:
    vaults: int = 4
    vault_sol: float = 10.0  # native SOL for fees
    vault_usdc: int = 100_000  # whole USDC-like tokens per vault
    pool_sol: int = 100_000  # whole SOL-like tokens in the pool
    pool_usdc: int = 10_000_000  # whole USDC-like tokens in the pool (price 100)
    fee_bps: int = 25
    seed: str = "default"

    def validate(self) -> None:
        if not 0 <= self.vaults <= 1000:
            raise InvalidInputError(f"vaults must be between 0 and 1000, got {self.vaults}")
        for name in ("pool_sol", "pool_usdc"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(f"{name} must be positive")
        if not 0 <= self.fee_bps < 10_000:
            raise InvalidInputError(f"fee_bps must be between 0 and 9999, got {self.fee_bps}")


def read_keypair(path: Path) -> Keypair:
    """A Solana CLI keypair file; the error names the file, never its content."""
    try:
        return Keypair.from_bytes(bytes(json.loads(path.read_text())))
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path}: not a Solana CLI keypair file (JSON array of 64 bytes): "
                                f"{type(exc).__name__}") from None


def build(seed: SeedConfig, node_config: NodeConfig, slot_ms: int, fault_seed: int | None = None,
          extra_vaults: list[Keypair] | None = None) -> ChainServer:
    seed.validate()
    if slot_ms < 10:
        raise InvalidInputError(f"slot_ms must be at least 10, got {slot_ms}")
    node = LocalChainNode(node_config)
    market = Market(node, seed=seed.seed, fee_bps=seed.fee_bps)
    usdc = market.add_mint("USDC", 6)
    sol = market.add_mint("SOL", 9)
    market.seed_pool("SOL", "USDC", seed.pool_sol * 10**sol.decimals, seed.pool_usdc * 10**usdc.decimals)
    funding = {"USDC": seed.vault_usdc * 10**usdc.decimals}
    for keypair in extra_vaults or []:  # known identities first, e.g. a vault a Secret already holds
        market.add_vault(int(seed.vault_sol * LAMPORTS_PER_SOL), funding, keypair)
    for _ in range(seed.vaults):
        market.add_vault(int(seed.vault_sol * LAMPORTS_PER_SOL), funding)
    return ChainServer(node, market, slot_ms=slot_ms, faults=FaultEngine(seed=fault_seed))


def write_keypair(path: Path, keypair: Keypair) -> None:
    """Solana CLI keypair file: a JSON array of the 64 secret-key bytes, readable by the owner only."""
    write_private(path, json.dumps(list(bytes(keypair))))


def write_state(state_dir: Path, server: ChainServer, base_url: str) -> dict[str, Any]:
    vault_dir = state_dir / "vaults"
    vault_dir.mkdir(parents=True, exist_ok=True)
    for stale in vault_dir.glob("*.json"):  # keys of an earlier run's chain, whose state is gone
        if stale.stem not in server.market.vaults:
            stale.unlink()
    vaults = {}
    for pubkey, keypair in server.market.vaults.items():
        path = vault_dir / f"{pubkey}.json"
        write_keypair(path, keypair)
        vaults[pubkey] = str(path)
    market = server.market
    state = {
        "rpc_url": base_url + "/",
        "swap_api_url": base_url + SWAP_API_PREFIX,
        "price_api_url": base_url + PRICE_API_PATH,
        "admin_url": base_url + ADMIN_PREFIX,
        "mints": {symbol: {"address": str(info.address), "decimals": info.decimals}
                  for symbol, info in market.mints.items()},
        "vaults": vaults,
        "market": {"base": market.base_mint.symbol, "quote": market.quote_mint.symbol,
                   "fee_bps": market.fee_bps, "amm_key": str(market.amm_key),
                   "pool_authority": str(market.pool_authority.pubkey())},
        "jupiter_program_id": "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4",
        "slot_ms": server.slot_ms,
        "pid": os.getpid(),
    }
    tmp = state_dir / "chain.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_dir / "chain.json")  # readers never see a half-written file
    return state


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (a killed test run must not leave a chain behind)."""
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stop.set()
            return
        except PermissionError:
            pass  # exists, owned by someone else
        await asyncio.sleep(1.0)


async def serve(server: ChainServer, host: str, port: int, state_dir: Path,
                on_ready: Callable[[dict[str, Any]], None], parent_pid: int | None = None) -> None:
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    # requests held by timeout faults must not delay shutdown for long
    site = web.TCPSite(runner, host, port, shutdown_timeout=2.0)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    bound_port = sockets[0].getsockname()[1]
    state_dir.mkdir(parents=True, exist_ok=True)
    state = write_state(state_dir, server, f"http://{host}:{bound_port}")
    on_ready(state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        await stop.wait()
    finally:
        if watcher:
            watcher.cancel()
        await runner.cleanup()
