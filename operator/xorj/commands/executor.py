"""``xorj executor``: run the exactly-once executor of one strategy (settings from ``XORJ_*``)."""

from __future__ import annotations

import asyncio
import logging
import sys

import click


def _configure_logging(level: str) -> None:
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from xorj.redaction import install_log_redaction

    install_log_redaction()  # the RPC URL carries its API key: never let it reach a log line


@click.command("executor")
@click.option("--check-config", is_flag=True, help="Validate the settings and the vault keypair file, then exit.")
def executor(check_config: bool) -> None:
    """Claim this strategy's trades from the ledger and execute them exactly once on Solana.

    Settings come from the environment (XORJ_LEDGER_DSN, XORJ_STRATEGY, XORJ_RPC_URL,
    XORJ_SWAP_API_URL, XORJ_VAULT_KEYPAIR_FILE or XORJ_VAULT_KEYS_DIR or XORJ_SIGNER_SOCKET, XORJ_CONCURRENCY, XORJ_LEASE_SECONDS, slippage
    policy and risk limits; see xorj.executor.settings). Serves /metrics and /healthz. SIGTERM:
    finish in-flight trades within the grace period, hand back the rest.
    """
    from xorj.errors import XorjError
    from xorj.executor.settings import load_settings
    from xorj.executor.signing import keyring_of

    try:
        settings = load_settings()
        _configure_logging(settings.log_level)
        keyring = keyring_of(settings)
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
    if check_config:
        held = keyring.describe() if keyring is not None else f"the signer on {settings.signer_socket}"
        click.echo(f"settings ok: strategy {settings.strategy}, keys: {held}, concurrency {settings.concurrency}")
        return

    from xorj.executor.service import ExecutorService

    async def main() -> None:
        service = ExecutorService(settings, keyring=keyring)
        await service.run()

    try:
        asyncio.run(main())
    except XorjError as exc:
        raise click.ClickException(str(exc)) from None
