"""Chaos Toolkit probes: the invariants of docs/design.md measured on the real ledger, the real chain and
the real API server. Each returns a plain value (int or dict) that the experiment's tolerance checks;
none of them decides success by itself, and none hides a failure to measure (a ledger unreachable for
CONNECT_TRIES connects raises, which fails the hypothesis).

- :func:`no_duplicate_trades` (ledger): more than one trade per idempotency key, or more than one
  LANDED attempt per trade. Tolerance ``0``.
- :func:`no_duplicate_onchain_transactions` (chain, via its admin API, against the ledger): swaps
  filled on chain per trade, fills no trade explains, fills of FAILED trades, CONFIRMED trades with
  no fill. Tolerance jsonpath ``$.violations`` = 0.
- :func:`no_orphans`: PENDING/SUBMITTED trades with no live lease for longer than the bound.
- :func:`all_trades_terminal_within`: this run's trades all CONFIRMED/FAILED within a bound (waits);
  also reports counts, the time to recover after the faults were cleared and, once the run has a
  load, its ``timeline`` (:func:`run_timeline`) for the report's pictures.
- :func:`copytrade_status_matches_ledger`: each CopyTrade's status.phase equals its ledger state.
- :func:`alert_raised`: an alert of ``kind`` in the outbox since that fault class was injected.
- :func:`alert_fired`: Alertmanager's API (``/api/v2/alerts``) says the Prometheus alert fired after
  the fault was injected, and resolved after the faults were cleared; with the seconds each took
  (the results table's "alert fired (s)" and "alert resolved (s)").
- :func:`vault_funds_accounted`: the vault's funds moved only by the run's filled trades and fees.
- :func:`hostile_swaps_refused`: trades refused as hostile had nothing signed, and some were refused.
- :func:`lead_swaps_copied_once`: counted on the chain, every lead swap of the run window has exactly
  one follower fill per following strategy, and was accepted once (the watcher experiments).
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from xorj.chaos import marks
from xorj.chaos.sets import scaled
from xorj.chaos.target import Target, resolve, trade_scale

TERMINAL = ("CONFIRMED", "FAILED")


CONNECT_TRIES = 3
CONNECT_RETRY_SECONDS = 1.0


def connect_ledger(dsn: str) -> psycopg.Connection:
    """The chaos suite's own session (probes, and the actions that read or signal the ledger). A failed
    connect is tried again, ``CONNECT_TRIES`` times in all, a second apart: the observer's path (a
    relay into the cluster on a loaded machine) may drop one connect, which says nothing of the
    system under test. A ledger still unreachable raises."""
    connect = functools.partial(psycopg.connect, dsn, connect_timeout=5, autocommit=True)
    for _ in range(CONNECT_TRIES - 1):
        try:
            return connect()
        except psycopg.OperationalError:
            time.sleep(CONNECT_RETRY_SECONDS)
    return connect()


@contextlib.contextmanager
def _db(target: Target) -> Iterator[psycopg.Cursor]:
    # the probes' own eyes: a direct connection (never through the cuttable proxy), short timeouts
    with connect_ledger(target.ledger_dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET statement_timeout = '10s'")
        yield cur


def run_filter(target: Target) -> tuple[str, dict[str, Any]]:
    """SQL condition selecting the trades this experiment run submitted (see actions.load), and the
    copies of the lead swaps it made (actions.lead_swaps: the watcher's trades carry their real lead
    signatures)."""
    from xorj.chaos.actions import run_lead_signatures

    return ("(lead_signature LIKE %(run_prefix)s OR copytrade LIKE %(copytrade_prefix)s"
            " OR lead_signature = ANY(%(run_leads)s))",
            {"run_prefix": f"chaos-{target.run_id}-%", "copytrade_prefix": f"%/chaos-{target.run_id}-%",
             "run_leads": run_lead_signatures(target)})


def ledger_reachable(configuration: dict[str, Any] | None = None) -> bool:
    target = resolve(configuration)
    try:
        with _db(target) as cur:
            cur.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def count_duplicate_trades(cur: psycopg.Cursor) -> int:
    keyed = cur.execute(
        """SELECT coalesce(sum(n - 1), 0) AS extra FROM (
               SELECT count(*) AS n FROM trades GROUP BY strategy, vault, lead_signature HAVING count(*) > 1) d"""
    ).fetchone()["extra"]
    landed = cur.execute(
        """SELECT coalesce(sum(n - 1), 0) AS extra FROM (
               SELECT count(*) AS n FROM attempts WHERE outcome = 'LANDED' GROUP BY trade_id HAVING count(*) > 1) d"""
    ).fetchone()["extra"]
    return int(keyed) + int(landed)


def no_duplicate_trades(configuration: dict[str, Any] | None = None) -> int:
    """Extra trades per idempotency key plus extra LANDED attempts per trade (0 when exactly-once held)."""
    with _db(resolve(configuration)) as cur:
        return count_duplicate_trades(cur)


def _vault_swaps(target: Target, payer: str) -> list[dict[str, Any]]:
    """Every swap transaction ``payer`` paid for on the local chain (its admin API), oldest first."""
    from xorj.chaos.actions import chain_admin

    answer = chain_admin(target, "GET", f"/swaps?vault={payer}")
    return list((answer["vaults"].get(payer) or {}).get("swaps") or [])


def _vault_fills(target: Target, vault: str) -> dict[str, list[str]]:
    from xorj.chaos.actions import chain_admin

    answer = chain_admin(target, "GET", f"/swaps?vault={vault}")
    entry = answer["vaults"].get(vault) or {"filled": [], "failed": []}
    return {"filled": list(entry["filled"]), "failed": list(entry["failed"])}


def compare_chain_with_ledger(cur: psycopg.Cursor, vault: str, filled: list[str]) -> dict[str, Any]:
    """Swaps filled on chain against the ledger's trades of ``vault`` (every strategy using it)."""
    attempts = cur.execute(
        """SELECT a.signature, a.trade_id, t.state, t.final_signature FROM attempts a JOIN trades t ON t.id = a.trade_id
            WHERE t.vault = %s""", (vault,)).fetchall()
    by_signature = {a["signature"]: a for a in attempts}
    confirmed = cur.execute(
        "SELECT id, final_signature FROM trades WHERE vault = %s AND state = 'CONFIRMED'", (vault,)).fetchall()
    fills_per_trade: dict[int, int] = {}
    unexplained, failed_but_filled, wrong_final = [], [], []
    for signature in filled:
        attempt = by_signature.get(signature)
        if attempt is None:
            unexplained.append(signature)
            continue
        fills_per_trade[attempt["trade_id"]] = fills_per_trade.get(attempt["trade_id"], 0) + 1
        if attempt["state"] == "FAILED":
            failed_but_filled.append(attempt["trade_id"])
        elif attempt["state"] == "CONFIRMED" and attempt["final_signature"] != signature:
            wrong_final.append(attempt["trade_id"])
    filled_set = set(filled)
    not_on_chain = [t["id"] for t in confirmed if t["final_signature"] not in filled_set]
    duplicates = sum(n - 1 for n in fills_per_trade.values() if n > 1)
    violations = duplicates + len(unexplained) + len(failed_but_filled) + len(wrong_final) + len(not_on_chain)
    return {"violations": violations, "fills": len(filled), "confirmed_trades": len(confirmed),
            "duplicate_fills": duplicates, "unexplained_fills": unexplained[:10],
            "failed_but_filled": failed_but_filled[:10], "confirmed_not_final_fill": wrong_final[:10],
            "confirmed_not_on_chain": not_on_chain[:10]}


