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
@click.option("--node/--no-node", default=True, show_default=True,
              help="Also a real node (containerd, kubelet, kube-proxy, kube-router; needs root) beside the kwok "
                   "nodes, as kind has; one per machine.")
def up(name: str | None, node: bool) -> None:
    """Start the cluster (building the toolchain first if needed) and its real node; a no-op for
    what is up."""
    from xorj.devenv.cluster import format_status

    local = _cluster(name)
    try:
        status = local.up(progress=_progress)
        node_status = _node(local).up(progress=_progress) if node else None
    except EnvironmentSetupError as exc:
        raise click.ClickException(f"{exc}" + ("\n(`--no-node` starts the control plane and kwok nodes only)"
                                                if node else "")) from exc
    for line in format_status(status):
        click.echo(line)
    if node_status is not None:
        click.echo(f"  real node {node_status.name}: Ready (InternalIP {node_status.node_ip})")


@cluster.command()
@name_option
@click.option("--force", is_flag=True, help="Stop it even while a test session is using it.")
def down(name: str | None, force: bool) -> None:
    """Remove the cluster's real node, stop every process of the cluster and delete its state."""
    local = _cluster(name)
    try:
        local.down(progress=_progress, force=force)  # refuses first if a test session is using it
        real = _node(local)
        if real.joined() == local.name:
            real.down(progress=_progress)
    except EnvironmentSetupError as exc:
        raise click.ClickException(str(exc)) from exc


def _node(local):
    from xorj.devenv.node import LocalChainNode

    return LocalChainNode(local)


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
