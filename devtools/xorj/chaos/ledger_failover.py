"""The HA ledger losing its primary (experiment ledger-primary-failover): the actions that take the
primary away and the probes that judge what followed.

Runs against the chart's Patroni ledger (``ledger.mode=ha``): ``xorj dev up --ledger ha`` on the real
node, or a cluster with the chart; the probes read the ledger through the same DSN as every other
probe (``XORJ_CHAOS_LEDGER_DSN`` or the demo's), which follows the primary Service.

Three faults, each on the member Patroni labels ``role=primary``:

- ``pod-delete``: the primary's pod deleted (its own grace period: Patroni stops Postgres and gives
  up the leader lock, the synchronous standby is promoted; the StatefulSet makes the pod again, which
  re-joins as a replica);
- ``postgres-kill``: SIGKILL to the primary's postmaster (``kill -9`` of the pid in
  ``postmaster.pid``, inside the pod): a crash, which Patroni answers by restarting Postgres (crash
  recovery) while it still holds the leader lock;
- ``switchover``: a planned primary change through Patroni's REST API (``POST /switchover`` from
  inside the primary's pod), to the synchronous standby.

Before each fault the ids of the trades the run has admitted so far are kept
(``admitted-before-<fault>.json`` in the run's state directory); :func:`admitted_trades_survived`
checks every one is still in the ledger afterwards. Each action waits until a transaction commits
through the primary Service again (``txid_current()``, which under strict synchronous replication
returns only once a standby has the commit) and returns the recovery time, which the journal keeps.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import psycopg

from xorj.chaos import marks
from xorj.chaos.target import Target, resolve
from xorj.errors import EnvironmentSetupError, InvalidInputError

FAULTS = ("pod-delete", "postgres-kill", "switchover")
LEDGER_SELECTOR = "app.kubernetes.io/component=ledger"
PGDATA = "/var/lib/postgresql/data/pgdata"  # the chart's data_dir (templates/postgresql-ha.yaml)
COMMIT_PROBE_SECONDS = 3.0  # a commit that takes longer is a ledger not yet recovered
# Patroni's REST API, from inside the pod (the image has Patroni's Python, not curl)
SWITCHOVER_SCRIPT = ("import json, sys, urllib.request; "
                     "r = urllib.request.Request('http://127.0.0.1:8008/switchover', method='POST', "
                     "data=json.dumps({'leader': sys.argv[1]}).encode(), headers={'Content-Type': 'application/json'}); "
                     "print(urllib.request.urlopen(r, timeout=30).read().decode())")


def _kubectl(target: Target, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    from xorj.devenv.toolchain import Toolchain

    command = [str(Toolchain().path("kubectl")), *(["--kubeconfig", target.kubeconfig] if target.kubeconfig else []),
               "-n", target.require("namespace"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def ledger_members(target: Target) -> dict[str, str]:
    """Each ledger member's pod name and its Patroni role label (primary, replica; '' while it has none)."""
    result = _kubectl(target, "get", "pods", "-l", LEDGER_SELECTOR, "-o", "json")
    if result.returncode != 0:
        raise EnvironmentSetupError(f"listing the ledger's pods: {result.stderr.strip()}")
    return {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get("role", "")
            for p in json.loads(result.stdout)["items"] if not p["metadata"].get("deletionTimestamp")}


def primary_pod(target: Target) -> str:
    primaries = [name for name, role in ledger_members(target).items() if role == "primary"]
    if len(primaries) != 1:
        raise EnvironmentSetupError(f"expected one ledger pod labelled role=primary, found {primaries or 'none'} "
                                    "(is the ledger the chart's HA ledger, ledger.mode=ha?)")
    return primaries[0]


def _run_trade_ids(target: Target) -> list[int]:
    from xorj.chaos.probes import run_filter

    condition, params = run_filter(target)
    with psycopg.connect(target.ledger_dsn, connect_timeout=5, autocommit=True) as conn:
        return [row[0] for row in conn.execute(f"SELECT id FROM trades WHERE {condition} ORDER BY id", params)]


def commits(dsn: str) -> bool:
    """A transaction commits through the DSN (the primary Service) within COMMIT_PROBE_SECONDS."""
    started = time.monotonic()
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if in_recovery is None or in_recovery[0]:
                return False
            # a commit with a transaction id waits for the synchronous standby (strict mode); a
            # cancelled wait would return with a warning, so the time taken is the test
            conn.execute(f"SET statement_timeout = '{int(COMMIT_PROBE_SECONDS * 1000)}ms'")
            conn.execute("SELECT txid_current()")
    except psycopg.Error:
        return False
    return time.monotonic() - started < COMMIT_PROBE_SECONDS


