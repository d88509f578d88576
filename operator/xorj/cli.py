"""The ``xorj`` command. Thin: each sub-command lives in ``xorj.commands`` and is imported lazily,
so ``xorj score`` does not pay for importing kopf or solana.

``xorj dev`` and ``xorj chaos`` belong to the development tools (devtools/, the ``xorj-devtools``
distribution), which the image does not hold: they are found through the ``xorj.commands`` entry
points that distribution registers, so the command has them only where it is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata

import click

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "score": "xorj.commands.score:score",
    "executor": "xorj.commands.executor:executor",
    "operator": "xorj.commands.operator:operator",
    "crds": "xorj.commands.crds:crds",
    "reconcile": "xorj.commands.reconcile:reconcile",
    "traders": "xorj.commands.traders:traders",
    "watcher": "xorj.commands.watcher:watcher",
    "signer": "xorj.commands.signer:signer",
}

# The entry point group through which another distribution adds sub-commands (devtools/pyproject.toml)
PLUGIN_GROUP = "xorj.commands"
# Sub-commands only the development tools provide: asked for without them, one line says where they are.
DEVTOOLS_COMMANDS = ("dev", "chaos")
DEVTOOLS_MISSING = ("xorj {name}: part of the development tools (the xorj-devtools distribution in devtools/), "
                    "which are not installed here; scripts/bootstrap installs them (pip install -e devtools)")


def plugin_commands() -> dict[str, importlib.metadata.EntryPoint]:
    """The sub-commands installed distributions register, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)}


def _devtools_missing(name: str) -> click.Command:
    def refuse() -> None:
        click.echo(DEVTOOLS_MISSING.format(name=name), err=True)
        raise SystemExit(2)

    return click.Command(name, callback=refuse, add_help_option=False, hidden=True,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                         help="Not installed: the development tools provide it.")


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
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)


class XorjGroup(LazyGroup):
    """The top-level group: the built-in sub-commands plus those installed distributions register."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(plugin_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            plugin = plugin_commands().get(cmd_name)
            if plugin is not None:
                return plugin.load()
            if cmd_name in DEVTOOLS_COMMANDS:
                return _devtools_missing(cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=XorjGroup, lazy_commands=COMMANDS)
@click.version_option(package_name="xorj-operator")
def cli() -> None:
    """xorj-operator: copy trading on Solana, run by a Kubernetes operator."""


def main() -> None:
    cli()
