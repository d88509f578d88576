"""``kubectl xorj``: thin click commands over :mod:`.cluster`, :mod:`.ledger`, :mod:`.chain` and the
pure :mod:`.views`. kubectl finds the console script ``kubectl-xorj`` on PATH.

Every error is one line, ``error: WHAT (hint: WHAT TO TRY)``, exit code 1 (2 for a usage error); no
traceback, no secret.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from xorj.controller.tradingstrategy.desired import names as child_names
from xorj.controller.tradingstrategy.desired import selector_labels
from xorj.kubectl import views
from xorj.kubectl.errors import PluginError

EXECUTOR_METRICS_PORT = 9102  # the operator's default (XORJ_OPERATOR_EXECUTOR_METRICS_PORT)


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# shared options


def cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--context", default=None, help="The kubeconfig context to use.")(fn)
    fn = click.option("--kubeconfig", default=None, envvar="KUBECONFIG",
                      help="Path to the kubeconfig (default: KUBECONFIG, then ~/.kube/config).")(fn)
    fn = click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")(fn)
    return fn


def output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
                        show_default=True, help="Output format.")(fn)


def ledger_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--ledger-dsn", default=None, envvar="XORJ_LEDGER_READER_DSN", show_envvar=True,
                        help="DSN of a read-only ledger login (migration 0011's reader group); never printed.")(fn)


def _cluster(kubeconfig: str | None, context: str | None) -> Any:
    from xorj.kubectl.cluster import Cluster

    return Cluster(kubeconfig=kubeconfig, context=context)  # a KUBECONFIG list (a:b) is merged, as kubectl does


def _emit(output: str, view: Any, table: Callable[[], str]) -> None:
    if output == "json":
        click.echo(json.dumps(view, indent=2, default=str))
    else:
        click.echo(table())


# --------------------------------------------------------------------------------------------------
# the group


@click.group(name="kubectl xorj", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xorj-operator", prog_name="kubectl-xorj")
def plugin() -> None:
    """Inspect and steer xorj copy trading from kubectl.

    Trades are read from the Kubernetes API (CopyTrade and TradingStrategy statuses, which the
    operator mirrors from the ledger), so your RBAC decides what you see. Trader scores and the
    ledger's halt need a read-only ledger login (--ledger-dsn / XORJ_LEDGER_READER_DSN).
    """


@plugin.command()
@click.argument("strategy")
@cluster_options
@ledger_option
@output_option
def status(strategy: str, namespace: str | None, kubeconfig: str | None, context: str | None,
           ledger_dsn: str | None, output: str) -> None:
    """A strategy: leaders and scores, vault, today's counts against its limits, breaker and halt,
    executors, and the last failures with their reasons."""
    cluster = _cluster(kubeconfig, context)
    ns = namespace or cluster.default_namespace
    obj = cluster.get_strategy(ns, strategy)
    deployment = cluster.get_deployment(ns, child_names(strategy)["deployment"])
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(strategy).items())
    pods = cluster.list_pods(ns, selector)
    breakers: dict[str, str | None] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        if (pod.get("status") or {}).get("phase") != "Running":
            breakers[name] = None
            continue
        text = cluster.pod_metrics(ns, name, _metrics_port(pod))
        breakers[name] = views.breaker_from_metrics(text) if text is not None else None
    copytrades = cluster.list_copytrades(ns)

    scores = None
    scores_error: str | None = None
    ledger_halt = None
    ledger_error: str | None = None
    if ledger_dsn:
        from xorj.kubectl.ledger import LedgerReader

        reader = LedgerReader(ledger_dsn)
        try:
            scores = reader.scores()
            ledger_halt = reader.halt()
        except PluginError as exc:
            scores_error = ledger_error = exc.message
    else:
        scores_error = ledger_error = "no read-only ledger DSN (--ledger-dsn)"
    try:
        operators = [views.operator_halt(d) for d in cluster.operator_deployments(None)]
    except PluginError:
        operators = []  # listing Deployments cluster-wide is not every user's right: the ledger still says
    view = views.status_view(
        strategy=obj, deployment=deployment, pods=pods, copytrades=copytrades, scores=scores,
        scores_error=scores_error, halt=views.halt_view(ledger_halt, ledger_error, operators),
        breakers=breakers, now=_now())
    _emit(output, view, lambda: views.status_text(view, _now()))


def _metrics_port(pod: dict[str, Any]) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "metrics" and port.get("containerPort"):
                return int(port["containerPort"])
    return EXECUTOR_METRICS_PORT


@plugin.command()
@click.option("--strategy", default=None, help="Only this TradingStrategy's trades.")
@click.option("--state", default=None, help=f"Only trades in this state ({', '.join(views.STATES)}).")
@click.option("--since", default=None, help="Only trades admitted since: a duration (30m, 6h, 2d) or an RFC 3339 time.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Trades of every namespace you may read.")
@cluster_options
@output_option
def trades(strategy: str | None, state: str | None, since: str | None, all_namespaces: bool,
           namespace: str | None, kubeconfig: str | None, context: str | None, output: str) -> None:
    """Trades, newest first, as the operator mirrors them from the ledger into CopyTrade statuses.

    A terminal CopyTrade with spec.ttlSecondsAfterFinished is deleted after its TTL; the ledger keeps
    the trade, but it no longer shows here.
    """
    now = _now()
    since_at = views.parse_since(since, now) if since else None
    views.check_state(state)
    cluster = _cluster(kubeconfig, context)
    ns = None if all_namespaces else (namespace or cluster.default_namespace)
    rows = views.select_trades(cluster.list_copytrades(ns), strategy=strategy, state=state, since=since_at)
    _emit(output, {"items": rows}, lambda: views.trades_table(rows, now, all_namespaces))


@plugin.command()
@click.argument("trade")
@click.option("--rpc-url", default=None, envvar="XORJ_RPC_URL",
              help="A Solana JSON-RPC node to ask for each attempt's slot (never printed).")
@click.option("--cluster", "solana_cluster", type=click.Choice(views.CLUSTERS), default="mainnet-beta",
              show_default=True, help="The Solana cluster, for the explorer links.")
@cluster_options
@output_option
def explain(trade: str, rpc_url: str | None, solana_cluster: str, namespace: str | None,
            kubeconfig: str | None, context: str | None, output: str) -> None:
    """One trade: each attempt with its signature, slot, outcome, error and reason, and explorer links.

    TRADE is a CopyTrade's name or the ledger's trade id.
    """
    cluster = _cluster(kubeconfig, context)
    ns = namespace or cluster.default_namespace
    copytrade = _find_trade(cluster, ns, trade)
    signatures = [a["signature"] for a in (copytrade.get("status") or {}).get("attempts") or [] if a.get("signature")]
    statuses = None
    if rpc_url:
        from xorj.kubectl.chain import signature_statuses

        statuses = signature_statuses(rpc_url, signatures) if signatures else {}
    view = views.explain_view(copytrade, statuses, cluster=solana_cluster,
                              custom_url=rpc_url if solana_cluster == "custom" else None)
    _emit(output, view, lambda: views.explain_text(view))


def _find_trade(cluster: Any, namespace: str, trade: str) -> dict[str, Any]:
    found = cluster.get_copytrade(namespace, trade)
    if found is not None:
        return found
    if trade.isdigit():
        matches = [ct for ct in cluster.list_copytrades(namespace)
                   if str((ct.get("status") or {}).get("tradeId")) == trade]
        matches.sort(key=lambda ct: (ct.get("status") or {}).get("admission") != "Admitted")
        if matches:
            return matches[0]
    raise PluginError(f"no CopyTrade {trade!r} in namespace {namespace}",
                      f"list them with: kubectl xorj trades -n {namespace} (a CopyTrade past its TTL is gone; "
                      "the ledger keeps the trade)")


def _set_paused(strategy: str, paused: bool, namespace: str | None, kubeconfig: str | None,
                context: str | None, output: str) -> None:
    cluster = _cluster(kubeconfig, context)
    ns = namespace or cluster.default_namespace
    result = cluster.set_paused(ns, strategy, paused)
    view = {"strategy": f"{ns}/{strategy}", "paused": bool((result.get("spec") or {}).get("paused"))}
    verb = "paused: executors scale to zero" if paused else "resumed: executors scale back up"
    _emit(output, view, lambda: f"tradingstrategy {ns}/{strategy} {verb}")


@plugin.command()
@click.argument("strategy")
@cluster_options
@output_option
def pause(strategy: str, namespace: str | None, kubeconfig: str | None, context: str | None, output: str) -> None:
    """Pause a strategy (spec.paused: true): its executors scale to zero; trades wait PENDING."""
    _set_paused(strategy, True, namespace, kubeconfig, context, output)


@plugin.command()
@click.argument("strategy")
@cluster_options
@output_option
def resume(strategy: str, namespace: str | None, kubeconfig: str | None, context: str | None, output: str) -> None:
    """Resume a paused strategy (spec.paused: false)."""
    _set_paused(strategy, False, namespace, kubeconfig, context, output)


def _set_halt(halted: bool, reason: str | None, operator_namespace: str | None,
              kubeconfig: str | None, context: str | None, output: str) -> None:
    cluster = _cluster(kubeconfig, context)
    deployments = cluster.operator_deployments(operator_namespace)
    if not deployments:
        where = f"namespace {operator_namespace}" if operator_namespace else "any namespace"
        raise PluginError(f"no xorj operator Deployment found in {where} (labels {_operator_labels()})",
                          "pass --operator-namespace, or set the chart value operator.globalHalt with helm")
    changed = []
    for dep in deployments:
        meta = dep["metadata"]
        result = cluster.set_operator_halt(meta["namespace"], meta["name"], halted, reason)
        changed.append(views.operator_halt(result))
    view = {"halted": halted, "operators": [{"deployment": o.deployment, "halted": o.halted, "reason": o.reason}
                                            for o in changed]}
    state = "ON: every executor refuses every trade" if halted else "lifted"

    def text() -> str:
        lines = [f"cluster-wide halt {state}, set on operator Deployment {o.deployment}" for o in changed]
        lines.append("The operator restarts with the setting and enforces it in the ledger when it starts. "
                     f"Make it last: helm upgrade ... --set operator.globalHalt={'true' if halted else 'false'} "
                     "(a helm upgrade without it puts the chart's value back).")
        return "\n".join(lines)

    _emit(output, view, text)


def _operator_labels() -> str:
    from xorj.kubectl.cluster import OPERATOR_SELECTOR

    return OPERATOR_SELECTOR


@plugin.command()
@click.option("--all", "all_", is_flag=True, help="Required: the halt stops every strategy of every namespace.")
@click.option("--reason", default=None, help="Why (shown in each refused trade's detail).")
@click.option("--operator-namespace", default=None, help="Where the operator runs (default: search all).")
@click.option("--kubeconfig", default=None, envvar="KUBECONFIG", help="Path to the kubeconfig.")
@click.option("--context", default=None, help="The kubeconfig context to use.")
@output_option
def halt(all_: bool, reason: str | None, operator_namespace: str | None, kubeconfig: str | None,
         context: str | None, output: str) -> None:
    """Halt all trading: set the operator's globalHalt, which it enforces in the ledger; every
    executor then refuses every trade (RISK_LIMIT kill_switch.global). To stop one strategy, pause it."""
    if not all_:
        raise PluginError("halt stops every strategy in every namespace and needs --all",
                          "kubectl xorj halt --all --reason '...'; to stop one strategy: kubectl xorj pause STRATEGY")
    _set_halt(True, reason, operator_namespace, kubeconfig, context, output)


@plugin.command()
@click.option("--operator-namespace", default=None, help="Where the operator runs (default: search all).")
@click.option("--kubeconfig", default=None, envvar="KUBECONFIG", help="Path to the kubeconfig.")
@click.option("--context", default=None, help="The kubeconfig context to use.")
@output_option
def unhalt(operator_namespace: str | None, kubeconfig: str | None, context: str | None, output: str) -> None:
    """Lift the cluster-wide halt (the operator's globalHalt back to false)."""
    _set_halt(False, None, operator_namespace, kubeconfig, context, output)


@plugin.command()
@click.argument("pool", required=False)
@click.option("--min-score", type=click.FloatRange(0, 100), default=None, help="Only scores at least this.")
@click.option("--status", "status_", default=None, help="Only this eligibility status (e.g. ELIGIBLE).")
@click.option("--limit", type=click.IntRange(1, 10000), default=None, help="At most this many.")
@cluster_options
@ledger_option
@output_option
def scores(pool: str | None, min_score: float | None, status_: str | None, limit: int | None,
           namespace: str | None, kubeconfig: str | None, context: str | None, ledger_dsn: str | None,
           output: str) -> None:
    """Trust Scores from the ledger's trader_scores table (the latest score per wallet, written by
    `xorj score`), through a read-only ledger login.

    POOL: until TraderPool exists, the name of a TradingStrategy: its explicit traders, or for topN
    the cohort of its normalization, with the wallets it follows marked. Without POOL: every scored
    trader.
    """
    if not ledger_dsn:
        from xorj.kubectl.ledger import NO_DSN_HINT

        raise PluginError("scores are read from the ledger, and no read-only ledger DSN was given", NO_DSN_HINT)
    strategy = None
    if pool:
        cluster = _cluster(kubeconfig, context)
        strategy = cluster.get_strategy(namespace or cluster.default_namespace, pool)
    from xorj.kubectl.ledger import LedgerReader

    rows = LedgerReader(ledger_dsn).scores(min_score=min_score, status=status_, limit=limit)
    view = views.scores_view(rows, strategy)
    _emit(output, view, lambda: views.scores_table(view))


# --------------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> None:
    """The console script: run the command; print any error as one line with a hint."""
    try:
        plugin.main(args=argv, prog_name="kubectl xorj", standalone_mode=False)
    except PluginError as exc:
        click.echo(exc.one_line(), err=True)
        sys.exit(1)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "kubectl xorj"
        click.echo(PluginError(exc.format_message(), f"see: {command} --help").one_line(), err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(PluginError(exc.format_message(), "see: kubectl xorj --help").one_line(), err=True)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: one line, no traceback, no secret
        from xorj.redaction import redact_urls

        first = (str(exc).splitlines() or [""])[0][:300]
        click.echo(PluginError(f"unexpected {type(exc).__name__}: {redact_urls(first)}",
                               "this is a bug in kubectl-xorj; please report it with the command you ran").one_line(),
                   err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
