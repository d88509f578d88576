"""The RPC's answers are not trusted: well-formed lies from the local chain (its ``answer`` fault serves
a crafted JSON-RPC result) make the vault's pass an error with a reason, never a clean pass, and the
cursor stays where it was."""

from __future__ import annotations

import copy

import psycopg
import pytest

from tests.integration.executor.harness import admit, rpc
from tests.integration.reconciler.helpers import one_pass, send, signed_transfer, vault_key, wait_finalized
from xorj.domain.reconciliation import FindingClass
from xorj.domain.trades import ReasonCode

pytestmark = [pytest.mark.chain, pytest.mark.postgres]


@pytest.fixture
def stolen_history(local_chain, ledger, fresh_scenario, faults_cleared):
    """Three finalized transfers signed with the vault's key outside the executor, and the real page."""
    admit(ledger, fresh_scenario, 1, 1_000_000)
    key = vault_key(local_chain, fresh_scenario.vault)
    sent = [send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key)) for _ in range(3)]
    wait_finalized(local_chain.rpc_url, sent)
    page = rpc(local_chain.rpc_url, "getSignaturesForAddress", [fresh_scenario.vault, {"commitment": "confirmed"}])
    assert [e["signature"] for e in page] == sent[::-1]
    return sent, page


def reversed_page(page):
    return page[::-1]


def repeated_entry(page):
    return [*page, page[0]]


def without_status(page):
    crafted = copy.deepcopy(page)
    del crafted[1]["confirmationStatus"]
    return crafted


def wrong_types(page):
    crafted = copy.deepcopy(page)
    crafted[0]["slot"] = "many"
    return crafted


@pytest.mark.parametrize("craft", [reversed_page, repeated_entry, without_status, wrong_types])
def test_a_lying_signature_page_is_an_error(local_chain, ledger, ledger_dsn, fresh_scenario, stolen_history, craft):
    sent, page = stolen_history
    local_chain.set_fault(kind="answer", method="getSignaturesForAddress", result=craft(page))
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert [(v, r) for v, r, _ in report.errors] == [(fresh_scenario.vault, ReasonCode.MALFORMED_RESPONSE)]
    assert report.new_findings == []
    with psycopg.connect(ledger_dsn) as conn:
        assert conn.execute("SELECT cursor_signature FROM chain_reconciliation_cursors").fetchone() == (None,)


def test_a_page_longer_than_the_limit_is_an_error(local_chain, ledger, fresh_scenario, stolen_history):
    _, page = stolen_history
    local_chain.set_fault(kind="answer", method="getSignaturesForAddress", result=page)  # 3 for a limit of 2
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], page_limit=2)
    assert [r for _, r, message in report.errors] == [ReasonCode.MALFORMED_RESPONSE]
    assert "limit of 2" in report.errors[0][2]


def test_a_transaction_answer_for_another_signature_is_an_error(local_chain, ledger, fresh_scenario, stolen_history):
    sent, _ = stolen_history
    other = rpc(local_chain.rpc_url, "getTransaction",
                [sent[0], {"encoding": "base64", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}])
    local_chain.set_fault(kind="answer", method="getTransaction", result=other, count=1)
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    # the newest transaction's signer check got sent[0]'s transaction: refused; the others are judged
    assert [r for _, r, _ in report.errors] == [ReasonCode.MALFORMED_RESPONSE]
    assert sorted(f.signature for f in report.new_findings) == sorted(sent[:2])
    assert report.vaults[0].cursor_after == sent[1]  # settled up to the one that could not be checked
    local_chain.reset_faults()
    again = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert [(f.finding_class, f.signature) for f in again.new_findings] == [
        (FindingClass.UNKNOWN_TRANSACTION, sent[2])]
    assert again.errors == [] and again.vaults[0].cursor_after == sent[2]


def test_a_node_that_hides_a_listed_transaction_is_an_error(local_chain, ledger, fresh_scenario, stolen_history):
    sent, _ = stolen_history
    local_chain.set_fault(kind="answer", method="getTransaction", result=None)
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert len(report.errors) == 3 and {r for _, r, _ in report.errors} == {ReasonCode.MALFORMED_RESPONSE}
    assert report.new_findings == [] and report.vaults[0].cursor_after is None and report.vaults[0].unsettled == 3


def test_a_lying_status_answer_is_an_error(local_chain, ledger, fresh_scenario, faults_cleared):
    from xorj.domain.trades import AttemptOutcome

    (trade_id,) = admit(ledger, fresh_scenario, 1, 1_000_000)
    (claimed,) = ledger.claim_trades(fresh_scenario.strategy, "test-executor", limit=1)
    tx = signed_transfer(local_chain.rpc_url, vault_key(local_chain, fresh_scenario.vault))
    ledger.record_attempt(trade_id, "test-executor", tx.signature, tx.raw, tx.last_valid_block_height, 50,
                          fencing_token=claimed.fencing_token)
    ledger.resolve_attempt(tx.signature, "test-executor", AttemptOutcome.LANDED, fencing_token=claimed.fencing_token)
    # two entries for one signature asked
    local_chain.set_fault(kind="answer", method="getSignatureStatuses",
                          result={"context": {"slot": 5}, "value": [None, None]})
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], grace_seconds=0)
    assert [r for _, r, _ in report.errors] == [ReasonCode.MALFORMED_RESPONSE]
    assert report.new_findings == [] and report.vaults[0].confirmed_checked == 0
