"""What ``kubectl xorj`` prints, built from what it read. Pure: no I/O; the clock is a parameter.

Every view is a JSON-able dict (what ``-o json`` prints) and has a table rendering. Inputs are the
objects as the API server returns them (CopyTrade, TradingStrategy, Deployment, Pod dicts) and the
ledger's records; nothing here reads a Secret's data, and nothing prints a URL's credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from prometheus_client.parser import text_string_to_metric_families

from xorj.domain.trades import TradeState
from xorj.kubectl.errors import PluginError
from xorj.ledger.records import StoredTraderScore, TradingHalt
from xorj.redaction import redact_urls

EXPLORER = "https://explorer.solana.com/tx/"
# The explorer's cluster names; "mainnet-beta" is its default and takes no parameter.
CLUSTERS = ("mainnet-beta", "devnet", "testnet", "custom")
STATES = tuple(s.value for s in TradeState)
FAILURES_SHOWN = 5

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# --------------------------------------------------------------------------------------------------
# small helpers


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (``...Z``), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration back from now (``90s``, ``30m``, ``6h``, ``2d``) or an RFC 3339 time."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    parsed = parse_time(text.strip())
    if parsed is None:
        raise PluginError(f"--since {text!r} is neither a duration nor a time",
                          "give a duration such as 30m, 6h or 2d, or an RFC 3339 time such as 2026-12-01T09:00:00Z")
    return parsed


def age(then: datetime | None, now: datetime) -> str:
    """kubectl's AGE column: the largest unit, 45s, 12m, 3h, 5d."""
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short(value: str | None, keep: int = 12) -> str:
    """A signature or key shortened for a table (JSON always carries it whole)."""
    if not value:
        return "-"
    return value if len(value) <= keep + 3 else f"{value[:keep]}..."


def explorer_link(signature: str, cluster: str = "mainnet-beta", custom_url: str | None = None) -> str:
    """An explorer link for a transaction. Mainnet takes no parameter; another cluster names itself.
    A custom RPC URL is added only when it carries no credentials (no user:password, no query)."""
    if cluster not in CLUSTERS:
        raise PluginError(f"--cluster {cluster!r} is not a Solana cluster the explorer knows",
                          f"use one of {', '.join(CLUSTERS)}")
    link = EXPLORER + quote(signature, safe="")
    if cluster == "mainnet-beta":
        return link
    link += f"?cluster={cluster}"
    if cluster == "custom" and custom_url:
        parts = urlsplit(custom_url)
        if not parts.username and not parts.password and not parts.query:
            link += "&customUrl=" + quote(custom_url, safe="")
    return link