def _inject(target: Target, fault: str, primary: str) -> str:
    if fault == "pod-delete":
        result = _kubectl(target, "delete", "pod", primary, "--wait=false")
    elif fault == "postgres-kill":
        result = _kubectl(target, "exec", primary, "-c", "patroni", "--", "sh", "-c",
                          f"kill -9 \"$(head -n 1 {PGDATA}/postmaster.pid)\"")
    else:
        result = _kubectl(target, "exec", primary, "-c", "patroni", "--", "python3", "-c", SWITCHOVER_SCRIPT,
                          primary)
    if result.returncode != 0:
        raise EnvironmentSetupError(f"{fault} on {primary}: {(result.stderr or result.stdout).strip()[-1000:]}")
    return result.stdout.strip()[-500:]


def take_primary_away(fault: str, recovery_timeout_seconds: float = 120.0,
                      configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inject ``fault`` (one of FAULTS) on the current primary, then wait until a transaction commits
    through the primary Service again; returns the old and new primary and the recovery time (from the
    fault to that first commit). Fails when the ledger has not recovered within
    ``recovery_timeout_seconds``."""
    if fault not in FAULTS:
        raise InvalidInputError(f"take_primary_away.fault must be one of {', '.join(FAULTS)}, got {fault!r}")
    target = resolve(configuration)
    old = primary_pod(target)
    admitted = _run_trade_ids(target)
    (target.state_dir / f"admitted-before-{fault}.json").write_text(json.dumps(admitted))
    marks.fault(target, "LEDGER_UNAVAILABLE")
    marks.write(target, f"fault:{fault}")
    started_wall, started = time.time(), time.monotonic()
    answer = _inject(target, fault, old)
    # Patroni takes a moment to act: a commit that still lands on the old primary before it goes is
    # not a recovery. Pod deletion and switchover end with another member labelled primary; a killed
    # postmaster is restarted (or replaced) by Patroni, and the first commit after the kill counts.
    deadline = started + float(recovery_timeout_seconds)
    left_old = fault == "postgres-kill"
    while True:
        now = time.monotonic()
        if now > deadline:
            raise EnvironmentSetupError(f"{fault}: the ledger took no commit through its primary Service within "
                                        f"{recovery_timeout_seconds:.0f}s (members: {ledger_members(target)})")
        if not left_old:
            try:
                left_old = primary_pod(target) != old
            except EnvironmentSetupError:
                left_old = False  # none or two labelled primary: mid-change
        if left_old and commits(target.ledger_dsn):
            break
        time.sleep(0.2)
    recovery = round(time.monotonic() - started, 2)
    new = primary_pod(target)
    marks.write(target, f"recovered:{fault}", recovery)
    marks.write(target, "cleared")
    return {"fault": fault, "old_primary": old, "new_primary": new, "recovery_seconds": recovery,
            "fault_at": round(started_wall, 3), "admitted_before": len(admitted), "answer": answer}


# -- probes -----------------------------------------------------------------------------------------

def admitted_trades_survived(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every trade the run had admitted before each fault is still in the ledger (a commit the executor
    or operator saw survives the primary's loss). ``missing`` counts those gone."""
    target = resolve(configuration)
    present = set(_run_trade_ids(target))
    checked, missing = {}, {}
    for fault in FAULTS:
        path = target.state_dir / f"admitted-before-{fault}.json"
        if not path.exists():
            continue
        before = json.loads(path.read_text())
        checked[fault] = len(before)
        gone = [trade for trade in before if trade not in present]
        if gone:
            missing[fault] = gone[:20]
    return {"checked": checked, "faults": len(checked), "missing": sum(len(v) for v in missing.values()),
            "missing_ids": missing}


def failed_trades_admitted_before(until: str = "fault:pod-delete",
                                  configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's FAILED trades among those admitted before the mark ``until`` (the switchover, a
    planned change, comes first: nothing it overlaps may fail). A missing mark counts every trade."""
    from xorj.chaos.probes import run_filter

    target = resolve(configuration)
    cutoff = marks.read(target).get(until) or time.time()
    condition, params = run_filter(target)
    with psycopg.connect(target.ledger_dsn, connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute(
            f"""SELECT state, reason FROM trades
                 WHERE {condition} AND created_at < to_timestamp(%(cutoff)s)""",
            {**params, "cutoff": float(cutoff)}).fetchall()
    failed = [reason for state, reason in rows if state == "FAILED"]
    return {"admitted": len(rows), "failed": len(failed), "failed_reasons": sorted(set(map(str, failed))),
            "until": until}


def recovery_times(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recovery time of each fault of the run (seconds from the fault to the first commit through
    the primary Service), for the journal and the report; ``recorded`` counts them."""
    run_marks = marks.read(resolve(configuration))
    times = {key.partition(":")[2]: value for key, value in run_marks.items() if key.startswith("recovered:")}
    return {"recorded": len(times), "seconds": times, "max_seconds": max(times.values(), default=None)}
