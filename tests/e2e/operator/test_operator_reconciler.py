"""The operator's periodic chain reconciler, in a real `xorj operator` process: started by its settings,
it walks the local chain, records a stolen-key transaction once, and says so on /metrics; the RPC's
API key never reaches a log line or a metric. Without the setting it is off and says that too."""

from __future__ import annotations

import urllib.request
import uuid

import pytest

from tests.integration.executor.harness import Scenario, admit
from tests.integration.reconciler.helpers import send, signed_transfer, vault_key, wait_finalized
from tests.polling import wait_for
from xorj.ledger import Ledger

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.chain]

SECRET = "rpc-pr0vider-k3y-for-the-reconciler"


def test_operator_reconciles_the_chain_and_exports_metrics(kube, operators, ledger: Ledger, local_chain) -> None:
    vault = local_chain.take_vault()
    scenario = Scenario(strategy=f"{kube.namespace}/s-{uuid.uuid4().hex[:8]}", vault=vault,
                        keypair_file=str(local_chain.vaults[vault]), input_mint=local_chain.mints["USDC"],
                        output_mint=local_chain.mints["SOL"])
    admit(ledger, scenario, 1, 1_000_000)
    url = local_chain.rpc_url
    stolen = send(url, signed_transfer(url, vault_key(local_chain, vault)))
    wait_finalized(url, [stolen])

    op = operators(extra_env={"XORJ_OPERATOR_RECONCILE_RPC_URL": f"{url}?api-key={SECRET}",
                              "XORJ_OPERATOR_RECONCILE_INTERVAL_SECONDS": "0.5"})
    wait_for(lambda: op.metric("xorj_reconcile_runs_total", 'result="ok"') >= 2, 60, "two reconciliation passes")
    assert op.metric("xorj_reconcile_enabled") == 1
    assert op.metric("xorj_reconcile_findings_total", 'class="unknown_transaction"') == 1  # once, not per pass
    assert op.metric("xorj_reconcile_open_findings", 'class="unknown_transaction"') == 1
    assert op.metric("xorj_reconcile_last_success_timestamp_seconds") > 0
    exported = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).read().decode()
    assert SECRET not in exported
    log = op.log_text()
    assert stolen in log and "chain reconciliation finding" in log
    assert SECRET not in log


def test_operator_without_an_rpc_url_reports_the_reconciler_off(kube, operators) -> None:
    op = operators()
    assert op.metric("xorj_reconcile_enabled") == 0
    assert op.metric("xorj_reconcile_runs_total") == 0
    assert "chain reconciler off" in op.log_text()
