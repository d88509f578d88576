"""``xorj dev image build|load``: the project's image without a registry (debootstrap + buildah)."""

from __future__ import annotations

import sys

import click

from xorj.errors import EnvironmentSetupError


def _progress(message: str) -> None:
    click.echo(f"[image] {message}", err=True)


@click.group()
def image() -> None:
    """Build the project's container image locally (cached by the content of the sources)."""


@image.command()
@click.option("--force", is_flag=True, help="rebuild even when the sources are unchanged")
def build(force: bool) -> None:
    """Build the image and write its OCI archive; prints the reference and the archive path."""
    from xorj.devenv.image import ImageBuilder

    try:
        built = ImageBuilder().build_project(progress=_progress, force=force)
    except EnvironmentSetupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    state = "cached" if built.cached else f"built in {built.seconds:.1f}s"
    click.echo(f"{built.reference} {built.archive} ({state})")


@image.command()
@click.option("--cluster", "cluster_name", default=None, help="the real node's cluster [default: $XORJ_CLUSTER_NAME or xorj]")
def load(cluster_name: str) -> None:
    """Build if needed, then import the image into the real node's containerd."""
    from xorj.devenv.cluster import LocalCluster
    from xorj.devenv.image import ImageBuilder
    from xorj.devenv.node import LocalChainNode

    try:
        built = ImageBuilder().build_project(progress=_progress)
        LocalChainNode(LocalCluster(name=cluster_name)).load_image(built.archive)
    except EnvironmentSetupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{built.reference} loaded")
