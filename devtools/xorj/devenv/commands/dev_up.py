"""``xorj dev up``: the whole demo on the local environment, ending with CopyTrades CONFIRMED."""

from __future__ import annotations

import subprocess

import click

from xorj.errors import EnvironmentSetupError


def _progress(message: str) -> None:
    click.echo(f"[dev up] {message}", err=True)


@click.command()
@click.option("--executors", type=click.Choice(["pods", "processes"]), default=None,
              help="pods: real pods from the project's image on a real node (needs root); processes: one "
                   "local `xorj executor` per pod on the kwok nodes  [default: $XORJ_DEMO_EXECUTORS or pods]")
@click.option("--loop/--no-loop", default=None,
              help="Also run the copy loop: simulated leaders, a TraderPool ranking them, a topN strategy "
                   "following the best, and the watcher copying its swaps  [default: on; off when $XORJ_DEMO_LOOP=0]")
@click.option("--vaults", type=click.IntRange(1, 64), default=None,
              help="Follower vaults of the demo strategy: its own plus N-1 Vault resources, so each CopyTrade "
                   "fans out into N trades (needs --executors pods)  [default: $XORJ_DEMO_VAULTS or 1]")
@click.option("--operator", type=click.Choice(["pod", "process"]), default=None,
              help="pod: the chart's operator Deployment on the real node, as `helm install` runs it; process: "
                   "`xorj operator` as a local process, the fallback  [default: $XORJ_DEMO_OPERATOR, else pod "
                   "with executor pods and process with executor processes (no node) or --ledger external-ha]")
@click.option("--ledger", type=click.Choice(["single", "ha", "external-ha"]), default=None,
              help="single: a Postgres on the host, relayed to the pods; ha: the chart's Patroni StatefulSet "
                   "(ledger.mode=ha, 3 members, strict synchronous replication) on the real node, reached "
                   "through its primary Service; external-ha: the same Patroni ledger in its own namespace "
                   "<namespace>-ledger, outside the operator's release, which reaches it as an external ledger "
                   "(postgresql.enabled=false, ledger.existingSecret)  [default: $XORJ_DEMO_LEDGER or single]")
def up(executors: str | None, loop: bool | None, vaults: int | None, operator: str | None,
       ledger: str | None) -> None:
    """Build what is missing, start the cluster, Postgres, the chain, a real node, the operator and
    executors, apply the example TradingStrategy and CopyTrades, and show them CONFIRMED; then (unless --no-loop)
    the copy loop: leaders, a TraderPool, a topN strategy and the watcher, until one copied trade is CONFIRMED."""
    from xorj.devenv.demo import Demo

    try:
        demo = Demo(progress=_progress, executors=executors, loop=loop, vaults=vaults, operator=operator,
                    ledger=ledger)
        view = demo.up()
    except (EnvironmentSetupError, subprocess.CalledProcessError) as exc:
        raise click.ClickException(f"{exc}\n(`xorj dev down` stops whatever was started)") from exc
    click.echo(view.rstrip())
    click.echo("")
    click.echo("See it again with:")
    click.echo(f"  {demo.kubectl_hint()}")
    for line in demo.monitoring_summary():
        click.echo(line)
    click.echo(f"State and logs: {demo.root}   Stop everything: xorj dev down")
