"""``xorj dev ...``: the local development environment (cluster, database, chain, whole demo)."""

from __future__ import annotations

import click

from xorj.cli import LazyGroup

DEV_COMMANDS: dict[str, str] = {
    "toolchain": "xorj.commands.dev_toolchain:toolchain",
    "cluster": "xorj.commands.dev_cluster:cluster",
    "db": "xorj.commands.dev_db:db",
    "chain": "xorj.commands.dev_chain:chain",
    "up": "xorj.commands.dev_up:up",
    "down": "xorj.commands.dev_down:down",
    "node": "xorj.commands.dev_node:node",
    "image": "xorj.commands.dev_image:image",
    "leaders": "xorj.commands.dev_leaders:leaders",
    "alert-receiver": "xorj.commands.dev_alert_receiver:alert_receiver",
}


@click.group(cls=LazyGroup, lazy_commands=DEV_COMMANDS)
def dev() -> None:
    """Run the local environment: Kubernetes from upstream components, Postgres, a LiteSVM chain."""