def strategy_vaults(cur: psycopg.Cursor, target: Target) -> list[str]:
    """The target's vault and every other vault the strategy's trades went to (its Vault resources'
    fan-out copies): a fill is checked in every vault a trade of the strategy could have paid from."""
    rows = cur.execute("SELECT DISTINCT vault FROM trades WHERE strategy = %s ORDER BY vault",
                       (target.strategy,)).fetchall()
    own = target.require("vault")
    return [own, *(r["vault"] for r in rows if r["vault"] != own)]


def _compare_vaults(cur: psycopg.Cursor, target: Target, vaults: list[str]) -> dict[str, Any]:
    total: dict[str, Any] = {"vaults": len(vaults)}
    for vault in vaults:
        one = compare_chain_with_ledger(cur, vault, _vault_fills(target, vault)["filled"])
        for key, value in one.items():
            total[key] = total.get(key, 0 if isinstance(value, int) else []) + value
    return total


def no_duplicate_onchain_transactions(followers: bool = False,
                                      configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counted on the chain: each trade has at most one filled swap, every fill belongs to a trade that
    is not FAILED, and each CONFIRMED trade's final signature is a fill. ``violations`` must be 0.
    Every vault of the target's strategy is checked (its own and its fan-out vaults'), or with
    ``followers``, the vaults of the copy loop's following strategies (the watcher experiments'
    trades), summed."""
    target = resolve(configuration)
    with _db(target) as cur:
        if not followers:
            return _compare_vaults(cur, target, strategy_vaults(cur, target))
        from xorj.chaos.actions import _copy_loop

        _, following = _copy_loop(target)
        return _compare_vaults(cur, target, [follower["vault"] for follower in following])


def count_orphans(cur: psycopg.Cursor, grace_seconds: float) -> list[int]:
    rows = cur.execute(
        """SELECT id FROM trades
            WHERE state IN ('PENDING', 'SUBMITTED')
              AND (lease_expires_at IS NULL OR lease_expires_at <= now())
              AND coalesce(lease_expires_at, created_at) < now() - %s
            ORDER BY id""", (timedelta(seconds=grace_seconds),)).fetchall()
    return [r["id"] for r in rows]


def no_orphans(grace_seconds: float = 30.0, configuration: dict[str, Any] | None = None) -> int:
    """Trades PENDING or SUBMITTED with no live lease for longer than ``grace_seconds`` (the same rule as
    Ledger.find_stale): work nobody owns. 0 when every open trade is held or was just released."""
    with _db(resolve(configuration)) as cur:
        return len(count_orphans(cur, float(grace_seconds)))


def run_counts(cur: psycopg.Cursor, target: Target) -> dict[str, Any]:
    condition, params = run_filter(target)
    row = cur.execute(
        f"""SELECT count(*) AS trades,
                   count(*) FILTER (WHERE state = 'CONFIRMED') AS confirmed,
                   count(*) FILTER (WHERE state = 'FAILED') AS failed,
                   count(*) FILTER (WHERE state IN ('PENDING', 'SUBMITTED')) AS open,
                   extract(epoch FROM max(finished_at)) AS last_finished
              FROM trades WHERE {condition}""", params).fetchone()
    reasons = cur.execute(
        f"SELECT reason, count(*) AS n FROM trades WHERE {condition} AND state = 'FAILED' GROUP BY reason", params
    ).fetchall()
    return {"trades": row["trades"], "confirmed": row["confirmed"], "failed": row["failed"], "open": row["open"],
            "last_finished": float(row["last_finished"]) if row["last_finished"] is not None else None,
            "failed_reasons": {r["reason"]: r["n"] for r in reasons}}


MAX_TIMELINE_ALERTS = 500


def run_timeline(cur: psycopg.Cursor, target: Target, run_marks: dict[str, Any]) -> dict[str, Any]:
    """What the report's timeline of this run is drawn from (:mod:`xorj.chaos.pictures`): the run's
    marks (fault injected/cleared, paused, load), each trade of the run as ``[created, submitted,
    finished, state]`` (epoch seconds; the ledger's own timestamps, so the states over time are exact
    rather than sampled) and each outbox alert written since the run began as ``[kind, created]``
    (the outbox records when an alert was raised, not when it resolved)."""
    condition, params = run_filter(target)
    trades = cur.execute(
        f"""SELECT extract(epoch FROM created_at) AS created, extract(epoch FROM submitted_at) AS submitted,
                   extract(epoch FROM finished_at) AS finished, state
              FROM trades WHERE {condition} ORDER BY created_at, id""", params).fetchall()
    since = float(run_marks.get("begin") or run_marks.get("load") or time.time()) - 1.0
    alerts = cur.execute(
        """SELECT kind, extract(epoch FROM created_at) AS at FROM alerts
            WHERE created_at >= to_timestamp(%s) ORDER BY created_at, id LIMIT %s""",
        (since, MAX_TIMELINE_ALERTS)).fetchall()

    def stamp(value: Any) -> float | None:
        return None if value is None else round(float(value), 3)

    return {"marks": run_marks,
            "trades": [[stamp(t["created"]), stamp(t["submitted"]), stamp(t["finished"]), t["state"]] for t in trades],
            "alerts": [[a["kind"], stamp(a["at"])] for a in alerts]}


def all_trades_terminal_within(seconds: float = 120.0, min_trades: int = 0,
                               configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Wait up to ``seconds`` for every trade of this run to be in the ledger and CONFIRMED or FAILED.

    Every trade the run's loads submitted must arrive: a CopyTrade created while the operator is down
    is admitted only once it is back, and one never admitted is a lost trade (``expected`` counts
    them, at least ``min_trades``). ``ok`` is True when all expected trades are in and none is open;
    ``recovered_after_s`` is the time from the moment the faults were cleared (or the last fault, or
    the load) to the last trade finishing. The run's ``trade_scale`` multiplies ``seconds`` and
    ``min_trades`` (see :mod:`xorj.chaos.sets`)."""
    scale = trade_scale(configuration)
    seconds, min_trades = float(seconds) * scale, scaled(int(min_trades), scale)
    target = resolve(configuration)
    deadline = time.monotonic() + float(seconds)
    started = time.monotonic()
    while True:
        run_marks = marks.read(target)
        # before the method there is nothing to count; after it, what the loads submitted
        expected = max(int(min_trades), int(run_marks.get("loaded", 0))) if "load" in run_marks else 0
        with _db(target) as cur:
            counts = run_counts(cur, target)
            done = counts["open"] == 0 and counts["trades"] >= expected
            finished = done or time.monotonic() >= deadline
            timeline = run_timeline(cur, target, run_marks) if finished and "load" in run_marks else None
        if finished:
            break
        time.sleep(0.5)
    since = run_marks.get("cleared") or run_marks.get("fault:last") or run_marks.get("load")
    recovered = None
    if done and since and counts["last_finished"]:
        recovered = round(max(0.0, counts["last_finished"] - since), 1)
    verdict = {**counts, "expected": expected, "ok": done, "waited_s": round(time.monotonic() - started, 1),
               "recovered_after_s": recovered}
    if timeline is not None:
        verdict["timeline"] = timeline
    return verdict


