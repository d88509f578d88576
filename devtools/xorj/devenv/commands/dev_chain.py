"""``xorj dev chain``: run the local Solana chain (LiteSVM JSON-RPC + Jupiter-compatible market) and
inject faults into a running one."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from xorj.devenv.chain.faults import HOSTILE_QUOTE_MODES, HOSTILE_SWAP_MODES, KINDS
from xorj.errors import EnvironmentSetupError, InvalidInputError


def _configure_logging() -> None:
    """JSON lines on stderr: faults fired and admin actions, for tests and chaos runs to read."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("xorj.devenv.chain")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@click.group()
def chain() -> None:
    """Local Solana chain: LiteSVM behind a Solana JSON-RPC server and a Jupiter-compatible swap API."""


@chain.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option("--port", default=0, show_default=True, type=int, help="TCP port (0: any free port).")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where chain.json and vaults/<pubkey>.json are written.")
@click.option("--vaults", default=4, show_default=True, type=int, help="Funded vaults to create.")
@click.option("--slot-ms", default=400, show_default=True, type=int, help="Block interval in milliseconds.")
@click.option("--finalize-depth", default=32, show_default=True, type=int,
              help="Blocks after which a transaction is finalized.")
@click.option("--confirm-depth", default=1, show_default=True, type=int,
              help="Blocks after which a transaction is confirmed.")
@click.option("--seed", default="default", show_default=True, help="Seed for mint and pool addresses.")
@click.option("--fault-seed", default=None, type=int, help="Seed of the fault injector's random draws.")
@click.option("--vault-usdc", default=100_000, show_default=True, type=int,
              help="Whole USDC-like tokens per vault.")
@click.option("--parent-pid", default=None, type=int,
              help="Exit when this process is gone (test fixtures pass their own pid).")
@click.option("--vault-keypair", "vault_keypairs", multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Also fund this existing vault (Solana CLI keypair file); repeatable.")
def serve(host: str, port: int, state_dir: Path, vaults: int, slot_ms: int, finalize_depth: int,
          confirm_depth: int, seed: str, fault_seed: int | None, vault_usdc: int,
          vault_keypairs: tuple[Path, ...], parent_pid: int | None) -> None:
    """Seed mints, a market and funded vaults, then serve until SIGTERM/SIGINT."""
    if not host.startswith("127.") and host != "localhost":
        raise click.BadParameter("must be a loopback address (127.0.0.0/8)", param_hint="--host")
    if not 0 < confirm_depth <= finalize_depth:
        raise click.BadParameter("must be positive and at most --finalize-depth", param_hint="--confirm-depth")
    from xorj.devenv.chain.environment import SeedConfig, build, read_keypair
    from xorj.devenv.chain.environment import serve as serve_chain
    from xorj.devenv.chain.node import NodeConfig

    _configure_logging()
    try:
        extra = [read_keypair(path) for path in vault_keypairs]
        server = build(SeedConfig(vaults=vaults, seed=seed, vault_usdc=vault_usdc),
                       NodeConfig(confirm_depth=confirm_depth, finalize_depth=finalize_depth),
                       slot_ms=slot_ms, fault_seed=fault_seed, extra_vaults=extra)
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None

    def ready(state: dict[str, Any]) -> None:
        click.echo(f"xorj-chain ready rpc_url={state['rpc_url']} swap_api_url={state['swap_api_url']} "
                   f"admin_url={state['admin_url']} state={state_dir / 'chain.json'}")
        sys.stdout.flush()

    try:
        asyncio.run(serve_chain(server, host, port, state_dir, ready, parent_pid=parent_pid))
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port} or write {state_dir}: {exc}") from None


# ---- fault injection on a running chain --------------------------------------------------------------

def _admin_url(state_dir: Path | None, admin_url: str | None) -> str:
    if admin_url:
        return admin_url.rstrip("/")
    if state_dir is None:
        raise click.UsageError("give --state-dir (of a running `xorj dev chain serve`) or --admin-url")
    try:
        return json.loads((state_dir / "chain.json").read_text())["admin_url"]
    except (OSError, ValueError, KeyError) as exc:
        raise click.UsageError(f"cannot read {state_dir / 'chain.json'}: {exc}") from None


