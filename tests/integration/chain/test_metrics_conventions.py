"""The local chain's live /metrics (what the demo's Prometheus scrapes as job `xorj-chain`) follow
Prometheus' conventions, as `promtool check metrics` judges them, once it has served RPC and swap API
requests so that its families have samples."""

from __future__ import annotations

import pytest

from tests.fixtures.promtool import metric_lint_problems
from tests.integration.chain.conftest import ChainClient

pytestmark = pytest.mark.chain


async def test_live_chain_metrics_pass_promtool_lint(client: ChainClient) -> None:
    await client.result("getLatestBlockhash", {"commitment": "confirmed"})
    await client.quote("USDC", "SOL", 10**6)
    answer = await client.http.get(client.chain.rpc_url.rstrip("/") + "/metrics")
    assert answer.status_code == 200
    exposition = answer.text

    assert "getLatestBlockhash" in exposition  # the lint saw real, labelled samples
    assert metric_lint_problems(exposition) == ""
