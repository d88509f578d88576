"""Every experiment in experiments/ is valid for chaostoolkit, calls functions that exist with
arguments they take, judges custom resources and dicts with jsonpath tolerances, and has the
invariant probes in its hypothesis."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest
from chaoslib.experiment import ensure_experiment_is_valid

EXPERIMENTS = sorted((Path(__file__).resolve().parents[3] / "experiments").glob("*.json"))
INVARIANTS = {"no-duplicate-trades", "no-duplicate-onchain-transactions", "no-orphans", "all-trades-terminal"}
SCENARIOS = {
    "rpc-timeouts", "rpc-status-lag", "rpc-recovery", "answer-lost-after-processing", "ledger-connections-dropped", "ledger-partition",
    "slippage-failure-and-retry", "lead-trade-delivered-twice", "executors-killed-mid-trade",
    "executor-pods-terminated", "operator-killed", "kube-apiserver-restarted", "kill-switch", "circuit-breaker",
    "ledger-partition-networkpolicy", "hostile-swap-api", "watcher-killed", "lead-signal-delivered-twice",
    "ledger-primary-failover", "ledger-forged-primary-label",
}


def _activities(doc: dict) -> list[dict]:
    return doc["steady-state-hypothesis"]["probes"] + doc["method"] + doc.get("rollbacks", [])


def test_every_scenario_has_an_experiment():
    assert {p.stem for p in EXPERIMENTS} == SCENARIOS


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_is_valid_and_calls_real_functions(path):
    doc = json.loads(path.read_text())
    ensure_experiment_is_valid(doc)
    names = {p["name"] for p in doc["steady-state-hypothesis"]["probes"]}
    assert INVARIANTS <= names
    assert any(a["name"] == "load" for a in doc["method"]), "load runs during the faults"
    for activity in _activities(doc):
        provider = activity["provider"]
        function = getattr(importlib.import_module(provider["module"]), provider["func"])
        parameters = inspect.signature(function).parameters
        for argument in provider.get("arguments", {}):
            assert argument in parameters, f"{activity['name']}: {provider['func']} takes no {argument!r}"
    for probe in doc["steady-state-hypothesis"]["probes"]:
        provider = probe["provider"]
        function = getattr(importlib.import_module(provider["module"]), provider["func"])
        returns = inspect.signature(function).return_annotation
        if "dict" in str(returns):  # never an int/list tolerance on a dict (compared by its "status" key)
            assert probe["tolerance"]["type"] == "jsonpath", probe["name"]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_configuration_comes_from_the_environment(path):
    doc = json.loads(path.read_text())
    assert all(v["type"] == "env" for v in doc["configuration"].values())
    assert "XORJ_CHAOS_ENV" in {v["key"] for v in doc["configuration"].values()}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_an_experiment_that_asks_alertmanager_starts_with_its_alerts_quiet(path):
    """An alert an earlier experiment of the set raised stays active for its rule's fault window; the
    run must begin once it is gone, or its own fault cannot be told to have fired it."""
    method = json.loads(path.read_text())["method"]
    asked = {a["provider"]["arguments"]["alertname"] for a in method
             if a.get("provider", {}).get("func") == "alert_fired"}
    first = method[0]
    assert first["name"] == "begin-run"
    assert set(first["provider"].get("arguments", {}).get("quiet_alerts", [])) == asked
