"""The HA ledger losing its primary (experiment ledger-primary-failover): the actions that take the
primary away and the probes that judge what followed.

Runs against any Patroni-managed ledger the target can reach with kubectl: the chart's own
(``ledger.mode=ha``; ``xorj dev up --ledger ha``), or one the chart does not manage
(``postgresql.enabled=false`` with ``ledger.existingSecret``; ``xorj dev up --ledger external-ha``
runs the chart's Patroni templates alone in another namespace as such a ledger). The probes read the
ledger through the same DSN as every other probe (``XORJ_CHAOS_LEDGER_DSN`` or the demo's), which
follows the primary Service.

Where the ledger's pods are (:class:`LedgerLocation`), each from the experiment's configuration, else
its ``XORJ_CHAOS_*`` environment variable, else the demo state's ``ledger_location`` (written by
``xorj dev up``), else the chart's own:

- ``ledger_namespace`` (``XORJ_CHAOS_LEDGER_NAMESPACE``): default the target's namespace;
- ``ledger_selector`` (``XORJ_CHAOS_LEDGER_SELECTOR``): the members' label selector, default
  ``app.kubernetes.io/component=ledger``;
- ``ledger_primary_label`` (``XORJ_CHAOS_LEDGER_PRIMARY_LABEL``): the label the HA manager puts on
  the primary, default Patroni's ``role=primary`` (CloudNativePG's: ``cnpg.io/instanceRole=primary``);
- ``ledger_container`` (``XORJ_CHAOS_LEDGER_CONTAINER``): the container running Postgres, default
  ``patroni`` (CloudNativePG's: ``postgres``);
- ``ledger_data_dir`` (``XORJ_CHAOS_LEDGER_DATA_DIR``): Postgres's data directory in it, default the
  chart's ``/var/lib/postgresql/data/pgdata`` (CloudNativePG's is the same);
- ``ledger_switchover`` (``XORJ_CHAOS_LEDGER_SWITCHOVER``): how a planned primary change is asked
  for, ``patroni-rest`` (the only method: see :data:`SWITCHOVERS`) with
  ``ledger_patroni_port`` (``XORJ_CHAOS_LEDGER_PATRONI_PORT``, default 8008).

Three faults, each on the primary: the member holding Patroni's leader lock (the Endpoints of the
primary Service, ``kubernetes.use_endpoints``, named after the members' scope label ``cluster-name``),
never merely the pod labelled primary:

- ``pod-delete``: the primary's pod deleted (its own grace period: Patroni stops Postgres and gives
  up the leader lock, the synchronous standby is promoted; the StatefulSet makes the pod again, which
  re-joins as a replica);
- ``postgres-kill``: SIGKILL to the primary's postmaster (``kill -9`` of the pid in
  ``postmaster.pid``, inside the pod): a crash, which Patroni answers by restarting Postgres (crash
  recovery) while it still holds the leader lock;
- ``switchover``: a planned primary change through Patroni's REST API (``POST /switchover`` from
  inside the primary's pod), to the synchronous standby.

The first two need only the location; the switchover is the HA manager's own API. CloudNativePG's
would be ``kubectl cnpg promote <cluster> <instance>`` (the plugin sets the Cluster's
``status.targetPrimary``, and the operator then shuts the primary down cleanly and promotes that
instance): it is not implemented, because CloudNativePG cannot be built or run on these machines (its
Go module is not served here), and a method never run is not offered. With CloudNativePG, run the
experiment's two other faults (the chart README, "External ledger").

Before each fault the ids of the trades the run has admitted so far are kept
(``admitted-before-<fault>.json`` in the run's state directory); :func:`admitted_trades_survived`
checks every one is still in the ledger afterwards. Each action waits until a transaction commits
through the primary Service again (``txid_current()``, which under strict synchronous replication
returns only once a standby has the commit) and returns the recovery time, which the journal keeps.

The hostile case (experiment ledger-forged-primary-label): :func:`forge_primary_label` labels a replica
``role=primary``, as anyone allowed to patch pods could, or as a member that lost the lock stays
labelled until its Patroni runs again, and keeps it so under load while it samples what the primary
Service routes to and whether any client session reached the replica.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from xorj.chaos import marks
from xorj.chaos.target import Target, resolve
from xorj.errors import EnvironmentSetupError, InvalidInputError

FAULTS = ("pod-delete", "postgres-kill", "switchover")
FORGED_LABEL = "forged-label"  # forge_primary_label's fault: nothing is taken away, a replica is made to look primary
LEDGER_SELECTOR = "app.kubernetes.io/component=ledger"
PRIMARY_LABEL = "role=primary"  # Patroni's (kubernetes.role_label: role, in templates/postgresql-ha.yaml)
CONTAINER = "patroni"
PGDATA = "/var/lib/postgresql/data/pgdata"  # the chart's data_dir (templates/postgresql-ha.yaml)
PATRONI_PORT = 8008
# Planned primary changes this module can ask for. CloudNativePG's (`kubectl cnpg promote`) is not
# here: it was never run (see the module's docstring).
SWITCHOVERS = ("patroni-rest",)
COMMIT_PROBE_SECONDS = 3.0  # a commit that takes longer is a ledger not yet recovered
# Patroni's REST API, from inside the pod (the image has Patroni's Python, not curl); argv: the
# leader's name, the API's port
SWITCHOVER_SCRIPT = ("import json, sys, urllib.request; "
                     "r = urllib.request.Request('http://127.0.0.1:%s/switchover' % sys.argv[2], method='POST', "
                     "data=json.dumps({'leader': sys.argv[1]}).encode(), headers={'Content-Type': 'application/json'}); "
                     "print(urllib.request.urlopen(r, timeout=30).read().decode())")

# configuration key -> environment variable; the demo state's ``ledger_location`` uses the same keys
LOCATION_KEYS: dict[str, str] = {
    "ledger_namespace": "XORJ_CHAOS_LEDGER_NAMESPACE",
    "ledger_selector": "XORJ_CHAOS_LEDGER_SELECTOR",
    "ledger_primary_label": "XORJ_CHAOS_LEDGER_PRIMARY_LABEL",
    "ledger_container": "XORJ_CHAOS_LEDGER_CONTAINER",
    "ledger_data_dir": "XORJ_CHAOS_LEDGER_DATA_DIR",
    "ledger_switchover": "XORJ_CHAOS_LEDGER_SWITCHOVER",
    "ledger_patroni_port": "XORJ_CHAOS_LEDGER_PATRONI_PORT",
}


@dataclass(frozen=True)
class LedgerLocation:
    """Where the HA ledger's members run and how to act on them (see the module's docstring)."""

    namespace: str
    selector: str = LEDGER_SELECTOR
    primary_label: str = PRIMARY_LABEL
    container: str = CONTAINER
    data_dir: str = PGDATA
    switchover: str = SWITCHOVERS[0]
    patroni_port: int = PATRONI_PORT

    @property
    def role_key(self) -> str:
        return self.primary_label.partition("=")[0]

    @property
    def primary_value(self) -> str:
        return self.primary_label.partition("=")[2]


def _invalid(key: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"ledger location: {key} ({LOCATION_KEYS[key]}) {message}")


def parse_location(values: dict[str, Any], default_namespace: str | None) -> LedgerLocation:
    """A :class:`LedgerLocation` from ``values`` (the keys of LOCATION_KEYS; missing or empty: the
    chart's defaults, and ``default_namespace``, the target's)."""
    given = {key: str(value).strip() for key, value in values.items() if value not in (None, "")}
    namespace = given.get("ledger_namespace") or default_namespace
    if not namespace:
        raise _invalid("ledger_namespace", "is not configured and the target has no namespace "
                       "(set XORJ_CHAOS_NAMESPACE or XORJ_CHAOS_ENV)")
    primary_label = given.get("ledger_primary_label", PRIMARY_LABEL)
    key, equals, value = primary_label.partition("=")
    if not (key and equals and value) or "," in primary_label:
        raise _invalid("ledger_primary_label", f"must be one label as key=value (Patroni: {PRIMARY_LABEL}, "
                       f"CloudNativePG: cnpg.io/instanceRole=primary), got {primary_label!r}")
    switchover = given.get("ledger_switchover", SWITCHOVERS[0])
    if switchover not in SWITCHOVERS:
        raise _invalid("ledger_switchover", f"must be one of {', '.join(SWITCHOVERS)}, got {switchover!r}: "
                       "CloudNativePG's switchover (kubectl cnpg promote) is not implemented, it cannot be run here; "
                       "run the pod-delete and postgres-kill faults only")
    port_text = given.get("ledger_patroni_port", str(PATRONI_PORT))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _invalid("ledger_patroni_port", f"must be a TCP port, got {port_text!r}")
    data_dir = given.get("ledger_data_dir", PGDATA)
    if not data_dir.startswith("/"):
        raise _invalid("ledger_data_dir", f"must be an absolute path in the container, got {data_dir!r}")
    return LedgerLocation(namespace=namespace, selector=given.get("ledger_selector", LEDGER_SELECTOR),
                          primary_label=primary_label, container=given.get("ledger_container", CONTAINER),
                          data_dir=data_dir, switchover=switchover, patroni_port=int(port_text))


def location(target: Target, configuration: dict[str, Any] | None = None) -> LedgerLocation:
    """The ledger's location for ``target``: each key from the experiment's configuration, else its
    environment variable, else the demo state's ``ledger_location``, else the default."""
    stored = target.state.get("ledger_location") or {}
    values: dict[str, Any] = {}
    for key, env in LOCATION_KEYS.items():
        value = (configuration or {}).get(key)
        if value in (None, ""):
            value = os.environ.get(env) or stored.get(key)
        values[key] = value
    return parse_location(values, target.namespace)