def render_table(columns: Sequence[tuple[str, str]], rows: Iterable[Mapping[str, Any]]) -> str:
    """A kubectl-style table: upper-case headers, columns padded with three spaces, "-" for nothing."""
    headers = [h for h, _ in columns]
    cells = [[_cell(row.get(key)) for _, key in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(str(value).split())


# --------------------------------------------------------------------------------------------------
# trades (CopyTrade statuses, as the operator mirrors them from the ledger)


def trade_row(copytrade: Mapping[str, Any]) -> dict[str, Any]:
    """One CopyTrade as a trade: what the operator mirrored from the ledger into its status."""
    meta = copytrade.get("metadata") or {}
    spec = copytrade.get("spec") or {}
    status = copytrade.get("status") or {}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "strategy": spec.get("strategy"),
        "tradeId": status.get("tradeId"),
        "state": status.get("phase") or "UNADMITTED",
        "admission": status.get("admission"),
        "attempts": int(status.get("attemptCount") or 0),
        "reason": status.get("errorReason"),
        "message": redact_urls(status["errorMessage"]) if status.get("errorMessage") else None,
        "leadTrader": spec.get("leadTrader"),
        "leadSignature": spec.get("leadSignature"),
        "finalSignature": status.get("finalSignature"),
        "createdAt": status.get("createdAt") or meta.get("creationTimestamp"),
        "submittedAt": status.get("submittedAt"),
        "finishedAt": status.get("finishedAt"),
    }


def check_state(state: str | None) -> None:
    if state is not None and state.upper() not in (*STATES, "UNADMITTED"):
        raise PluginError(f"--state {state!r} is not a trade state", f"use one of {', '.join(STATES)}")


def select_trades(
    copytrades: Iterable[Mapping[str, Any]],
    *,
    strategy: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """The trades matching the filters, newest first. ``state`` is one of the ledger's states."""
    check_state(state)
    rows = []
    for ct in copytrades:
        row = trade_row(ct)
        if strategy is not None and row["strategy"] != strategy:
            continue
        if state is not None and row["state"] != state.upper():
            continue
        created = parse_time(row["createdAt"])
        if since is not None and (created is None or created < since):
            continue
        rows.append(row)
    rows.sort(key=lambda r: (parse_time(r["createdAt"]) or datetime.min.replace(tzinfo=UTC), r["name"] or ""),
              reverse=True)
    return rows


TRADE_COLUMNS = (("NAMESPACE", "namespace"), ("NAME", "name"), ("STRATEGY", "strategy"), ("TRADE", "tradeId"),
                 ("STATE", "state"), ("ATTEMPTS", "attempts"), ("REASON", "reason"),
                 ("SIGNATURE", "signatureShort"), ("AGE", "age"))


def trades_table(rows: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool) -> str:
    columns = TRADE_COLUMNS if all_namespaces else TRADE_COLUMNS[1:]
    shown = [{**r, "signatureShort": short(r["finalSignature"]), "age": age(parse_time(r["createdAt"]), now)}
             for r in rows]
    if not shown:
        return "No trades found."
    return render_table(columns, shown)


# --------------------------------------------------------------------------------------------------
# explain


@dataclass(frozen=True)
class SignatureStatus:
    """What an RPC node says about a signature (getSignatureStatuses): None slot when it does not know it."""

    slot: int | None
    confirmation_status: str | None
    error: str | None


def explain_view(
    copytrade: Mapping[str, Any],
    statuses: Mapping[str, SignatureStatus] | None,
    *,
    cluster: str,
    custom_url: str | None = None,
) -> dict[str, Any]:
    """A trade's story: each attempt with its signature, slot (from ``statuses``, when an RPC was
    asked), outcome, reason and an explorer link."""
    trade = trade_row(copytrade)
    attempts = []
    for raw in (copytrade.get("status") or {}).get("attempts") or []:
        sig = raw.get("signature")
        found = (statuses or {}).get(sig) if sig else None
        attempts.append({
            "number": raw.get("number"),
            "signature": sig,
            "slot": found.slot if found else None,
            "confirmation": found.confirmation_status if found else None,
            "chainError": found.error if found else None,
            "outcome": raw.get("outcome"),
            "reason": raw.get("reason"),
            "slippageBps": raw.get("slippageBps"),
            "createdAt": raw.get("createdAt"),
            "explorer": explorer_link(sig, cluster, custom_url) if sig else None,
        })
    return {
        **trade,
        "slotsFrom": "rpc" if statuses is not None else None,
        "attemptsDetail": attempts,
        "finalExplorer": explorer_link(trade["finalSignature"], cluster, custom_url)
        if trade["finalSignature"] else None,
    }


def explain_text(view: Mapping[str, Any]) -> str:
    lines = [
        f"Trade:        {view['namespace']}/{view['name']} (ledger trade {view['tradeId'] or '-'})",
        f"Strategy:     {view['strategy']}",
        f"State:        {view['state']}" + (f"  reason {view['reason']}" if view["reason"] else ""),
    ]
    if view["message"]:
        lines.append(f"Error:        {_cell(view['message'])}")
    lines += [
        f"Lead trade:   {view['leadSignature']} by {view['leadTrader']}",
        f"Admission:    {view['admission'] or '-'}",
        f"Final:        {view['finalSignature'] or '-'}",
    ]
    if view["finalExplorer"]:
        lines.append(f"              {view['finalExplorer']}")
    lines.append("")
    attempts = view["attemptsDetail"]
    if not attempts:
        lines.append("No attempts: nothing was signed for this trade.")
    else:
        rows = [{**a, "slot": a["slot"] if a["slot"] is not None else ("not found" if view["slotsFrom"] else "-")}
                for a in attempts]
        lines.append(render_table(
            (("#", "number"), ("SIGNATURE", "signature"), ("SLOT", "slot"), ("OUTCOME", "outcome"),
             ("REASON", "reason"), ("CHAIN ERROR", "chainError"), ("SLIPPAGE", "slippageBps"),
             ("CREATED", "createdAt")), rows))
        lines.append("")
        lines += [f"  #{a['number']}: {a['explorer']}" for a in attempts if a["explorer"]]
        if not view["slotsFrom"]:
            lines.append("(slots: the ledger does not record them; pass --rpc-url to ask a node)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# status


@dataclass(frozen=True)
class OperatorHalt:
    """The halt the operator is told to enforce: its Deployment's XORJ_OPERATOR_GLOBAL_HALT."""

    deployment: str  # namespace/name
    halted: bool
    reason: str | None


def operator_halt(deployment: Mapping[str, Any]) -> OperatorHalt:
    meta = deployment.get("metadata") or {}
    env: dict[str, str | None] = {}
    for container in ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
    return OperatorHalt(
        deployment=f"{meta.get('namespace')}/{meta.get('name')}",
        halted=str(env.get("XORJ_OPERATOR_GLOBAL_HALT", "false")).strip().lower() in ("true", "1", "yes", "on"),
        reason=env.get("XORJ_OPERATOR_GLOBAL_HALT_REASON") or None,
    )


def halt_view(ledger_halt: TradingHalt | None, ledger_error: str | None,
              operators: Sequence[OperatorHalt]) -> dict[str, Any]:
    """The halt as the ledger enforces it (what executors read) and as the operators are told."""
    return {
        "ledger": None if ledger_halt is None else {
            "halted": ledger_halt.halted, "reason": ledger_halt.reason, "setBy": ledger_halt.set_by,
            "setAt": ledger_halt.set_at.isoformat() if ledger_halt.set_at else None,
        },
        "ledgerError": ledger_error,
        "operators": [{"deployment": o.deployment, "halted": o.halted, "reason": o.reason} for o in operators],
    }


BREAKER_METRIC = "xorj_executor_breaker_state"


def breaker_from_metrics(text: str) -> str | None:
    """The breaker state an executor's ``/metrics`` reports: the one ``state`` label of
    ``xorj_executor_breaker_state`` set to 1. None when the text does not say (or is not metrics)."""
    on = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == BREAKER_METRIC and sample.value == 1 and "state" in sample.labels:
                    on.append(sample.labels["state"])
    except ValueError:
        return None
    return on[0] if len(on) == 1 else None


def status_view(
    *,
    strategy: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    copytrades: Sequence[Mapping[str, Any]],
    scores: Sequence[StoredTraderScore] | None,
    scores_error: str | None,
    halt: Mapping[str, Any],
    breakers: Mapping[str, str | None],
    now: datetime,
) -> dict[str, Any]:
    """``kubectl xorj status``: one strategy, everything a person on call asks first."""
    meta = strategy.get("metadata") or {}
    spec = strategy.get("spec") or {}
    status = strategy.get("status") or {}
    name = meta.get("name")
    by_wallet = {s.wallet: s for s in scores or ()}
    leaders = []
    for followed in status.get("followedTraders") or []:
        wallet = followed.get("wallet")
        fresh = by_wallet.get(wallet)
        leaders.append({
            "wallet": wallet,
            "trustScore": fresh.score if fresh else followed.get("trustScore"),
            "status": fresh.status if fresh else followed.get("status"),
            "rank": fresh.rank if fresh else None,
            "scoreFrom": "ledger" if fresh else "strategy status",
        })
    if not leaders and spec.get("traders"):
        leaders = [{"wallet": w, "trustScore": None, "status": None, "rank": None, "scoreFrom": None}
                   for w in spec["traders"]]

    mine = [ct for ct in copytrades if (ct.get("spec") or {}).get("strategy") == name]
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    today = [trade_row(ct) for ct in mine]
    sent_today = [r for r in today if (parse_time(r["submittedAt"]) or day_start - timedelta(1)) >= day_start]
    admitted_today = [r for r in today if (parse_time(r["createdAt"]) or day_start - timedelta(1)) >= day_start]
    risk = spec.get("risk") or {}
    failures = [r for r in (trade_row(ct) for ct in mine) if r["state"] == TradeState.FAILED.value]
    failures.sort(key=lambda r: parse_time(r["finishedAt"]) or datetime.min.replace(tzinfo=UTC), reverse=True)

    dep_status = (deployment or {}).get("status") or {}
    desired = ((deployment or {}).get("spec") or {}).get("replicas")
    return {
        "strategy": f"{meta.get('namespace')}/{name}",
        "paused": bool(spec.get("paused")),
        "ready": _condition(status, "Ready"),
        "conditions": [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
                        "message": redact_urls(c.get("message") or "")} for c in status.get("conditions") or []],
        "vault": {"publicKey": (spec.get("vault") or {}).get("publicKey"),
                  "secretName": (spec.get("vault") or {}).get("secretName")},
        # its own vault and each active Vault object (the operator counts them from the ledger)
        "vaultCount": int(status.get("vaultCount") or 1),
        "selection": {"traders": spec.get("traders")} if spec.get("traders") else {"topN": spec.get("topN")},
        "leaders": leaders,
        "scoresError": scores_error,
        "trades": status.get("trades") or {},
        "today": {
            "since": day_start.isoformat(),
            "admitted": len(admitted_today),
            "sent": len(sent_today),
            "maxDailyTrades": risk.get("maxDailyTrades", 100),
            "maxDailyVolumeUsd": risk.get("maxDailyVolumeUsd", 10000.0),
            "maxTradeNotionalUsd": risk.get("maxTradeNotionalUsd", 1000.0),
            "countedFrom": "CopyTrades present in the cluster",
        },
        "halt": halt,
        "breakers": dict(breakers),
        "executors": {
            "deployment": (deployment or {}).get("metadata", {}).get("name"),
            "desired": desired,
            "ready": int(dep_status.get("readyReplicas") or 0),
            "available": int(dep_status.get("availableReplicas") or 0),
            "updated": int(dep_status.get("updatedReplicas") or 0),
            "pods": [_pod_row(p) for p in pods],
        },
        "lastFailures": [{k: r[k] for k in ("name", "tradeId", "reason", "message", "finishedAt")}
                         for r in failures[:FAILURES_SHOWN]],
    }


def _condition(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return {"status": c.get("status"), "reason": c.get("reason"),
                    "message": redact_urls(c.get("message") or "")}
    return None


def _pod_row(pod: Mapping[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return {
        "name": (pod.get("metadata") or {}).get("name"),
        "phase": (pod.get("status") or {}).get("phase"),
        "ready": f"{sum(1 for s in statuses if s.get('ready'))}/{len(statuses)}",
        "restarts": sum(int(s.get("restartCount") or 0) for s in statuses),
    }


def status_text(view: Mapping[str, Any], now: datetime) -> str:
    ready = view["ready"] or {}
    ex = view["executors"]
    today = view["today"]
    halt = view["halt"]
    lines = [
        f"Strategy:   {view['strategy']}",
        f"Ready:      {ready.get('status', 'Unknown')} ({ready.get('reason', '-')}: {_cell(ready.get('message'))})",
        f"Paused:     {'yes (kubectl xorj resume to restart executors)' if view['paused'] else 'no'}",
        f"Vault:      {view['vault']['publicKey']} (keypair Secret {view['vault']['secretName']})",
        *([f"Vaults:     {view['vaultCount']} get each lead swap (this one and {view['vaultCount'] - 1} Vault "
           f"object(s): kubectl get vaults --field-selector spec.strategy={view['strategy'].split('/', 1)[-1]})"]
          if view["vaultCount"] > 1 else []),
        f"Halt:       {_halt_line(halt)}",
        f"Breaker:    {_breaker_line(view['breakers'])}",
        f"Executors:  {ex['ready']}/{ex['desired'] if ex['desired'] is not None else '-'} ready"
        + (f" (Deployment {ex['deployment']})" if ex["deployment"] else " (no Deployment)"),
    ]
    if ex["pods"]:
        lines += ["  " + line for line in render_table(
            (("POD", "name"), ("PHASE", "phase"), ("READY", "ready"), ("RESTARTS", "restarts")), ex["pods"]
        ).splitlines()]
    trades = view["trades"]
    lines += [
        f"Trades:     pending {trades.get('pending', 0)}, submitted {trades.get('submitted', 0)}, "
        f"confirmed {trades.get('confirmed', 0)}, failed {trades.get('failed', 0)} (ledger, via the operator)",
        f"Today:      {today['sent']}/{today['maxDailyTrades']} sent against maxDailyTrades, "
        f"{today['admitted']} admitted since {today['since'][:10]} UTC (CopyTrades present); "
        f"maxDailyVolumeUsd {today['maxDailyVolumeUsd']:g}, maxTradeNotionalUsd {today['maxTradeNotionalUsd']:g}",
        "",
        "Leaders:",
    ]
    if view["leaders"]:
        lines += ["  " + line for line in render_table(
            (("WALLET", "wallet"), ("SCORE", "trustScore"), ("STATUS", "status"), ("RANK", "rank"),
             ("FROM", "scoreFrom")), view["leaders"]).splitlines()]
    else:
        lines.append("  none yet (topN selects from the ledger's trader scores)")
    if view["scoresError"]:
        lines.append(f"  (fresh scores unavailable: {view['scoresError']})")
    lines += ["", "Last failures:"]
    if view["lastFailures"]:
        rows = [{**f, "age": age(parse_time(f["finishedAt"]), now)} for f in view["lastFailures"]]
        lines += ["  " + line for line in render_table(
            (("COPYTRADE", "name"), ("TRADE", "tradeId"), ("REASON", "reason"), ("AGE", "age"),
             ("MESSAGE", "message")), rows).splitlines()]
    else:
        lines.append("  none")
    return "\n".join(lines)


def _halt_line(halt: Mapping[str, Any]) -> str:
    ledger = halt.get("ledger")
    if ledger is not None:
        text = ("ON: every trade is refused" + (f" ({ledger['reason']})" if ledger["reason"] else "")
                if ledger["halted"] else "off")
        text += " (ledger)"
    else:
        text = f"unknown in the ledger ({halt.get('ledgerError') or 'no ledger reader DSN'})"
    ops = halt.get("operators") or []
    if ops:
        wanted = ", ".join(f"{o['deployment']}={'on' if o['halted'] else 'off'}" for o in ops)
        text += f"; operator setting {wanted}"
    return text


def _breaker_line(breakers: Mapping[str, str | None]) -> str:
    if not breakers:
        return "no executor running"
    return ", ".join(f"{pod} {state or 'unknown (metrics unreachable)'}" for pod, state in sorted(breakers.items()))


# --------------------------------------------------------------------------------------------------
# scores


def scores_view(
    scores: Sequence[StoredTraderScore], strategy: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Trader scores as the ledger's ``trader_scores`` holds them (one latest row per wallet). With a
    strategy: its explicit traders, or the cohort its topN selects from (the normalization it uses),
    marking the wallets it follows now."""
    followed: set[str] = set()
    pool = "all scored traders"
    chosen = list(scores)
    if strategy is not None:
        meta = strategy.get("metadata") or {}
        spec = strategy.get("spec") or {}
        followed = {f.get("wallet") for f in (strategy.get("status") or {}).get("followedTraders") or []}
        pool = f"TradingStrategy {meta.get('namespace')}/{meta.get('name')}"
        if spec.get("traders"):
            wanted = set(spec["traders"])
            chosen = [s for s in scores if s.wallet in wanted]
            followed |= wanted
        else:
            norm = (spec.get("topN") or {}).get("normalization", "fixed")
            chosen = [s for s in scores if s.normalization in (None, norm)]
            pool += f" (topN, {norm} normalization)"
    rows = [{
        "wallet": s.wallet, "score": s.score, "status": s.status, "rank": s.rank, "sharpe": s.sharpe,
        "roiPct": s.roi_pct, "maxDrawdownPct": s.max_drawdown_pct, "trades": s.trades,
        "normalization": s.normalization, "followed": s.wallet in followed,
        "computedAt": s.computed_at.isoformat() if s.computed_at else None,
    } for s in sorted(chosen, key=lambda s: (-s.score, s.wallet))]
    return {"pool": pool, "source": "ledger trader_scores", "scores": rows}


def scores_table(view: Mapping[str, Any]) -> str:
    if not view["scores"]:
        return f"No trader scores for {view['pool']} (run `xorj score` to compute them)."
    rows = [{**r, "sharpe": _round(r["sharpe"]), "roiPct": _round(r["roiPct"]),
             "maxDrawdownPct": _round(r["maxDrawdownPct"])} for r in view["scores"]]
    return render_table(
        (("WALLET", "wallet"), ("SCORE", "score"), ("STATUS", "status"), ("RANK", "rank"), ("SHARPE", "sharpe"),
         ("ROI%", "roiPct"), ("MAXDD%", "maxDrawdownPct"), ("TRADES", "trades"), ("NORM", "normalization"),
         ("FOLLOWED", "followed")), rows)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
