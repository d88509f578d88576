"""``xorj dev node up|down|status``: a real node (containerd, runc, kubelet, CNI, kube-proxy)."""

from __future__ import annotations

import sys

import click

from xorj.errors import EnvironmentSetupError

CLUSTER_HELP = ("the local cluster to join, started when not running [default: $XORJ_CLUSTER_NAME or xorj, "
                "the cluster of `xorj dev cluster up` and `xorj dev up`]")


def _node(cluster_name: str):
    from xorj.devenv.cluster import LocalCluster
    from xorj.devenv.node import LocalChainNode

    return LocalChainNode(LocalCluster(name=cluster_name, nodes=1))


def _progress(message: str) -> None:
    click.echo(f"[node] {message}", err=True)


@click.group()
def node() -> None:
    """A real Kubernetes node beside the local control plane, in its own namespaces."""


@node.command()
@click.option("--cluster", "cluster_name", default=None, help=CLUSTER_HELP)
@click.option("--image/--no-image", default=True, show_default=True,
              help="build (cached) and load the project's image into the node")
def up(cluster_name: str, image: bool) -> None:
    """Start the node (and its cluster if needed); idempotent."""
    local = _node(cluster_name)
    try:
        if not local.cluster.status().running:
            local.cluster.up(progress=_progress)
        status = local.up(progress=_progress)
        if image:
            from xorj.devenv.image import ImageBuilder

            built = ImageBuilder().build_project(progress=_progress)
            local.load_image(built.archive)
            _progress(f"image {built.reference} loaded ({'cached' if built.cached else f'built in {built.seconds:.0f}s'})")
    except EnvironmentSetupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"node {status.name}: Ready (InternalIP {status.node_ip}); kubeconfig {local.cluster.kubeconfig}")


@node.command()
@click.option("--cluster", "cluster_name", default=None, help=CLUSTER_HELP)
@click.option("--with-cluster", is_flag=True, help="also stop the cluster")
def down(cluster_name: str, with_cluster: bool) -> None:
    """Remove the node: containers, mounts, namespaces, interfaces, cgroups, state."""
    local = _node(cluster_name)
    local.down(progress=_progress)
    if with_cluster:
        local.cluster.down(progress=_progress)
    click.echo(f"node {local.name}: removed")


@node.command()
@click.option("--cluster", "cluster_name", default=None, help=CLUSTER_HELP)
def status(cluster_name: str) -> None:
    """Processes and readiness of the node."""
    st = _node(cluster_name).status()
    click.echo(f"node {st.name}: {'Ready' if st.ready else 'not ready'}")
    if st.problem:
        click.echo(f"  problem: {st.problem}")
    if st.processes:
        click.echo("  processes: " + ", ".join(f"{k} {'up' if v else 'DOWN'}" for k, v in st.processes.items()))
    if not st.ready:
        sys.exit(1)
