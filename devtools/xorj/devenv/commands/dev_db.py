"""``xorj dev db up | down | status | dsn``: the local Postgres server holding the ledger."""

from __future__ import annotations

import click

from xorj.errors import XorjError


def _database():
    from xorj.devenv.postgres import DevDatabase

    return DevDatabase()


@click.group()
def db() -> None:
    """A real PostgreSQL server on 127.0.0.1 (Debian's packages) with the ledger database ``xorj``."""


@db.command()
def up() -> None:
    """Start the server (initialising it the first time), migrate the ledger, print its DSN."""
    database = _database()
    click.echo(f"[db] starting Postgres (data in {database.root})", err=True)
    try:
        dsn = database.up()
    except XorjError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("[db] ledger migrated", err=True)
    click.echo(dsn)


@db.command()
@click.option("--purge", is_flag=True, help="Also delete the data directory (the next up starts empty).")
def down(purge: bool) -> None:
    """Stop the server (its data stays for the next ``up`` unless --purge)."""
    database = _database()
    if database.is_running():
        database.down(purge=purge)
        click.echo("[db] stopped", err=True)
    else:
        click.echo("[db] not running", err=True)
        if purge:
            database.down(purge=True)
    if purge:
        click.echo(f"[db] removed {database.root}", err=True)


@db.command()
def status() -> None:
    """Show whether the server runs and which migrations the ledger has. Exit code 1 when down."""
    from xorj.ledger.migrate import applied_versions

    database = _database()
    if not database.is_running():
        click.echo(f"postgres: stopped (data {database.root})")
        raise SystemExit(1)
    click.echo(f"postgres: running pid {database.server.pid} on 127.0.0.1:{database.port} (data {database.root})")
    try:
        versions = applied_versions(database.dsn)
    except XorjError as exc:
        click.echo(f"ledger: unreachable ({exc})")
        raise SystemExit(1) from exc
    click.echo(f"ledger: database {database.DATABASE}, migrations applied: {versions or 'none'}")


@db.command()
def dsn() -> None:
    """Print the ledger's DSN (e.g. export XORJ_LEDGER_DSN=$(xorj dev db dsn)). Exit code 1 when down."""
    database = _database()
    if not database.is_running():
        raise click.ClickException("the local Postgres server is not running: run `xorj dev db up`")
    click.echo(database.dsn)
