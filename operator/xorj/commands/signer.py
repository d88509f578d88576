"""``xorj signer``: the signer boundary. Holds the vault keys and signs, on a Unix socket, only what
its own checks allow (settings from ``XORJ_SIGNER_*``; see xorj.signer)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import click

from xorj.commands.executor import _configure_logging


@click.command("signer")
@click.option("--check-config", is_flag=True, help="Validate the settings and the vault keys, then exit.")
def signer(check_config: bool) -> None:
    """Serve signatures of guarded swap transactions to the executor over a Unix socket.

    Settings come from the environment: XORJ_SIGNER_SOCKET, XORJ_SIGNER_LEDGER_DSN,
    XORJ_SIGNER_RPC_URL, and XORJ_SIGNER_KEYPAIR_FILE (one vault) or XORJ_SIGNER_KEYS_DIR (one
    keypair file per vault, read again when it changes). SIGTERM stops it. Error texts carrying the
    RPC URL (and its API key) are redacted before they reach a log line.
    """
    from xorj.errors import XorjError
    from xorj.signer.server import SignerService
    from xorj.signer.settings import load_signer_settings

    try:
        settings = load_signer_settings()
        _configure_logging(settings.log_level)
        service = SignerService(settings)
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    if check_config:
        click.echo(f"settings ok: socket {settings.socket}, keys: {service.keyring.describe()}")
        return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, service.request_stop)
        await service.run()

    try:
        asyncio.run(main())
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
