"""``xorj dev ...``: the local development environment (cluster, database, chain, whole demo)."""

from __future__ import annotations

import click

from xorj.cli import LazyGroup

DEV_COMMANDS: dict[str, str] = {
    "toolchain": "xorj.devenv.commands.dev_toolchain:toolchain",
    "cluster": "xorj.devenv.commands.dev_cluster:cluster",
    "db": "xorj.devenv.commands.dev_db:db",
    "chain": "xorj.devenv.commands.dev_chain:chain",
    "up": "xorj.devenv.commands.dev_up:up",
    "down": "xorj.devenv.commands.dev_down:down",
    "node": "xorj.devenv.commands.dev_node:node",
    "image": "xorj.devenv.commands.dev_image:image",
    "leaders": "xorj.devenv.commands.dev_leaders:leaders",
    "alert-receiver": "xorj.devenv.commands.dev_alert_receiver:alert_receiver",
    "dashboard": "xorj.devenv.commands.dev_dashboard:dashboard",
}


@click.group(cls=LazyGroup, lazy_commands=DEV_COMMANDS)
def dev() -> None:
    """Run the local environment: Kubernetes from upstream components, Postgres, a LiteSVM chain."""
