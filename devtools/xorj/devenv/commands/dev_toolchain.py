"""``xorj dev toolchain build | status | path | pin``: the Kubernetes toolchain built from source."""

from __future__ import annotations

import json
import time

import click

from xorj.errors import EnvironmentSetupError, InvalidInputError


def _progress(message: str) -> None:
    click.echo(f"[toolchain] {message}", err=True)


@click.group()
def toolchain() -> None:
    """Kubernetes, etcd, kwok and helm built from their upstream Go modules into a local cache."""


@toolchain.command()
@click.option("--force", is_flag=True, help="Rebuild every component even when cached.")
def build(force: bool) -> None:
    """Build what is missing for the current pins; silent when everything is cached."""
    from xorj.devenv.toolchain import Toolchain

    chain = Toolchain()
    if chain.is_complete() and not force:
        return
    started = time.monotonic()
    todo = [c.name for c in (chain.components if force else chain.missing_components())]
    _progress(
        f"toolchain {chain.digest} -> {chain.directory}; to build: {', '.join(todo) or 'nothing (linking cached parts)'}"
        + (" (a cold Kubernetes build takes several minutes to tens of minutes)" if "kubernetes" in todo else "")
    )
    try:
        bin_dir = chain.build(progress=_progress, force=force)
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    _progress(f"ready in {time.monotonic() - started:.0f}s: {bin_dir}")


@toolchain.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Pins, cache directory and which binaries are built. Exit code 1 when incomplete."""
    from xorj.devenv.toolchain import Toolchain

    state = Toolchain().status()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "digest": state.digest,
                    "directory": str(state.directory),
                    "complete": state.complete,
                    "pins": state.pins,
                    "binaries": {b.name: {"path": str(b.path), "present": b.present} for b in state.binaries},
                    "manifest": state.manifest,
                },
                indent=2,
            )
        )
    else:
        click.echo(f"toolchain {state.digest}: {'complete' if state.complete else 'INCOMPLETE'}")
        click.echo(f"directory: {state.directory}")
        click.echo("pins: " + ", ".join(f"{name} {version}" for name, version in state.pins.items()))
        for binary in state.binaries:
            click.echo(f"  {'ok     ' if binary.present else 'missing'} {binary.name}")
        if state.manifest:
            click.echo(f"built {state.manifest.get('built_at')} with {state.manifest.get('go')}")
    raise SystemExit(0 if state.complete else 1)


@toolchain.command()
def prune() -> None:
    """Delete cached toolchains and parts that the current pins no longer use."""
    from xorj.devenv.toolchain import Toolchain

    for removed in Toolchain().prune():
        _progress(f"removed {removed}")


@toolchain.command()
def path() -> None:
    """Print the bin directory of the built toolchain (fails when it is not built)."""
    from xorj.devenv.toolchain import Toolchain

    try:
        click.echo(Toolchain().require())
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from exc


@toolchain.command()
@click.option("--kubernetes", help="k8s.io/kubernetes release, e.g. v1.34.12")
@click.option("--etcd", help="go.etcd.io/etcd/server/v3 release, e.g. v3.6.16")
@click.option("--kwok", help="sigs.k8s.io/kwok release, e.g. v0.8.0")
@click.option("--helm", help="helm.sh/helm/v3 release, e.g. v3.22.0")
def pin(**versions: str | None) -> None:
    """Change pins and regenerate the wrapper go.mod/go.sum files from upstream's go.mod."""
    from xorj.devenv.toolchain.pinning import repin

    changes = {name: value for name, value in versions.items() if value}
    try:
        pins = repin(changes, progress=_progress)
    except (InvalidInputError, EnvironmentSetupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(pins.to_json(), nl=False)
