"""``xorj watcher``: follow every lead trader any strategy follows and copy their swaps into the
ledger, exactly once (settings from ``XORJ_*``; see xorj.watcher.settings)."""

from __future__ import annotations

import asyncio

import click

from xorj.commands.executor import _configure_logging


@click.command("watcher")
@click.option("--check-config", is_flag=True, help="Validate the settings, then exit.")
def watcher(check_config: bool) -> None:
    """Watch lead traders on chain (RPC polling from a cursor in the ledger, and a Helius-compatible
    webhook receiver when XORJ_WATCHER_WEBHOOK_TOKEN is set) and admit one follower trade per
    following strategy for each lead swap, or record why not. Serves /metrics, /healthz and the
    webhook on XORJ_WATCHER_HTTP_PORT. The follow table comes from the Kubernetes API
    (TradingStrategies and TraderPools of every namespace), or from XORJ_WATCHER_STRATEGIES_FILE."""
    from xorj.errors import XorjError
    from xorj.watcher.settings import load_settings

    try:
        settings = load_settings()
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    _configure_logging(settings.log_level)
    if check_config:
        source = settings.watcher_strategies_file or "the Kubernetes API"
        click.echo(f"settings ok: follow table from {source}, webhook "
                   f"{'on' if settings.watcher_webhook_token else 'off'}, poll every "
                   f"{settings.watcher_poll_interval_seconds:g}s")
        return
    from xorj.ledger.migrate import migrate
    from xorj.watcher.service import WatcherService

    try:
        # the schema first, once, before the event loop starts: the watcher's own ledger calls then
        # all run on the loop (xorj.ledger.aio)
        migrate(settings.ledger_dsn.get_secret_value())
        asyncio.run(WatcherService(settings).run())
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
