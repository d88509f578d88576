"""``xorj dev alert-receiver``: the local Alertmanager webhook receiver (xorj.devenv.alert_receiver)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("alert-receiver")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="file each received alert is appended to, one JSON line each")
def alert_receiver(host: str, port: int, out: Path) -> None:
    """Receive Alertmanager's webhook notifications and record each alert (firing and resolved)."""
    from xorj.devenv.alert_receiver import main

    main(["--host", host, "--port", str(port), "--out", str(out)])
