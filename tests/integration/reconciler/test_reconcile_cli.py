"""``xorj reconcile`` end to end (a real process, the real ledger and local chain): its output and
exit codes; and the operator's periodic reconciler publishing its metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY, generate_latest

from tests.integration.executor.harness import admit
from tests.integration.ledger.helpers import on_the_loop
from tests.integration.reconciler.helpers import send, signed_transfer, vault_key, wait_finalized
from xorj.domain.reconciliation import FindingClass
from xorj.ledger.chain_reconciliation import ReconciliationStore
from xorj.reconciler.periodic import reconcile_forever
from xorj.reconciler.service import ReconcileSettings

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000


def xorj_reconcile(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XORJ_LEDGER_DSN": dsn}
    env.pop("XORJ_RPC_URL", None)
    env.pop("XORJ_RECONCILE_RPC_URL", None)
    return subprocess.run([sys.executable, "-c", "from xorj.cli import main; main()", "reconcile", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_exit_codes_and_output(local_chain, ledger, ledger_dsn, fresh_scenario, faults_cleared):
    admit(ledger, fresh_scenario, 1, AMOUNT)
    url = local_chain.rpc_url
    clean = xorj_reconcile(ledger_dsn, "--rpc-url", url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "1 vault(s), 0 transaction(s) walked, 0 new finding(s), 0 open, 0 error(s)" in clean.stdout

    stolen = send(url, signed_transfer(url, vault_key(local_chain, fresh_scenario.vault)))
    wait_finalized(url, [stolen])
    found = xorj_reconcile(ledger_dsn, "--rpc-url", url, "--vault", fresh_scenario.vault)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "NEW UNKNOWN_TRANSACTION #" in found.stdout and f"signature={stolen}" in found.stdout
    assert "1 new finding(s), 1 open" in found.stdout

    # a re-run reports it again as open (not new), still exit 1; as JSON too
    rerun = xorj_reconcile(ledger_dsn, "--rpc-url", url, "--json")
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    document = json.loads(rerun.stdout)
    assert document["newFindings"] == 0
    assert [(f["class"], f["signature"], f["vault"]) for f in document["openFindings"]] == [
        ("UNKNOWN_TRANSACTION", stolen, fresh_scenario.vault)]

    # an RPC that answers nonsense: exit 2 with the reason, never 0
    local_chain.set_fault(kind="malformed", method="getSignaturesForAddress")
    broken = xorj_reconcile(ledger_dsn, "--rpc-url", url, "--vault", fresh_scenario.vault)
    assert broken.returncode == 3, broken.stdout + broken.stderr  # findings still open (1) | errors (2)
    assert f"ERROR MALFORMED_RESPONSE vault={fresh_scenario.vault}" in broken.stderr
    local_chain.reset_faults()

    # a person resolves it: the vault is clean again
    finding_id = document["openFindings"][0]["id"]
    refused = xorj_reconcile(ledger_dsn, "--resolve", str(finding_id))
    assert refused.returncode == 1 and "note" in refused.stderr
    resolved = xorj_reconcile(ledger_dsn, "--resolve", str(finding_id), "--note", "key rotated, funds moved")
    assert resolved.returncode == 0, resolved.stderr
    after = xorj_reconcile(ledger_dsn, "--rpc-url", url)
    assert after.returncode == 0 and "0 open" in after.stdout


def test_cli_refuses_to_run_without_its_inputs(ledger_dsn):
    no_rpc = xorj_reconcile(ledger_dsn)
    assert no_rpc.returncode != 0 and "--rpc-url" in no_rpc.stderr
    env = {k: v for k, v in os.environ.items() if k != "XORJ_LEDGER_DSN"}
    no_dsn = subprocess.run([sys.executable, "-c", "from xorj.cli import main; main()", "reconcile"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert no_dsn.returncode != 0 and "XORJ_LEDGER_DSN" in no_dsn.stderr


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_periodic_reconciler_updates_metrics(local_chain, ledger, ledger_dsn, fresh_scenario, caplog):
    admit(ledger, fresh_scenario, 1, AMOUNT)
    url = local_chain.rpc_url
    stolen = send(url, signed_transfer(url, vault_key(local_chain, fresh_scenario.vault)))
    wait_finalized(url, [stolen])
    label = FindingClass.UNKNOWN_TRANSACTION.metric_label
    found_before = sample("xorj_reconcile_findings_total", **{"class": label})
    ok_before = sample("xorj_reconcile_runs_total", result="ok")
    # the RPC URL carries an API key, as a provider's would: it must reach no metric and no log line
    secret = "k3y-0f-th3-rpc-pr0vider"
    keyed_url = f"{url}?api-key={secret}"

    async def run_two_passes() -> float:
        async with on_the_loop(ledger) as on_loop:
            task = asyncio.create_task(reconcile_forever(on_loop, keyed_url, 0.2, ReconcileSettings()))
            enabled = 0.0
            for _ in range(300):
                await asyncio.sleep(0.1)
                enabled = max(enabled, sample("xorj_reconcile_enabled"))
                if sample("xorj_reconcile_runs_total", result="ok") >= ok_before + 2:
                    break
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return enabled

    with caplog.at_level(logging.DEBUG):
        enabled = asyncio.run(run_two_passes())
    assert enabled == 1 and sample("xorj_reconcile_enabled") == 0
    assert sample("xorj_reconcile_runs_total", result="ok") >= ok_before + 2
    assert sample("xorj_reconcile_findings_total", **{"class": label}) == found_before + 1  # counted once
    open_now = ReconciliationStore(ledger).open_counts()[FindingClass.UNKNOWN_TRANSACTION]
    assert open_now == 1 and sample("xorj_reconcile_open_findings", **{"class": label}) == open_now
    assert sample("xorj_reconcile_last_success_timestamp_seconds") > 0
    assert sample("xorj_reconcile_last_run_timestamp_seconds") >= sample("xorj_reconcile_last_success_timestamp_seconds")
    assert secret not in generate_latest().decode()
    ours = [r for r in caplog.records if r.name.startswith("xorj")]
    assert not [r for r in ours if secret in r.getMessage() or secret in str(vars(r))]
    assert any(getattr(r, "signature", None) == stolen for r in ours)  # the finding was logged, by signature