def alert_raised(kind: str, within_seconds: float = 30.0,
                 configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """An alert of ``kind`` (RPC_FAILURE, LEDGER_UNAVAILABLE, ONCHAIN_FAILURE, BREAKER_OPEN, ...) in the
    ledger's outbox since a fault of that class was injected in this run, waiting up to
    ``within_seconds`` for it (a ledger-loss alert can only be written once the ledger is back).
    Before any such fault, ``raised`` is vacuously True (``injected`` False): nothing to alert about."""
    target = resolve(configuration)
    injected_at = marks.read(target).get(f"fault:{kind}")
    if injected_at is None:
        return {"raised": True, "injected": False, "count": 0}
    deadline = time.monotonic() + float(within_seconds)
    while True:
        with _db(target) as cur:
            count = cur.execute("SELECT count(*) AS n FROM alerts WHERE kind = %s AND created_at >= to_timestamp(%s)",
                                (kind, injected_at - 1.0)).fetchone()["n"]
        if count > 0 or time.monotonic() >= deadline:
            return {"raised": count > 0, "injected": True, "count": count}
        time.sleep(0.5)


def active_alerts(url: str, alertname: str) -> list[dict[str, Any]]:
    """The active (firing, not silenced) alerts named ``alertname``, from Alertmanager's API v2."""
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"', "active": "true",
                                    "silenced": "false", "inhibited": "false", "unprocessed": "true"})
    with urllib.request.urlopen(f"{url.rstrip('/')}/api/v2/alerts?{query}", timeout=5) as response:  # noqa: S310
        answer = json.loads(response.read())
    if not isinstance(answer, list):
        raise ValueError(f"Alertmanager /api/v2/alerts answered {type(answer).__name__}, not a list")
    return [a for a in answer if isinstance(a, dict) and (a.get("labels") or {}).get("alertname") == alertname]


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def alert_fired(alertname: str, fault: str, fired_within_seconds: float = 120.0,
                resolved_within_seconds: float = 180.0,
                configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask the environment's Alertmanager whether the Prometheus alert ``alertname`` fired for the
    fault class ``fault`` (the mark ``fault:<fault>`` written when it was injected) and resolved once
    the faults were cleared (the mark ``cleared``).

    Waits up to ``fired_within_seconds`` from the injection for the alert to be active, then (once the
    faults are cleared) up to ``resolved_within_seconds`` for it to leave the active alerts.
    ``fired_after_s`` is the alert's ``startsAt`` less the injection time (when Prometheus began
    firing it); ``resolved_after_s`` is when it was first seen gone less the clearing time. ``ok`` is
    True when it fired and resolved. Before any such fault: vacuously ok (``injected`` False). An
    environment without Alertmanager cannot be asked: ``checked`` False and ``ok`` False (say so
    rather than pass)."""
    target = resolve(configuration)
    injected_at = marks.read(target).get(f"fault:{fault}")
    result: dict[str, Any] = {"alert": alertname, "fault": fault, "injected": injected_at is not None,
                              "checked": bool(target.alertmanager_url), "fired": False, "resolved": False,
                              "fired_after_s": None, "resolved_after_s": None}
    if injected_at is None:
        return {**result, "ok": True}
    if not target.alertmanager_url:
        return {**result, "ok": False, "error": "no Alertmanager in this environment (alertmanager_url)"}
    url = target.alertmanager_url
    deadline = float(injected_at) + float(fired_within_seconds)
    while True:
        active = [a for a in active_alerts(url, alertname)
                  if a.get("startsAt") and _epoch(a["startsAt"]) >= float(injected_at) - 60.0]
        if active:
            starts = min(_epoch(a["startsAt"]) for a in active)
            result.update(fired=True, fired_after_s=round(max(0.0, starts - float(injected_at)), 1))
            break
        if time.time() >= deadline:
            return {**result, "ok": False}
        time.sleep(1.0)
    while True:
        cleared_at = marks.read(target).get("cleared")
        if cleared_at is not None:
            break
        if time.time() >= deadline + float(resolved_within_seconds):
            return {**result, "ok": False, "error": "the faults were never cleared"}
        time.sleep(1.0)
    deadline = float(cleared_at) + float(resolved_within_seconds)
    while True:
        if not active_alerts(url, alertname):
            result.update(resolved=True, resolved_after_s=round(max(0.0, time.time() - float(cleared_at)), 1))
            return {**result, "ok": True}
        if time.time() >= deadline:
            return {**result, "ok": False}
        time.sleep(1.0)


def vault_funds_accounted(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The vault's funds since :func:`xorj.chaos.actions.snapshot_vault`, on the chain: every
    transaction it paid for is an attempt the ledger committed; its input token fell by exactly the
    amounts of the trades those transactions filled, its output rose by exactly their quoted outputs,
    its lamports fell by exactly the fees of those transactions; its account and token accounts kept
    their owner and delegate. ``violations`` must be 0. Before a snapshot: vacuously 0."""
    from xorj.chaos.actions import chain_admin

    target = resolve(configuration)
    path = target.state_dir / "vault-before.json"
    if not path.exists():
        return {"violations": 0, "snapshot": False}
    before = json.loads(path.read_text())
    vault = target.require("vault")
    after = chain_admin(target, "GET", f"/vault?vault={vault}")
    seen = {t["signature"] for t in before["transactions"]}
    new = [t for t in after["transactions"] if t["signature"] not in seen]
    with _db(target) as cur:
        rows = cur.execute(
            """SELECT a.signature, a.quote_out_amount, t.id, t.amount FROM attempts a JOIN trades t ON t.id = a.trade_id
                WHERE t.vault = %s AND a.signature = ANY(%s)""",
            (vault, [t["signature"] for t in new])).fetchall()
    attempts = {r["signature"]: r for r in rows}
    unexplained = [t["signature"] for t in new if t["signature"] not in attempts]
    filled = [attempts[t["signature"]] for t in new if t["err"] is None and t["signature"] in attempts]
    input_mint, output_mint = target.require("input_mint"), target.require("output_mint")

    def amount(state: dict[str, Any], mint: str) -> int:
        token = state["tokens"].get(mint)
        return int(token["amount"]) if token else 0

    problems: list[str] = [f"transaction {s} paid by the vault is no committed attempt" for s in unexplained[:5]]
    spent = amount(before, input_mint) - amount(after, input_mint)
    if spent != sum(int(r["amount"]) for r in filled):
        problems.append(f"input fell by {spent}, the filled trades' amounts sum to {sum(int(r['amount']) for r in filled)}")
    received = amount(after, output_mint) - amount(before, output_mint)
    if received != sum(int(r["quote_out_amount"] or 0) for r in filled):
        problems.append(f"output rose by {received}, the filled quotes sum to "
                        f"{sum(int(r['quote_out_amount'] or 0) for r in filled)}")
    fees = sum(int(t["fee"]) for t in new)
    if before["lamports"] - after["lamports"] != fees:
        problems.append(f"lamports fell by {before['lamports'] - after['lamports']}, the fees of its "
                        f"{len(new)} transactions are {fees}")
    if after["owner"] != before["owner"]:
        problems.append(f"the vault's account owner changed to {after['owner']}")
    for mint, token in after["tokens"].items():
        old = before["tokens"].get(mint)
        if token and old and (token["owner"], token["delegate"]) != (old["owner"], old["delegate"]):
            problems.append(f"token account of {mint}: owner/delegate changed to {token['owner']}/{token['delegate']}")
        if old and token is None:
            problems.append(f"token account of {mint} closed")
    return {"violations": len(problems) + max(0, len(unexplained) - 5), "snapshot": True, "transactions": len(new),
            "filled": len(filled), "problems": problems}


