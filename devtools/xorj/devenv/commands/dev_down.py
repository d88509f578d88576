"""``xorj dev down``: stop everything ``xorj dev up`` started; nothing is left running."""

from __future__ import annotations

import click

from xorj.errors import EnvironmentSetupError


def _progress(message: str) -> None:
    click.echo(f"[dev down] {message}", err=True)


@click.command()
def down() -> None:
    """Stop the executors, the operator, the chain, Postgres and the cluster."""
    from xorj.devenv.demo import Demo

    try:
        Demo(progress=_progress).down()
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("everything stopped")
