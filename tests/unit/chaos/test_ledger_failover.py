"""The forged role=primary label (experiment ledger-forged-primary-label): how the samples of what the
primary Service routes to are judged."""

from __future__ import annotations

import json

from xorj.chaos import ledger_failover
from xorj.devenv.repository import repository_root

LEADER, FORGED = "10.88.0.12", "10.88.0.13"


def _sample(service: list[str], lock: list[str] | None = None, sessions: int = 0) -> dict:
    return {"service": service, "lock": [LEADER] if lock is None else lock, "replica_sessions": sessions}


def test_a_service_that_stays_on_the_leader_passes() -> None:
    judged = ledger_failover.judge_routes([_sample([LEADER])] * 5, LEADER, FORGED)
    assert judged == {"samples": 5, "forged_member_routed": 0, "not_leader_only": 0, "replica_sessions": 0}


def test_the_forged_member_behind_the_service_is_counted() -> None:
    """What the Service selecting role=primary did: both labelled members behind it."""
    judged = ledger_failover.judge_routes([_sample([LEADER]), _sample(sorted([LEADER, FORGED]))], LEADER, FORGED)
    assert judged["forged_member_routed"] == 1 and judged["not_leader_only"] == 1


def test_no_endpoint_a_moved_lock_and_replica_sessions_are_counted() -> None:
    judged = ledger_failover.judge_routes([_sample([]), _sample([LEADER], lock=[FORGED]), _sample([LEADER], sessions=2)],
                                          LEADER, FORGED)
    assert (judged["not_leader_only"], judged["forged_member_routed"], judged["replica_sessions"]) == (2, 0, 2)


def test_the_experiment_forges_the_label_under_load_and_judges_from_the_chain_and_ledger() -> None:
    doc = json.loads((repository_root() / "experiments" / "ledger-forged-primary-label.json").read_text())
    assert "ledger-ha" in doc["tags"]
    method = [a["name"] for a in doc["method"]]
    assert method.index("load") < method.index("forge-primary-label")
    assert next(a for a in doc["method"] if a["name"] == "load").get("background") is True
    probes = {p["name"] for p in doc["steady-state-hypothesis"]["probes"]}
    assert {"no-duplicate-onchain-transactions", "all-trades-terminal", "admitted-trades-survived", "no-orphans",
            "no-failed-trade"} <= probes


def test_sessions_are_ended_as_the_superuser_on_the_primary_when_the_probe_login_may_not(monkeypatch) -> None:
    """The chart's HA ledger: the probes' login is the operator's, which may not signal the executors'
    logins; the partition's session ending runs as the superuser in the primary's pod."""
    import subprocess

    import pytest

    from xorj.chaos.target import Target
    from xorj.errors import InvalidInputError

    seen = {}

    def psql(target, where, pod, conninfo, sql):
        seen.update(namespace=where.namespace)
        seen.update(pod=pod, conninfo=conninfo, sql=sql)
        return subprocess.CompletedProcess([], 0, "3\n", "")

    monkeypatch.setattr(ledger_failover, "_psql", psql)
    monkeypatch.setattr(ledger_failover, "primary_pod", lambda target, where: "xorj-postgresql-1")
    target = Target(ledger_dsn="postgresql://xorj:pw@127.0.0.1:40123/xorj?target_session_attrs=read-write",
                    namespace="xorj")
    assert ledger_failover.terminate_on_primary(target, "xorj-executor") == 3
    assert seen["namespace"] == "xorj"  # the ledger's namespace: the target's unless configured
    assert seen["pod"] == "xorj-postgresql-1" and "dbname=xorj user=postgres" in seen["conninfo"]
    assert "application_name = 'xorj-executor'" in seen["sql"] and "pg_terminate_backend" in seen["sql"]
    with pytest.raises(InvalidInputError, match="application name"):
        ledger_failover.terminate_on_primary(target, "x'; DROP TABLE trades; --")
