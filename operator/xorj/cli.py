"""The ``xorj`` command. Thin: each sub-command lives in ``xorj.commands`` and is imported lazily,
so ``xorj score`` does not pay for importing kopf or solana."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "score": "xorj.commands.score:score",
    "dev": "xorj.commands.dev:dev",
    "executor": "xorj.commands.executor:executor",
    "operator": "xorj.commands.operator:operator",
    "crds": "xorj.commands.crds:crds",
    "chaos": "xorj.commands.chaos:chaos",
    "reconcile": "xorj.commands.reconcile:reconcile",
    "traders": "xorj.commands.traders:traders",
    "watcher": "xorj.commands.watcher:watcher",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    return None  # not built yet: the command simply does not exist
                raise
            return getattr(module, attribute)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="xorj-operator")
def cli() -> None:
    """xorj-operator: copy trading on Solana, run by a Kubernetes operator."""


def main() -> None:
    cli()
