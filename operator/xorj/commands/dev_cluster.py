"""``xorj dev cluster up | down | status | kubeconfig``: the local Kubernetes cluster."""

from __future__ import annotations

import click

from xorj.errors import EnvironmentSetupError


def _progress(message: str) -> None:
    click.echo(f"[cluster] {message}", err=True)


def _cluster(name: str | None):
    from xorj.devenv.cluster import LocalCluster

    return LocalCluster(name=name)


name_option = click.option(
    "--name", default=None, help="Cluster name (default: $XORJ_CLUSTER_NAME or 'xorj')."
)


@click.group()
def cluster() -> None:
    """etcd, kube-apiserver, controller-manager, scheduler and kwok nodes, as local processes."""


@cluster.command()
@name_option
def up(name: str | None) -> None:
    """Start the cluster (building the toolchain first if needed); a no-op when it is up."""
    from xorj.devenv.cluster import format_status

    try:
        status = _cluster(name).up(progress=_progress)
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in format_status(status):
        click.echo(line)


@cluster.command()
@name_option
@click.option("--force", is_flag=True, help="Stop it even while a test session is using it.")
def down(name: str | None, force: bool) -> None:
    """Stop every process of the cluster and delete its state."""
    try:
        _cluster(name).down(progress=_progress, force=force)
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from exc


@cluster.command()
@name_option
def status(name: str | None) -> None:
    """Show whether the cluster is running. Exit code 1 when it is not."""
    from xorj.devenv.cluster import format_status

    state = _cluster(name).status()
    for line in format_status(state):
        click.echo(line)
    raise SystemExit(0 if state.running else 1)


@cluster.command()
@name_option
def kubeconfig(name: str | None) -> None:
    """Print the kubeconfig path (last line), e.g. export KUBECONFIG=$(xorj dev cluster kubeconfig | tail -1)."""
    target = _cluster(name)
    if not target.kubeconfig.is_file():
        raise click.ClickException(f"cluster {target.name} is not up: run `xorj dev cluster up`")
    click.echo(target.kubeconfig)
