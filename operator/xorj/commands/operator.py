"""``xorj operator``: run the kopf operator (in a pod with its ServiceAccount, or with a kubeconfig)."""

from __future__ import annotations

import asyncio
import os
import sys

import click

# Client libraries kopf imports when they are installed, and the operator process never uses: kopf
# takes them for isinstance checks of their model objects (kopf/_cogs/helpers/thirdparty.py, at its
# import) and for a fallback login through them, and this process passes kopf plain dicts and logs in
# itself (xorj.controller.handlers.login, through lightkube's config). `kubernetes` (with requests,
# oauthlib, urllib3, websocket-client) is ~11 MiB of the operator's RSS for nothing; the image keeps
# it for the processes that use it (the watcher, `kubectl xorj`), which import it lazily.
UNUSED_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


def keep_unused_clients_out() -> None:
    """Make an import of :data:`UNUSED_CLIENTS` in this process fail as if they were not installed
    (a ``None`` in ``sys.modules`` raises ImportError, which kopf takes as "not installed"). Only
    before kopf is imported (later it has them already) and for a client not imported yet, so a
    process that did import one (a test run) keeps it."""
    if "kopf" in sys.modules:
        return
    for name in UNUSED_CLIENTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


@click.command()
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Serve only these namespaces (repeatable). Default: the whole cluster.")
@click.option("--priority", type=int, default=None,
              help="Peering priority: the highest alive operator acts, the others wait. Give "
                   "replicas different priorities (equal ones freeze each other).")
@click.option("--peering-name", default=None, help="Peering object name.")
@click.option("--standalone", is_flag=True, default=False, help="No peering (one operator only).")
@click.option("--health-port", type=int, default=None,
              help="Port of /healthz (fails when watches go stale).")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics.")
@click.option("--log-format", type=click.Choice(["json", "plain"]), default="json", show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator(namespaces: tuple[str, ...], priority: int | None, peering_name: str | None, standalone: bool,
             health_port: int | None, metrics_port: int | None, log_format: str, verbose: bool) -> None:
    """Run the operator: reconcile TradingStrategies and CopyTrades until SIGTERM.

    Settings come from XORJ_OPERATOR_* variables (XORJ_LEDGER_DSN is required); options override them.
    """
    if not os.environ.get("XORJ_LEDGER_DSN"):
        raise click.ClickException("XORJ_LEDGER_DSN is not set: the operator needs the ledger's DSN")
    keep_unused_clients_out()
    import kopf

    from xorj.controller import handlers  # noqa: F401 - registers the handlers
    from xorj.controller.settings import OperatorSettings, PeeringSettings, ServingSettings

    # options override the environment; the settings reach the handlers through kopf's memo
    def given(**options: object) -> dict[str, object]:
        return {k: v for k, v in options.items() if v is not None}

    cfg = OperatorSettings(
        peering=PeeringSettings(**given(priority=priority, name=peering_name, standalone=standalone or None)),
        serving=ServingSettings(**given(health_port=health_port, metrics_port=metrics_port)),
    )
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
    )
    import logging

    from xorj.redaction import install_log_redaction

    # error texts quote URLs; credentials in them never reach a log line, nor an Event kopf posts
    install_log_redaction()
    # the reconciler's RPC client and the Kubernetes client (lightkube over httpx2) log each
    # request's URL (an RPC one with its API key) at INFO: not wanted
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_redaction(logging.getLogger("kopf.objects"))
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            # kopf makes peering mandatory when given a peering name, and a mandatory peering with
            # standalone on pauses every watch forever ("peering CRD is missing"): name it only when
            # peering is really wanted
            priority=None if cfg.peering.standalone else cfg.peering.priority,
            peering_name=None if cfg.peering.standalone else cfg.peering.name,
            standalone=cfg.peering.standalone,
            memo=kopf.Memo(namespaces=list(namespaces), settings=cfg),
        )
    )
