"""A set's `trade_scale` reaches the real activities: the load admits scale x count trades into a real
ledger, a replay re-delivers scale x count of them (creating none), and the terminal probe requires
scale x min_trades and waits scale x its time limit before judging."""

from __future__ import annotations

import json
import uuid

import pytest

from xorj.chaos import actions, probes

pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture
def scaled_target(ledger_dsn, local_chain, tmp_path):
    """An env.json naming the scratch ledger (no executor runs: admitted trades stay PENDING)."""
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"target": {
        "ledger_dsn": ledger_dsn, "chain_admin_url": local_chain.admin_url, "strategy": "scale-test",
        "vault": local_chain.take_vault(), "input_mint": local_chain.mints["USDC"],
        "output_mint": local_chain.mints["SOL"]}}))
    return {"xorj_env": str(env), "run_id": f"scale-{uuid.uuid4().hex[:8]}", "trade_scale": 2.5}


def test_load_replay_and_terminal_probe_scale_with_the_run(ledger, scaled_target):
    actions.begin_run(configuration=scaled_target)
    loaded = actions.load(count=4, spread_seconds=0.0, configuration=scaled_target)
    assert loaded["submitted"] == 10  # ceil(4 x 2.5)
    replayed = actions.replay_trades(count=2, configuration=scaled_target)
    assert replayed == {"replayed": 5, "created": 0}

    verdict = probes.all_trades_terminal_within(seconds=0.4, min_trades=6, configuration=scaled_target)
    assert verdict["trades"] == 10 and verdict["open"] == 10
    assert verdict["expected"] == 15, "min_trades 6 x 2.5 outweighs the 10 loaded"
    assert verdict["ok"] is False and verdict["waited_s"] >= 1.0, "the 0.4 s limit is waited 2.5 times"


def test_without_a_scale_the_experiment_runs_as_written(ledger, scaled_target):
    as_written = {**scaled_target, "trade_scale": None}
    actions.begin_run(configuration=as_written)
    assert actions.load(count=3, configuration=as_written)["submitted"] == 3
    verdict = probes.all_trades_terminal_within(seconds=0.2, min_trades=3, configuration=as_written)
    assert verdict["expected"] == 3 and verdict["waited_s"] < 1.0
