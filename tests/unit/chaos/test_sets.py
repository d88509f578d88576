"""Chaos sets: `ci` stays the experiments tagged `ci` as written; `full` is every experiment runnable on
the target, each scaled to at least 500 trades, and a plan below that is refused; the scale reaches
the activities through the experiment's `trade_scale` configuration value."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from xorj.chaos import actions, sets
from xorj.chaos.command import chaos
from xorj.chaos.target import trade_scale
from xorj.errors import InvalidInputError

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
DOCS = {p.stem: json.loads(p.read_text()) for p in sorted(EXPERIMENTS.glob("*.json"))}
FULL, CI = sets.get_set("full"), sets.get_set("ci")
LOCAL_ONLY = {"executors-killed-mid-trade", "ledger-partition"}  # need the local env's processes / TCP proxy


def _tagged(tag: str) -> set[str]:
    return {name for name, doc in DOCS.items() if tag in doc["tags"]}


def test_ci_set_is_the_ci_tagged_experiments_as_written():
    names = sets.select(CI, DOCS, cluster_target=False)
    assert set(names) == _tagged("ci")
    planned = sets.plan(CI, names, DOCS)
    assert all(p.trade_scale == 1.0 and p.trades == p.declared_trades for p in planned)


def test_full_set_on_the_local_env_runs_every_local_experiment_with_500_trades_or_more():
    names = sets.select(FULL, DOCS, cluster_target=False)
    assert set(names) == set(DOCS) - _tagged("cluster")
    assert {"rpc-status-lag", "hostile-swap-api"} <= set(names)
    planned = sets.plan(FULL, names, DOCS)
    assert {p.name for p in planned} == set(names)
    assert all(p.trades >= 500 and p.trade_scale >= 1 for p in planned)
    lag = next(p for p in planned if p.name == "rpc-status-lag")
    assert (lag.declared_trades, lag.trades) == (12, 500)


def test_full_set_on_a_cluster_includes_the_api_server_restart_and_leaves_out_local_only_ones():
    names = set(sets.select(FULL, DOCS, cluster_target=True))
    # every cluster experiment but the one that needs the HA ledger (see the test below)
    assert _tagged("cluster") - _tagged("ledger-ha") <= names
    assert "kube-apiserver-restarted" in names
    assert not names & LOCAL_ONLY
    assert all(p.trades >= 500 for p in sets.plan(FULL, sorted(names), DOCS))


@pytest.mark.parametrize("trades", [499, 10, 0])
def test_full_set_below_500_trades_is_an_error(trades):
    with pytest.raises(InvalidInputError, match="--trades"):
        sets.plan(FULL, sets.select(FULL, DOCS, cluster_target=False), DOCS, trades=trades)


def test_full_set_with_more_trades_scales_further():
    planned = sets.plan(FULL, ["rpc-timeouts"], DOCS, trades=1000)
    assert (planned[0].trade_scale, planned[0].trades) == (20.0, 1000)


def test_an_experiment_without_a_trade_count_cannot_be_planned():
    doc = copy.deepcopy(DOCS["rpc-timeouts"])
    for probe in doc["steady-state-hypothesis"]["probes"]:
        probe.get("provider", {}).get("arguments", {}).pop("min_trades", None)
    with pytest.raises(InvalidInputError, match="experiment broken: .*min_trades"):
        sets.plan(FULL, ["broken"], {"broken": doc})


def test_a_plan_that_would_give_fewer_than_500_trades_is_refused():
    tiny = sets.ChaosSet("tiny", "min 500 but scaled from a 1-trade target", every_runnable=True, min_trades=500)
    with pytest.raises(InvalidInputError, match="at least 500"):
        sets.plan(tiny, ["rpc-timeouts"], DOCS, trades=50)


# the load functions and their default counts; a lead swap (the watcher experiments) is one trade per
# following strategy, and the local chaos environment has one
LOAD_FUNCTIONS = {"load": 30, "lead_swaps": 40}


def _loads(doc: dict) -> list[int]:
    return [a["provider"]["arguments"].get("count", LOAD_FUNCTIONS[a["provider"]["func"]]) for a in doc["method"]
            if a["provider"].get("func") in LOAD_FUNCTIONS]


@pytest.mark.parametrize("name", sorted(DOCS))
def test_what_the_scaled_loads_submit_covers_the_planned_trades(name):
    """The probe waits for max(min_trades, loaded): loads that submit less would fail every run, so
    the files' loads must add up to at least their declared count, scaled too."""
    doc = DOCS[name]
    [planned] = sets.plan(FULL, [name], DOCS)
    assert sum(_loads(doc)) >= planned.declared_trades
    assert sum(sets.scaled(c, planned.trade_scale) for c in _loads(doc)) >= planned.trades >= 500


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_experiment_reads_its_trade_scale_from_the_environment(name):
    entry = DOCS[name]["configuration"][sets.TRADE_SCALE_KEY]
    assert entry == {"type": "env", "key": sets.TRADE_SCALE_ENV, "default": "1", "env_var_type": "float"}