def admin_request(admin_url: str, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One admin call; raises EnvironmentSetupError (unreachable) or InvalidInputError (400)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(admin_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        if exc.code == 400:
            raise InvalidInputError(json.loads(detail).get("error", detail)) from None
        raise EnvironmentSetupError(f"chain admin {method} {path}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EnvironmentSetupError(f"chain admin at {admin_url} unreachable: {exc}") from None


_target = [
    click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="State directory of the running chain."),
    click.option("--admin-url", default=None, help="Admin URL (instead of --state-dir)."),
]


def _with_target(func: Any) -> Any:
    for option in reversed(_target):
        func = option(func)
    return func


def _run(state_dir: Path | None, admin_url: str | None, method: str, path: str, body: Any = None) -> None:
    try:
        result = admin_request(_admin_url(state_dir, admin_url), method, path, body)
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, indent=2))


@chain.group()
def fault() -> None:
    """Inject faults into a running local chain (see xorj.devenv.chain.faults for the kinds)."""


@fault.command("add")
@_with_target
@click.option("--kind", required=True,
              type=click.Choice(list(KINDS)))
@click.option("--method", default="*", show_default=True,
              help="JSON-RPC method, 'quote', 'swap', 'jupiter' (both) or '*' (every JSON-RPC method).")
@click.option("--probability", default=1.0, show_default=True, type=float)
@click.option("--count", default=None, type=int, help="Fire at most this many times (default: until reset).")
@click.option("--delay-ms", default=0, type=int, help="latency: added delay.")
@click.option("--hang-s", default=30.0, type=float, help="timeout / answer=timeout: how long to hold the request.")
@click.option("--answer", default="timeout", type=click.Choice(["timeout", "close", "error", "http_error"]),
              help="drop_after_process: how the answer is lost.")
@click.option("--code", default=-32005, type=int, help="error: JSON-RPC error code.")
@click.option("--message", default="Node is unhealthy", help="error: JSON-RPC error message.")
@click.option("--status", default=503, type=int, help="http_error: HTTP status.")
@click.option("--blocks", default=0, type=int, help="status_lag: how many blocks behind the answering node is (context slot, heights, statuses).")
@click.option("--node", default="*", show_default=True,
              help="RPC node: '*' (all), 'main' (JSON-RPC at /) or NAME (JSON-RPC at /nodes/NAME/).")
@click.option("--mode", default="", type=click.Choice(["", *HOSTILE_SWAP_MODES, *HOSTILE_QUOTE_MODES]),
              help="hostile: the attack the swap API serves (method 'swap'/'quote' or 'jupiter').")
def fault_add(state_dir: Path | None, admin_url: str | None, **spec: Any) -> None:
    """Add a fault."""
    if not spec.get("mode"):
        spec.pop("mode", None)
    _run(state_dir, admin_url, "POST", "/faults", spec)


@fault.command("list")
@_with_target
def fault_list(state_dir: Path | None, admin_url: str | None) -> None:
    """Show active faults and how often each fired."""
    _run(state_dir, admin_url, "GET", "/faults")


@fault.command("reset")
@_with_target
def fault_reset(state_dir: Path | None, admin_url: str | None) -> None:
    """Remove every fault and resume block production."""
    _run(state_dir, admin_url, "POST", "/reset")


@fault.command("price")
@_with_target
@click.option("--bps", required=True, type=int, help="Move the SOL-like token's price by this many basis points.")
def fault_price(state_dir: Path | None, admin_url: str | None, bps: int) -> None:
    """Move the market price (other traders), so outstanding quotes go stale."""
    _run(state_dir, admin_url, "POST", "/price", {"bps": bps})


@fault.command("expire")
@_with_target
def fault_expire(state_dir: Path | None, admin_url: str | None) -> None:
    """Produce 151 blocks at once: every blockhash handed out so far expires."""
    _run(state_dir, admin_url, "POST", "/expire")


@fault.command("blocks")
@_with_target
@click.option("--count", required=True, type=int)
def fault_blocks(state_dir: Path | None, admin_url: str | None, count: int) -> None:
    """Produce COUNT blocks at once."""
    _run(state_dir, admin_url, "POST", "/blocks", {"count": count})


@fault.command("pause")
@_with_target
def fault_pause(state_dir: Path | None, admin_url: str | None) -> None:
    """Stop block production (nothing confirms further, nothing expires)."""
    _run(state_dir, admin_url, "POST", "/pause", {"paused": True})


@fault.command("resume")
@_with_target
def fault_resume(state_dir: Path | None, admin_url: str | None) -> None:
    """Resume block production."""
    _run(state_dir, admin_url, "POST", "/pause", {"paused": False})


@chain.command()
@_with_target
def state(state_dir: Path | None, admin_url: str | None) -> None:
    """Print the running chain's state: slot, price, reserves, faults, request counts."""
    _run(state_dir, admin_url, "GET", "/state")
