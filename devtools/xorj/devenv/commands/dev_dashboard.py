"""``xorj dev dashboard``: the chart's Grafana dashboard's queries, answered by the demo's Prometheus."""

from __future__ import annotations

import json
import sys

import click

from xorj.errors import EnvironmentSetupError


@click.command("dashboard")
@click.option("--prometheus", "prometheus_url", default=None,
              help="Prometheus to ask  [default: the one `xorj dev up` started]")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def dashboard(prometheus_url: str | None, output: str) -> None:
    """Run every panel query of the chart's Grafana dashboard and print what each returns."""
    from xorj.devenv import dashboard as board
    from xorj.devenv import monitoring
    from xorj.devenv.demo import Demo

    try:
        url = prometheus_url or monitoring.urls(Demo().state.load().get("processes", {})).get("prometheus")
        if not url:
            raise EnvironmentSetupError("no Prometheus: run `xorj dev up` first, or pass --prometheus URL")
        answers = [board.run_query(url, query) for query in board.panel_queries()]
    except EnvironmentSetupError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if output == "json":
        click.echo(json.dumps([{"panel": a.query.panel, "ref": a.query.ref, "expr": a.query.expr,
                                "series": [{"labels": labels, "value": value} for labels, value in a.series]}
                               for a in answers], indent=1))
    else:
        click.echo("\n".join(board.render(answers)))
