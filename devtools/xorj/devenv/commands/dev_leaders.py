"""``xorj dev leaders``: simulated lead traders on the local chain (issue 14 section 4).

    xorj dev leaders run --rpc-url URL --rate 6 --duration 60 [--history-days 92 --history-ticks 200]
    xorj dev leaders list

Keys live under ``--state-dir`` (``STATE_DIR/leaders/<style>.json``, mode 0600) and are never printed;
``list`` shows the public keys and behaviours. Progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import click


def default_state_dir() -> Path:
    configured = os.environ.get("XORJ_LEADERS_STATE_DIR")
    if configured:
        return Path(configured).expanduser()
    from xorj.devenv.toolchain import cache_root

    return cache_root() / "leaders"


STATE_DIR_OPTION = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the leaders' keys are kept (default $XORJ_LEADERS_STATE_DIR, else <xorj cache>/leaders).")


@click.group("leaders")
def leaders() -> None:
    """Simulated lead traders (steady, careful, reckless) swapping on the local chain's market."""


@leaders.command("run")
@click.option("--rpc-url", required=True, envvar="XORJ_RPC_URL",
              help="The local chain's JSON-RPC URL (its swap and admin APIs share the base URL).")
@click.option("--rate", type=click.FloatRange(min=0.0, min_open=True), default=6.0, show_default=True,
              help="Live ticks per minute (each leader may trade once a tick).")
@click.option("--duration", type=click.FloatRange(min=0.0), default=60.0, show_default=True,
              help="Seconds of live trading after the history phase (0: history only).")
@click.option("--history-days", type=click.FloatRange(min=0.0, max=3650.0), default=92.0, show_default=True,
              help="Backdate the history phase over this many days before now (0: no history phase).")
@click.option("--history-ticks", type=click.IntRange(min=0, max=100_000), default=200, show_default=True,
              help="Ticks in the history phase, spread evenly over --history-days.")
@click.option("--seed", type=int, default=1, show_default=True, help="Replays the same decisions.")
@STATE_DIR_OPTION
def run(rpc_url: str, rate: float, duration: float, history_days: float, history_ticks: int, seed: int,
        state_dir: Path | None) -> None:
    """Trade as the three leaders: a backdated history phase, then live at --rate for --duration."""
    import httpx

    from xorj.devenv.leaders import run_leaders
    from xorj.errors import XorjError

    directory = state_dir or default_state_dir()
    try:
        sent = asyncio.run(run_leaders(
            rpc_url, directory, seed=seed, history_days=history_days, history_ticks=history_ticks,
            rate_per_minute=rate, duration_s=duration, progress=lambda line: click.echo(line, err=True)))
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    except httpx.HTTPError as exc:  # the chain is not there, or hung up
        raise click.ClickException(f"--rpc-url {rpc_url}: {type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    click.echo(f"{sent} leader swaps sent", err=True)


@leaders.command("list")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@STATE_DIR_OPTION
def list_leaders(output: str, state_dir: Path | None) -> None:
    """The leaders' wallets (public keys) and behaviours."""
    from xorj.devenv.leaders import leader_wallets
    from xorj.domain.leaders import PROFILES

    directory = state_dir or default_state_dir()
    wallets = leader_wallets(directory, create=False)
    if not wallets:
        click.echo(f"no leaders under {directory} yet: `xorj dev leaders run` makes their keys", err=True)
    rows = [{"style": w.style.value, "wallet": w.pubkey, "behaviour": PROFILES[w.style].description}
            for w in wallets]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['style']:<9} {row['wallet']:<44} {row['behaviour']}")