def test_scaled_counts_round_up_and_never_shrink():
    assert sets.scaled(12, 41.666666666666664) == 500
    assert sets.scaled(70, 500 / 75) + sets.scaled(5, 500 / 75) >= 500
    assert sets.scaled(5, 1.0) == 5
    assert sets.scaled(3, 0.5) == 3


@pytest.mark.parametrize("value", ["0.5", "0", "-2", "abc", "nan", "inf", [2]])
def test_a_bad_trade_scale_is_named(value):
    with pytest.raises(InvalidInputError, match=r"trade_scale \(XORJ_CHAOS_TRADE_SCALE\)"):
        sets.parse_trade_scale(value)


def test_trade_scale_from_configuration_then_environment(monkeypatch):
    monkeypatch.delenv(sets.TRADE_SCALE_ENV, raising=False)
    assert trade_scale({}) == 1.0
    monkeypatch.setenv(sets.TRADE_SCALE_ENV, "3")
    assert trade_scale(None) == 3.0
    assert trade_scale({"trade_scale": 2.5}) == 2.5


def test_hold_keeps_the_fault_window_for_seconds_times_the_scale():
    started = time.monotonic()
    held = actions.hold(0.2, configuration={"trade_scale": 2.0})
    assert held == {"held_s": 0.4}
    assert time.monotonic() - started >= 0.4


def test_cli_refuses_a_full_run_below_500_trades_before_starting_anything(tmp_path):
    result = CliRunner().invoke(chaos, ["run", "--set", "full", "--trades", "100", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--trades" in result.output and "at least 500" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_refuses_all_together_with_a_set(tmp_path):
    result = CliRunner().invoke(chaos, ["run", "--all", "--set", "full", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--all and --set" in result.output


def test_cli_names_unknown_sets(tmp_path):
    result = CliRunner().invoke(chaos, ["run", "--set", "huge", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "huge" in result.output


def test_every_fault_window_hold_is_a_method_action_with_seconds():
    holds = [(name, a) for name, doc in DOCS.items() for a in doc["method"] if a["provider"].get("func") == "hold"]
    assert {name for name, _ in holds} >= {"rpc-timeouts", "answer-lost-after-processing", "rpc-recovery",
                                           "ledger-partition", "ledger-partition-networkpolicy"}
    assert all(math.isfinite(a["provider"]["arguments"]["seconds"]) for _, a in holds)


def test_the_ci_set_runs_an_experiment_that_declares_no_trade_count_as_written():
    doc = copy.deepcopy(DOCS["rpc-timeouts"])
    for probe in doc["steady-state-hypothesis"]["probes"]:
        probe.get("provider", {}).get("arguments", {}).pop("min_trades", None)
    [planned] = sets.plan(CI, ["custom"], {"custom": doc})
    assert (planned.trade_scale, planned.trades) == (1.0, 0)


def test_the_ledger_failover_experiment_runs_only_against_the_ha_ledger():
    """ledger-primary-failover needs the chart's Patroni ledger: `full` on an HA demo takes it (at 500
    trades or more); on the single-Postgres demo and the local environment it is left out."""
    assert sets.needing_ha_ledger(DOCS) == ["ledger-forged-primary-label", "ledger-primary-failover"]
    assert "ledger-primary-failover" not in sets.select(FULL, DOCS, cluster_target=True)
    assert "ledger-primary-failover" not in sets.select(FULL, DOCS, cluster_target=False, ha_ledger=True)
    on_ha = sets.select(FULL, DOCS, cluster_target=True, ha_ledger=True)
    assert "ledger-primary-failover" in on_ha
    (planned,) = sets.plan(FULL, ["ledger-primary-failover"], DOCS)
    assert (planned.declared_trades, planned.trades) == (60, 500)