def _kubectl(target: Target, where: LedgerLocation, *args: str,
             timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    from xorj.devenv.toolchain import Toolchain

    command = [str(Toolchain().path("kubectl")), *(["--kubeconfig", target.kubeconfig] if target.kubeconfig else []),
               "-n", where.namespace, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def member_roles(pods: dict[str, Any], where: LedgerLocation) -> dict[str, str]:
    """Each member's pod name and its role label's value (primary, replica; '' while it has none),
    from ``kubectl get pods -o json``; pods being deleted are left out."""
    return {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get(where.role_key, "")
            for p in pods["items"] if not p["metadata"].get("deletionTimestamp")}


def ledger_members(target: Target, where: LedgerLocation) -> dict[str, str]:
    """Each ledger member's pod name and its role label (see member_roles)."""
    result = _kubectl(target, where, "get", "pods", "-l", where.selector, "-o", "json")
    if result.returncode != 0:
        raise EnvironmentSetupError(f"listing the ledger's pods ({where.selector} in {where.namespace}): "
                                    f"{result.stderr.strip()}")
    return member_roles(json.loads(result.stdout), where)


def _scope(target: Target, where: LedgerLocation) -> str:
    """Patroni's scope (the primary Service's name), from the members' scope label ``cluster-name``."""
    result = _kubectl(target, where, "get", "pods", "-l", where.selector, "-o",
                      "jsonpath={.items[*].metadata.labels.cluster-name}")
    scopes = set(result.stdout.split()) if result.returncode == 0 else set()
    if len(scopes) != 1:
        raise EnvironmentSetupError(f"expected the ledger's pods to carry one Patroni scope label cluster-name, found "
                                    f"{sorted(scopes) or 'none'} among {where.selector} in namespace {where.namespace} "
                                    f"(is the ledger a Patroni ledger there? see {', '.join(LOCATION_KEYS.values())})")
    return scopes.pop()


def leader_lock(target: Target, where: LedgerLocation, scope: str | None = None) -> tuple[str | None, list[str]]:
    """Patroni's leader lock: the member holding it (annotation ``leader`` of the Endpoints named after
    the scope) and the addresses it wrote there, the primary Service's endpoints."""
    result = _kubectl(target, where, "get", "endpoints", scope or _scope(target, where), "-o", "json")
    if result.returncode != 0:
        raise EnvironmentSetupError(f"reading Patroni's leader lock: {result.stderr.strip()}")
    endpoints = json.loads(result.stdout)
    leader = ((endpoints.get("metadata") or {}).get("annotations") or {}).get("leader") or None
    addresses = [a["ip"] for subset in endpoints.get("subsets") or [] for a in subset.get("addresses") or []]
    return leader, addresses


def service_addresses(target: Target, where: LedgerLocation, scope: str | None = None) -> list[str]:
    """What kube-proxy routes the primary Service to: the ready addresses of its EndpointSlices (mirrored
    from the leader lock's Endpoints by the controller-manager)."""
    result = _kubectl(target, where, "get", "endpointslices", "-l",
                      f"kubernetes.io/service-name={scope or _scope(target, where)}",
                      "-o", "json")
    if result.returncode != 0:
        raise EnvironmentSetupError(f"reading the primary Service's EndpointSlices: {result.stderr.strip()}")
    return sorted(address for item in json.loads(result.stdout)["items"] for endpoint in item.get("endpoints") or []
                  if (endpoint.get("conditions") or {}).get("ready") is not False
                  for address in endpoint.get("addresses") or [])


def primary_pod(target: Target, where: LedgerLocation) -> str:
    """The member holding Patroni's leader lock (not the pod labelled primary: a label is forgeable)."""
    leader, _ = leader_lock(target, where)
    members = ledger_members(target, where)
    if not leader or leader not in members:
        raise EnvironmentSetupError(f"no ledger member in namespace {where.namespace} holds Patroni's leader lock "
                                    f"(lock: {leader or 'none'}; members: {members})")
    return leader


def fault_command(fault: str, primary: str, where: LedgerLocation) -> list[str]:
    """The kubectl arguments (after ``-n namespace``) that inject ``fault`` on ``primary``."""
    if fault == "pod-delete":
        return ["delete", "pod", primary, "--wait=false"]
    if fault == "postgres-kill":
        pid_file = shlex.quote(f"{where.data_dir.rstrip('/')}/postmaster.pid")
        return ["exec", primary, "-c", where.container, "--", "sh", "-c", f"kill -9 \"$(head -n 1 {pid_file})\""]
    # the one method of SWITCHOVERS (parse_location refuses others)
    return ["exec", primary, "-c", where.container, "--", "python3", "-c", SWITCHOVER_SCRIPT, primary,
            str(where.patroni_port)]


def _run_trade_ids(target: Target) -> list[int]:
    from xorj.chaos.probes import connect_ledger, run_filter

    condition, params = run_filter(target)
    with connect_ledger(target.ledger_dsn) as conn:
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


def terminate_on_primary(target: Target, application_name: str | None = None,
                         configuration: dict[str, Any] | None = None) -> int:
    """pg_terminate_backend, as the superuser inside the primary's pod (its socket, peer login), on every
    client session of the ledger database, or only on those with ``application_name``; returns how many
    were ended."""
    dbname = str(conninfo_to_dict(target.ledger_dsn).get("dbname") or "")
    if not re.fullmatch(r"[A-Za-z0-9_]+", dbname) or (application_name is not None
                                                       and not re.fullmatch(r"[A-Za-z0-9_.-]+", application_name)):
        raise InvalidInputError(f"terminate_on_primary: unexpected database {dbname!r} or application name "
                                f"{application_name!r} (letters, digits, _ . - only)")
    only = "" if application_name is None else f"AND application_name = '{application_name}'"
    where = location(target, configuration)
    result = _psql(target, where, primary_pod(target, where), f"host=/var/run/postgresql dbname={dbname} user=postgres",
                   "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                   f"WHERE datname = current_database() AND backend_type = 'client backend' "
                   f"AND pid <> pg_backend_pid() {only}")
    if result.returncode != 0:
        raise EnvironmentSetupError(f"ending sessions on the primary: {(result.stderr or result.stdout).strip()[-500:]}")
    return int(result.stdout.strip() or 0)



def _inject(target: Target, where: LedgerLocation, fault: str, primary: str) -> str:
    result = _kubectl(target, where, *fault_command(fault, primary, where))
    if result.returncode != 0:
        raise EnvironmentSetupError(f"{fault} on {where.namespace}/{primary}: "
                                    f"{(result.stderr or result.stdout).strip()[-1000:]}")
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
    where = location(target, configuration)
    old = primary_pod(target, where)
    admitted = _run_trade_ids(target)
    (target.state_dir / f"admitted-before-{fault}.json").write_text(json.dumps(admitted))
    marks.fault(target, "LEDGER_UNAVAILABLE")
    marks.write(target, f"fault:{fault}")
    started_wall, started = time.time(), time.monotonic()
    answer = _inject(target, where, fault, old)
    # Patroni takes a moment to act: a commit that still lands on the old primary before it goes is
    # not a recovery. Pod deletion and switchover end with another member labelled primary; a killed
    # postmaster is restarted (or replaced) by Patroni, and the first commit after the kill counts.
    deadline = started + float(recovery_timeout_seconds)
    left_old = fault == "postgres-kill"
    while True:
        now = time.monotonic()
        if now > deadline:
            raise EnvironmentSetupError(f"{fault}: the ledger took no commit through its primary Service within "
                                        f"{recovery_timeout_seconds:.0f}s (members: {ledger_members(target, where)})")
        if not left_old:
            try:
                left_old = primary_pod(target, where) != old
            except EnvironmentSetupError:
                left_old = False  # no member holds the lock: mid-change
        if left_old and commits(target.ledger_dsn):
            break
        time.sleep(0.2)
    recovery = round(time.monotonic() - started, 2)
    new = primary_pod(target, where)
    marks.write(target, f"recovered:{fault}", recovery)
    marks.write(target, "cleared")
    return {"fault": fault, "old_primary": old, "new_primary": new, "recovery_seconds": recovery,
            "ledger_namespace": where.namespace,
            "fault_at": round(started_wall, 3), "admitted_before": len(admitted), "answer": answer}


# -- probes -----------------------------------------------------------------------------------------

def admitted_trades_survived(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every trade the run had admitted before each fault is still in the ledger (a commit the executor
    or operator saw survives the primary's loss). ``missing`` counts those gone."""
    target = resolve(configuration)
    present = set(_run_trade_ids(target))
    checked, missing = {}, {}
    for fault in (*FAULTS, FORGED_LABEL):
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
    from xorj.chaos.probes import connect_ledger, run_filter

    target = resolve(configuration)
    cutoff = marks.read(target).get(until) or time.time()
    condition, params = run_filter(target)
    with connect_ledger(target.ledger_dsn) as conn:
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


# -- the hostile case: a forged role=primary label ----------------------------------------------------

# Client sessions on a member, other than Patroni's own (the superuser through the socket); replication
# connections are walsenders, not client backends.
CLIENT_SESSIONS_SQL = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                       "AND usename <> 'postgres' AND pid <> pg_backend_pid()")
# What a ledger client's libpq does with target_session_attrs=read-write, run inside a member (its
# socket, the superuser's peer login): refused on a member that does not take writes.
READ_WRITE_CONNINFO = "host=/var/run/postgresql dbname=postgres user=postgres connect_timeout=5 target_session_attrs=read-write"
# libpq's refusal of a member that does not take writes (server version and libpq decide which)
_READ_ONLY_REFUSAL = re.compile(r"read-only|hot standby", re.I)
PATRONI_RELABEL_SECONDS = 45.0  # loop_wait (10 s) a few times over: Patroni puts its own label back


def _psql(target: Target, where: LedgerLocation, pod: str, conninfo: str, sql: str) -> subprocess.CompletedProcess[str]:
    return _kubectl(target, where, "exec", pod, "-c", where.container, "--", "psql", conninfo, "-XAtc", sql,
                    timeout=30.0)


def _pod_ip(target: Target, where: LedgerLocation, pod: str) -> str:
    result = _kubectl(target, where, "get", "pod", pod, "-o", "jsonpath={.status.podIP}")
    if result.returncode != 0 or not result.stdout.strip():
        raise EnvironmentSetupError(f"pod {pod} has no address: {result.stderr.strip()}")
    return result.stdout.strip()


def judge_routes(samples: list[dict[str, Any]], leader_ip: str, forged_ip: str) -> dict[str, int]:
    """Count the samples of the primary Service's addresses (``service``) and the leader lock's
    (``lock``) that show a route to anything but the leader: the forged member behind the Service, or
    the Service not exactly the lock's one address. Pure."""
    return {
        "samples": len(samples),
        "forged_member_routed": sum(1 for s in samples if forged_ip in s["service"]),
        "not_leader_only": sum(1 for s in samples if s["service"] != [leader_ip] or s["lock"] != [leader_ip]),
        "replica_sessions": max((s["replica_sessions"] for s in samples), default=0),
    }


def forge_primary_label(hold_seconds: float = 20.0, sample_seconds: float = 0.5, min_samples: int = 5,
                        configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Label a replica ``role=primary`` and keep it so for ``hold_seconds`` (times the run's
    ``trade_scale``), and longer (up to four times as long) until ``min_samples`` samples are taken: a
    sample is a few kubectl calls, which a busy machine stretches to seconds each. Put the label back
    each time Patroni corrects it (an attacker with pod patch rights does). Meanwhile sample what the primary Service routes to (its EndpointSlices), the leader lock,
    and the client sessions on the replica. Then check that the replica refuses a read-write session
    (target_session_attrs=read-write, what every HA ledger DSN carries) while the leader takes one, and
    wait for Patroni to put the replica's own label back. Fails if the Service ever routed to the
    replica or to anything but the leader, a client session reached the replica, or the replica did
    not refuse the read-write session."""
    from xorj.chaos.target import trade_scale

    target = resolve(configuration)
    where = location(target, configuration)
    scope = _scope(target, where)
    leader, lock = leader_lock(target, where, scope)
    members = ledger_members(target, where)
    replicas = sorted(name for name, role in members.items() if name != leader and role == "replica")
    if not leader or not replicas:
        raise EnvironmentSetupError(f"forge_primary_label needs a leader and a replica (lock: {leader}; members: {members})")
    replica = replicas[0]
    leader_ip, replica_ip = _pod_ip(target, where, leader), _pod_ip(target, where, replica)
    admitted = _run_trade_ids(target)
    (target.state_dir / f"admitted-before-{FORGED_LABEL}.json").write_text(json.dumps(admitted))
    marks.write(target, f"fault:{FORGED_LABEL}")
    held = float(hold_seconds) * trade_scale(configuration)
    started_forging = time.monotonic()
    deadline, longest = started_forging + held, started_forging + 4 * held
    samples: list[dict[str, Any]] = []
    forged = 0
    while time.monotonic() < deadline or (len(samples) < int(min_samples) and time.monotonic() < longest):
        if ledger_members(target, where).get(replica) != where.primary_value:
            result = _kubectl(target, where, "label", "pod", replica, where.primary_label, "--overwrite")
            if result.returncode != 0:
                raise EnvironmentSetupError(f"labelling {replica} {where.primary_label}: {result.stderr.strip()}")
            forged += 1
        sessions = _psql(target, where, replica, "host=/var/run/postgresql dbname=postgres user=postgres", CLIENT_SESSIONS_SQL)
        if sessions.returncode != 0:
            raise EnvironmentSetupError(f"counting client sessions on {replica}: {sessions.stderr.strip()[-500:]}")
        samples.append({"service": service_addresses(target, where, scope),
                        "lock": sorted(leader_lock(target, where, scope)[1]),
                        "replica_sessions": int(sessions.stdout.strip() or 0)})
        time.sleep(float(sample_seconds))
    held_for = time.monotonic() - started_forging
    refused = _psql(target, where, replica, READ_WRITE_CONNINFO, "SELECT 1")
    accepted = _psql(target, where, leader, READ_WRITE_CONNINFO, "SELECT 1")
    # The forging stops here: Patroni's next loop on the replica (touch_member) puts role=replica back.
    started = time.monotonic()
    restored_after = None
    while time.monotonic() - started < PATRONI_RELABEL_SECONDS:
        if ledger_members(target, where).get(replica) == "replica":
            restored_after = round(time.monotonic() - started, 1)
            break
        time.sleep(1.0)
    if restored_after is None:  # not Patroni's: leave the cluster as it was, and say so
        _kubectl(target, where, "label", "pod", replica, f"{where.role_key}=replica", "--overwrite")
    marks.write(target, "cleared")
    judged = judge_routes(samples, leader_ip, replica_ip)
    outcome = {**judged, "leader": leader, "forged_member": replica, "held_s": round(held_for, 1), "labels_forged": forged,
               "leader_after": leader_lock(target, where, scope)[0], "initial_lock": sorted(lock),
               "replica_refused_read_write": refused.returncode != 0,
               "refusal": (refused.stderr or refused.stdout).strip()[-300:],
               "leader_accepted_read_write": accepted.returncode == 0,
               "patroni_restored_label_after_s": restored_after, "admitted_before": len(admitted)}
    problems = [what for what, bad in (
        (f"the primary Service routed to the forged member in {judged['forged_member_routed']} samples",
         judged["forged_member_routed"]),
        (f"the primary Service was not exactly the leader's address in {judged['not_leader_only']} samples",
         judged["not_leader_only"]),
        (f"{judged['replica_sessions']} client sessions reached the replica", judged["replica_sessions"]),
        ("the replica accepted a read-write session", not outcome["replica_refused_read_write"]),
        (f"the replica refused the read-write session for another reason: {outcome['refusal']}",
         outcome["replica_refused_read_write"] and not _READ_ONLY_REFUSAL.search(outcome["refusal"])),
        (f"the leader refused a read-write session: {(accepted.stderr or '').strip()[-300:]}",
         not outcome["leader_accepted_read_write"]),
        ("no sample was taken", not samples)) if bad]
    if problems:
        raise EnvironmentSetupError(f"forged role=primary on {replica}: {'; '.join(problems)} ({outcome})")
    return outcome
