"""Where ledger-primary-failover finds the HA ledger's members (xorj.chaos.ledger_failover's location):
the chart's labels in the target's namespace by default, or any namespace, selector, primary label,
container and data directory from the experiment's configuration, the environment or the demo state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from xorj.chaos import ledger_failover
from xorj.chaos.ledger_failover import LOCATION_KEYS, LedgerLocation, fault_command, location, parse_location
from xorj.chaos.target import Target
from xorj.errors import EnvironmentSetupError, InvalidInputError

EXPERIMENT = Path(__file__).resolve().parents[3] / "experiments" / "ledger-primary-failover.json"
CNPG = {"ledger_namespace": "databases", "ledger_selector": "cnpg.io/cluster=xorj-ledger",
        "ledger_primary_label": "cnpg.io/instanceRole=primary", "ledger_container": "postgres"}


@pytest.fixture(autouse=True)
def _no_location_env(monkeypatch):
    for env in LOCATION_KEYS.values():
        monkeypatch.delenv(env, raising=False)


def _target(state: dict | None = None, namespace: str | None = "xorj") -> Target:
    return Target(ledger_dsn="postgresql://unused", namespace=namespace, state=state or {})


def test_the_defaults_are_the_charts_patroni_ledger_in_the_targets_namespace():
    assert location(_target()) == LedgerLocation(
        namespace="xorj", selector="app.kubernetes.io/component=ledger", primary_label="role=primary",
        container="patroni", data_dir="/var/lib/postgresql/data/pgdata", switchover="patroni-rest", patroni_port=8008)


def test_configuration_then_environment_then_demo_state(monkeypatch):
    state = {"ledger_location": {"ledger_namespace": "from-state", "ledger_selector": "a=state",
                                 "ledger_container": "state-container"}}
    monkeypatch.setenv("XORJ_CHAOS_LEDGER_SELECTOR", "a=env")
    monkeypatch.setenv("XORJ_CHAOS_LEDGER_CONTAINER", "env-container")
    # the experiment's configuration block resolves an unset variable to "": that is no value
    where = location(_target(state), {"ledger_container": "configured", "ledger_namespace": ""})
    assert (where.namespace, where.selector, where.container) == ("from-state", "a=env", "configured")


def test_a_cloudnativepg_cluster_is_located_by_its_own_labels():
    where = location(_target(), CNPG)
    assert (where.role_key, where.primary_value) == ("cnpg.io/instanceRole", "primary")
    pods = {"items": [
        {"metadata": {"name": "xorj-ledger-1", "labels": {"cnpg.io/instanceRole": "primary", "role": "primary"}}},
        {"metadata": {"name": "xorj-ledger-2", "labels": {"cnpg.io/instanceRole": "replica"}}},
        {"metadata": {"name": "xorj-ledger-3", "labels": {}}},
        {"metadata": {"name": "xorj-ledger-4", "labels": {"cnpg.io/instanceRole": "primary"},
                      "deletionTimestamp": "2026-12-02T11:00:00Z"}},  # going: not a member any more
    ]}
    assert ledger_failover.member_roles(pods, where) == {"xorj-ledger-1": "primary", "xorj-ledger-2": "replica",
                                                         "xorj-ledger-3": ""}
    # the crash and the pod loss need only the location: its container and data directory
    kill = fault_command("postgres-kill", "xorj-ledger-1", where)
    assert kill[:6] == ["exec", "xorj-ledger-1", "-c", "postgres", "--", "sh"]
    assert kill[-1] == 'kill -9 "$(head -n 1 /var/lib/postgresql/data/pgdata/postmaster.pid)"'
    assert fault_command("pod-delete", "xorj-ledger-1", where) == ["delete", "pod", "xorj-ledger-1", "--wait=false"]


def test_the_switchover_asks_patroni_on_the_configured_port():
    where = parse_location({"ledger_patroni_port": "8009", "ledger_data_dir": "/data/pg"}, "ns")
    command = fault_command("switchover", "ledger-postgresql-1", where)
    assert command[:5] == ["exec", "ledger-postgresql-1", "-c", "patroni", "--"]
    assert command[-2:] == ["ledger-postgresql-1", "8009"]
    assert "%s/switchover' % sys.argv[2]" in command[-3]
    assert fault_command("postgres-kill", "p", where)[-1] == 'kill -9 "$(head -n 1 /data/pg/postmaster.pid)"'


@pytest.mark.parametrize(("values", "named"), [
    ({"ledger_primary_label": "primary"}, "ledger_primary_label (XORJ_CHAOS_LEDGER_PRIMARY_LABEL)"),
    ({"ledger_primary_label": "role=primary,x=y"}, "ledger_primary_label"),
    ({"ledger_switchover": "cnpg-promote"}, "ledger_switchover (XORJ_CHAOS_LEDGER_SWITCHOVER)"),
    ({"ledger_patroni_port": "http"}, "ledger_patroni_port"),
    ({"ledger_data_dir": "pgdata"}, "ledger_data_dir"),
])
def test_bad_settings_are_refused_naming_the_setting_and_its_variable(values, named):
    with pytest.raises(InvalidInputError, match=named.replace("(", r"\(").replace(")", r"\)")):
        parse_location(values, "ns")


def test_cloudnativepgs_switchover_is_refused_as_not_implemented_rather_than_pretended():
    with pytest.raises(InvalidInputError, match="CloudNativePG.*not implemented.*pod-delete and postgres-kill"):
        parse_location({**CNPG, "ledger_switchover": "cnpg-promote"}, "ns")


def test_no_namespace_anywhere_is_refused():
    with pytest.raises(InvalidInputError, match="ledger_namespace.*XORJ_CHAOS_NAMESPACE"):
        location(_target(namespace=None))


def test_the_action_looks_for_the_leader_lock_in_the_ledgers_namespace_and_names_it_when_there_is_none(monkeypatch):
    calls: list[tuple[str, ...]] = []

    def kubectl(target, where, *args, timeout=60.0):
        calls.append((where.namespace, *args))
        return subprocess.CompletedProcess(args, 0, "", "")  # no member carries Patroni's scope label

    monkeypatch.setattr(ledger_failover, "_kubectl", kubectl)
    where = location(_target({"ledger_location": {"ledger_namespace": "xorj-ledger",
                                                  "ledger_selector": "app.kubernetes.io/instance=ledger"}}))
    with pytest.raises(EnvironmentSetupError, match="scope label cluster-name, found none among "
                                                    "app.kubernetes.io/instance=ledger in namespace xorj-ledger"):
        ledger_failover.primary_pod(_target(), where)
    assert calls == [("xorj-ledger", "get", "pods", "-l", "app.kubernetes.io/instance=ledger", "-o",
                      "jsonpath={.items[*].metadata.labels.cluster-name}")]


def test_the_experiment_declares_every_location_setting_from_the_environment():
    configuration = json.loads(EXPERIMENT.read_text())["configuration"]
    declared = {key: value["key"] for key, value in configuration.items() if key in LOCATION_KEYS}
    assert declared == LOCATION_KEYS
    assert all(configuration[key]["default"] == "" for key in LOCATION_KEYS)  # "": the chart's default


@pytest.mark.parametrize(("mode", "ha"), [("ha", True), ("external-ha", True), ("single", False)])
def test_a_demo_of_either_ha_ledger_mode_runs_the_failover_experiment(tmp_path, monkeypatch, mode, ha):
    from xorj.chaos.command import _ha_ledger_target

    monkeypatch.delenv("XORJ_CHAOS_LEDGER_HA", raising=False)
    (tmp_path / "demo.json").write_text(json.dumps({"ledger_mode": mode}))
    assert _ha_ledger_target(tmp_path / "demo.json") is ha