def hostile_swaps_refused(expect_rules: list[str] | None = None,
                          configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """This run's trades refused as SWAP_REJECTED / QUOTE_REJECTED: none has an attempt (nothing was
    signed for it); once a hostile swap-API fault was injected (mark ``fault:SWAP_REJECTED``), at least
    one was refused (the attack really happened). With ``expect_rules``, every one of those rules (the
    name a refusal's detail starts with, e.g. ``token-approve``) must have refused a trade of the run:
    an attack that never reached the executor proves nothing (checked once an attack was injected).
    ``ok`` must be true."""
    target = resolve(configuration)
    condition, params = run_filter(target)
    with _db(target) as cur:
        rows = cur.execute(
            f"""SELECT t.detail,
                       EXISTS (SELECT 1 FROM attempts a WHERE a.trade_id = t.id) AS signed
                  FROM trades t WHERE {condition} AND state = 'FAILED'
                   AND reason IN ('SWAP_REJECTED', 'QUOTE_REJECTED')""", params).fetchall()
    signed = sum(1 for r in rows if r["signed"])
    injected = marks.read(target).get("fault:SWAP_REJECTED") is not None
    seen = sorted({rule for rule in (expect_rules or []) if any(f"{rule}:" in (r["detail"] or "") for r in rows)})
    missing = sorted(set(expect_rules or []) - set(seen)) if injected else []  # before the attacks: nothing yet
    ok = signed == 0 and (len(rows) > 0 or not injected) and not missing
    return {"ok": ok, "refused": len(rows), "signed_for_refused": signed, "injected": injected,
            "rules_refused": seen, "rules_missing": missing}


def _custom_objects(target: Target):
    from kubernetes import client, config

    config.load_kube_config(config_file=target.kubeconfig)
    return client.CustomObjectsApi()


def copytrade_status_matches_ledger(within_seconds: float = 60.0,
                                    configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every CopyTrade in the namespace whose ledger trade exists has ``status.phase`` equal to the
    ledger state (waiting up to ``within_seconds`` for the status to catch up). ``mismatches`` must be 0."""
    target = resolve(configuration)
    namespace = target.require("namespace")
    api = _custom_objects(target)
    deadline = time.monotonic() + float(within_seconds)
    while True:
        items = api.list_namespaced_custom_object("trading.xorj.io", "v1alpha1", namespace, "copytrades")["items"]
        names = [f"{namespace}/{i['metadata']['name']}" for i in items]
        with _db(target) as cur:
            rows = cur.execute("SELECT copytrade, state FROM trades WHERE copytrade = ANY(%s)", (names,)).fetchall()
        ledger_state = {r["copytrade"]: r["state"] for r in rows}
        mismatched = []
        for item in items:
            key = f"{namespace}/{item['metadata']['name']}"
            if key in ledger_state:
                phase = (item.get("status") or {}).get("phase")
                if phase != ledger_state[key]:
                    mismatched.append({"copytrade": key, "phase": phase, "ledger": ledger_state[key]})
        if not mismatched or time.monotonic() >= deadline:
            return {"checked": len(ledger_state), "mismatches": len(mismatched), "examples": mismatched[:5]}
        time.sleep(1.0)


def slippage_retried(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """After an on-chain slippage fault: attempts of this run's trades failed on chain with
    SLIPPAGE_EXCEEDED and were retried with a fresh quote at a higher slippage bound, never equal or
    lower (DESIGN invariant 4). ``ok`` is vacuously True before any such fault was injected."""
    target = resolve(configuration)
    if marks.read(target).get("fault:ONCHAIN_FAILURE") is None:
        return {"ok": True, "injected": False}
    condition, params = run_filter(target)
    with _db(target) as cur:
        rows = cur.execute(
            f"""SELECT a.trade_id, a.attempt_no, a.slippage_bps, a.reason FROM attempts a
                 WHERE a.trade_id IN (SELECT id FROM trades WHERE {condition}) ORDER BY a.trade_id, a.attempt_no""",
            params).fetchall()
    by_trade: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_trade.setdefault(row["trade_id"], []).append(row)
    slippage_failures = sum(1 for r in rows if r["reason"] == "SLIPPAGE_EXCEEDED")
    retried = [t for t, attempts in by_trade.items()
               if any(a["reason"] == "SLIPPAGE_EXCEEDED" for a in attempts[:-1])]
    not_raised = [t for t in retried
                  if any(b["slippage_bps"] <= a["slippage_bps"] for a, b in zip(by_trade[t], by_trade[t][1:])
                         if a["reason"] == "SLIPPAGE_EXCEEDED")]
    return {"ok": slippage_failures > 0 and bool(retried) and not not_raised, "injected": True,
            "slippage_failures": slippage_failures, "retried_trades": len(retried), "not_raised": not_raised[:10]}


def sent_while_paused(grace_seconds: float = 3.0, configuration: dict[str, Any] | None = None) -> int:
    """Attempts (signed transactions) created while the kill switch was on, from ``grace_seconds``
    after it was set until it was released: must be 0. Before any pause: 0 (nothing to check)."""
    target = resolve(configuration)
    run_marks = marks.read(target)
    paused_at = run_marks.get("paused")
    if paused_at is None:
        return 0
    until = run_marks.get("unpaused") or time.time()
    with _db(target) as cur:
        return cur.execute(
            """SELECT count(*) AS n FROM attempts a JOIN trades t ON t.id = a.trade_id
                WHERE t.strategy = %s AND a.created_at >= to_timestamp(%s) AND a.created_at < to_timestamp(%s)""",
            (target.require("strategy"), paused_at + float(grace_seconds), until)).fetchone()["n"]


def chain_reconciled(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """One pass of the chain reconciler (xorj.reconciler) over the target's vault, through the local
    chain's RPC: ``open_findings`` (transactions with no attempt, attempts recorded as not landed that
    landed, CONFIRMED trades not final past the grace) and ``errors`` must both be 0."""
    import asyncio

    from xorj.chain.rpc import SolanaRpc
    from xorj.ledger.aio import AsyncLedger
    from xorj.reconciler.service import ReconcileSettings, reconcile_pass

    target = resolve(configuration)
    vault = target.require("vault")
    # the local chain serves JSON-RPC at "/" beside its admin API at "/admin"
    rpc_url = target.require("chain_admin_url").rstrip("/").removesuffix("/admin") + "/"

    async def one_pass():  # type: ignore[no-untyped-def]
        async with AsyncLedger.for_dsn(target.ledger_dsn, max_size=1, name="xorj-chaos-probe") as ledger, \
                SolanaRpc(rpc_url) as rpc:
            return await reconcile_pass(ledger, rpc, ReconcileSettings(), [vault])

    report = asyncio.run(one_pass())
    return {"open_findings": len(report.open_findings), "errors": len(report.errors),
            "classes": sorted({f.finding_class.value for f in report.open_findings}),
            "walked": sum(v.walked for v in report.vaults)}


def copies_on_chain(lead_swaps: list[str], sent: list[str], accepted: dict[str, str],
                    fills: dict[str, list[str | None]]) -> dict[str, Any]:
    """The verdict of :func:`lead_swaps_copied_once`, from what was read (pure).

    ``lead_swaps``: the lead trader's filled swaps on chain in the run window; ``sent``: the ones the
    run's load sent; ``accepted``: lead signature -> the source that accepted it (the watcher's
    signal rows); ``fills``: per following strategy, the lead signature of each of its vault's
    filled swaps (None: a fill no trade of that strategy explains). ``ok``: every lead swap on chain
    was sent by the run, accepted, and filled exactly once per strategy; no fill of a strategy is
    unexplained or copies a swap outside the window."""
    window = set(lead_swaps)
    per_strategy: dict[str, dict[str, Any]] = {}
    for strategy, leads in sorted(fills.items()):
        counts: dict[str, int] = {}
        for lead in leads:
            if lead is not None:
                counts[lead] = counts.get(lead, 0) + 1
        per_strategy[strategy] = {
            "copied_once": sum(1 for s in lead_swaps if counts.get(s) == 1),
            "missing": [s for s in lead_swaps if s not in counts][:10],
            "missing_count": sum(1 for s in lead_swaps if s not in counts),
            "duplicate_fills": sum(n - 1 for s, n in counts.items() if s in window and n > 1),
            "unexplained_fills": sum(1 for lead in leads if lead is None)}
    not_sent = sorted(window - set(sent))
    not_on_chain = [s for s in sent if s not in window]
    not_accepted = [s for s in lead_swaps if s not in accepted]
    sources: dict[str, int] = {}
    for signature in lead_swaps:
        if signature in accepted:
            sources[accepted[signature]] = sources.get(accepted[signature], 0) + 1
    ok = (bool(lead_swaps) and bool(fills) and not not_sent and not not_on_chain and not not_accepted
          and all(v["missing_count"] == 0 and v["duplicate_fills"] == 0 and v["unexplained_fills"] == 0
                  for v in per_strategy.values()))
    return {"ok": ok, "lead_swaps": len(lead_swaps), "sent": len(sent), "accepted": len(lead_swaps) - len(not_accepted),
            "accepted_by_source": sources, "strategies": per_strategy,
            "duplicate_fills": sum(v["duplicate_fills"] for v in per_strategy.values()),
            "not_accepted": not_accepted[:10], "not_sent_by_run": not_sent[:10], "sent_not_on_chain": not_on_chain[:10]}


def lead_swaps_copied_once(within_seconds: float = 60.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counted on the chain: the lead trader's filled swaps since the run's first lead swap
    (:func:`xorj.chaos.actions.lead_swaps`) against each following strategy's filled swaps, joined by
    the ledger's attempt signatures only to name which lead swap a fill copies. Waits up to
    ``within_seconds`` (times the run's ``trade_scale``) for the last copies to land; see
    :func:`copies_on_chain` for ``ok``. Before the run's load: vacuously ok (``loaded`` False)."""
    from xorj.chaos.actions import LEAD_WINDOW_FILE, _copy_loop, run_lead_signatures

    target = resolve(configuration)
    window_file = target.state_dir / LEAD_WINDOW_FILE
    if "load" not in marks.read(target) or not window_file.exists():
        return {"ok": True, "loaded": False}
    window = json.loads(window_file.read_text())
    _, following = _copy_loop(target)
    deadline = time.monotonic() + float(within_seconds) * trade_scale(configuration)
    while True:
        sent = run_lead_signatures(target)
        lead = [s["signature"] for s in _vault_swaps(target, window["leader"])
                if s["filled"] and int(s["slot"]) >= int(window["from_slot"])]
        fills: dict[str, list[str | None]] = {}
        with _db(target) as cur:
            rows = cur.execute("SELECT signature, source FROM lead_signals WHERE leader = %s AND signature = ANY(%s)",
                               (window["leader"], lead)).fetchall()
            accepted = {r["signature"]: r["source"] for r in rows}
            for follower in following:
                filled = _vault_fills(target, follower["vault"])["filled"]
                explained = {r["signature"]: r["lead_signature"] for r in cur.execute(
                    """SELECT a.signature, t.lead_signature FROM attempts a JOIN trades t ON t.id = a.trade_id
                        WHERE t.strategy = %s AND t.vault = %s AND a.signature = ANY(%s)""",
                    (follower["strategy"], follower["vault"], filled)).fetchall()}
                # only this run's copies and fills nobody explains; earlier runs' copies are theirs
                fills[follower["strategy"]] = [explained.get(f) for f in filled
                                               if f not in explained or explained[f] in set(lead)]
        verdict = copies_on_chain(lead, sent, accepted, fills)
        if verdict["ok"] or time.monotonic() >= deadline:
            return {**verdict, "loaded": True}
        time.sleep(1.0)
