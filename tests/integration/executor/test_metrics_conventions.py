"""The executor's live /metrics follow Prometheus' conventions, as `promtool check metrics` judges
them (`_total` counters, `_seconds` base units, no reserved suffixes, help text), after real trades
went through the local chain so that every family has samples."""

from __future__ import annotations

import random

import httpx
import pytest

from tests.fixtures.promtool import metric_lint_problems
from tests.integration.executor.harness import admit, executor_env, executors, wait_terminal

pytestmark = [pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]


def test_live_executor_metrics_pass_promtool_lint(local_chain, ledger, ledger_dsn, scenario, tmp_path):
    rng = random.Random(11)
    ids = [i for _ in range(2) for i in admit(ledger, scenario, 1, 1_500_000 + rng.randrange(1, 10**6))]
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, lease_seconds=3)
    with executors(1, env, tmp_path, "linted") as (proc,):
        wait_terminal(ledger, ids, 90)
        exposition = httpx.get(f"http://127.0.0.1:{proc.port()}/metrics", timeout=5).text
        proc.sigterm(30)

    assert "xorj_executor_trades_finished_total{" in exposition  # the lint saw real samples
    assert "xorj_executor_claim_to_final_seconds_bucket{" in exposition
    assert metric_lint_problems(exposition) == ""
