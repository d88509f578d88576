"""The reconciler against the real ledger and the real local chain (LiteSVM): each finding class
produced for real, a clean run of real executor trades, re-runs that do not report twice, the cursor,
and hostile or broken RPC answers that must never read as "nothing found"."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.executor.harness import InProcessExecutor, admit, executor_env, rpc, wait_terminal
from tests.integration.reconciler.helpers import (
    one_pass,
    send,
    send_batch,
    signed_transfer,
    vault_key,
    wait_finalized,
)
from xorj.domain.reconciliation import FindingClass
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000
OWNER = "test-executor"


def classes(report) -> list[tuple[FindingClass, str]]:
    return sorted((f.finding_class, f.signature) for f in report.new_findings)


def cursor_of(dsn: str, vault: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT cursor_signature FROM chain_reconciliation_cursors WHERE vault = %s",
                           (vault,)).fetchone()
    return None if row is None else row[0]


def recorded_transfer(local_chain, ledger, scenario):
    """A trade admitted and claimed, with one attempt recorded (not sent): a real transfer the vault signed.
    Returns (trade_id, fencing_token, tx)."""
    (trade_id,) = admit(ledger, scenario, 1, AMOUNT)
    (claimed,) = ledger.claim_trades(scenario.strategy, OWNER, limit=1)
    tx = signed_transfer(local_chain.rpc_url, vault_key(local_chain, scenario.vault))
    ledger.record_attempt(trade_id, OWNER, tx.signature, tx.raw, tx.last_valid_block_height, 50,
                          fencing_token=claimed.fencing_token)
    return trade_id, claimed.fencing_token, tx


def test_clean_run_of_real_executor_trades_reports_nothing(local_chain, ledger, ledger_dsn, fresh_scenario):
    ids = admit(ledger, fresh_scenario, 3, AMOUNT)
    env = executor_env(dsn=ledger_dsn, scenario=fresh_scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url)
    with InProcessExecutor(env):
        trades = wait_terminal(ledger, ids, 90)
    assert all(t.state is TradeState.CONFIRMED for t in trades), [(t.state, t.reason, t.detail) for t in trades]
    finals = [t.final_signature for t in trades]
    wait_finalized(local_chain.rpc_url, finals)

    report = one_pass(ledger, local_chain.rpc_url, None)
    (vault_report,) = [v for v in report.vaults if v.vault == fresh_scenario.vault]
    assert report.errors == [] and report.new_findings == [] and report.open_findings == []
    assert vault_report.walked == len(trades) and vault_report.confirmed_final == len(trades)
    newest = rpc(local_chain.rpc_url, "getSignaturesForAddress", [fresh_scenario.vault, {"limit": 1}])[0]
    assert vault_report.cursor_after == newest["signature"] == cursor_of(ledger_dsn, fresh_scenario.vault)

    again = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert again.vaults[0].walked == 0 and again.vaults[0].confirmed_checked == 0  # verified trades stay verified
    assert again.new_findings == [] and again.errors == []


def test_a_transfer_signed_with_the_vault_key_outside_the_executor(local_chain, ledger, ledger_dsn, fresh_scenario):
    admit(ledger, fresh_scenario, 1, AMOUNT)  # the ledger knows the vault from now on
    key = vault_key(local_chain, fresh_scenario.vault)
    stolen = send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key))
    # a transfer INTO the vault, signed by someone else: it touches the vault but is not a finding
    inbound = rpc(local_chain.rpc_url, "requestAirdrop", [fresh_scenario.vault, 5_000_000])
    wait_finalized(local_chain.rpc_url, [stolen, inbound])

    report = one_pass(ledger, local_chain.rpc_url, None)
    assert report.errors == []
    assert classes(report) == [(FindingClass.UNKNOWN_TRANSACTION, stolen)]
    (vault_report,) = [v for v in report.vaults if v.vault == fresh_scenario.vault]
    assert vault_report.walked == 2 and vault_report.inbound_ignored == 1
    assert cursor_of(ledger_dsn, fresh_scenario.vault) == inbound  # both settled: the newest is the cursor
    with psycopg.connect(ledger_dsn) as conn:
        alerts = conn.execute("SELECT kind, severity, message FROM alerts WHERE kind = 'CHAIN_RECONCILIATION'"
                              ).fetchall()
    assert len(alerts) == 1 and alerts[0][1] == "critical" and stolen in alerts[0][2]

    # a second pass reports nothing new, and the finding stays open until a person resolves it
    again = one_pass(ledger, local_chain.rpc_url, None)
    assert again.new_findings == [] and again.vaults[0].walked == 0
    assert [(f.finding_class, f.signature) for f in again.open_findings] == [
        (FindingClass.UNKNOWN_TRANSACTION, stolen)]


def test_a_stolen_key_transaction_is_reported_before_it_is_final_and_the_cursor_waits(
        local_chain, ledger, ledger_dsn, fresh_scenario, faults_cleared):
    admit(ledger, fresh_scenario, 1, AMOUNT)
    key = vault_key(local_chain, fresh_scenario.vault)
    first = send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key))
    wait_finalized(local_chain.rpc_url, [first])
    local_chain.pause_blocks(True)
    try:
        second = send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key))
        local_chain.advance_blocks(2)  # confirmed (depth 1), far from finalized (depth 32)
        report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    finally:
        local_chain.pause_blocks(False)
    assert classes(report) == sorted([(FindingClass.UNKNOWN_TRANSACTION, first),
                                      (FindingClass.UNKNOWN_TRANSACTION, second)])
    assert report.vaults[0].unsettled == 1
    assert cursor_of(ledger_dsn, fresh_scenario.vault) == first  # not past the unfinalized one
    wait_finalized(local_chain.rpc_url, [second])
    again = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert again.new_findings == [] and again.vaults[0].walked == 1
    assert cursor_of(ledger_dsn, fresh_scenario.vault) == second


@pytest.mark.parametrize(("outcome", "reason"), [(AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED),
                                                 (AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.PROGRAM_ERROR)])
def test_an_attempt_the_ledger_holds_as_not_landed_that_landed(local_chain, ledger, ledger_dsn, fresh_scenario,
                                                               outcome, reason):
    """The bug the reconciler exists to catch: the executor records an attempt EXPIRED (or failed on
    chain) although its transaction is on chain and succeeded; the ledger rows are written through the
    ledger's own executor API, the transaction is really sent to the local chain."""
    trade_id, token, tx = recorded_transfer(local_chain, ledger, fresh_scenario)
    send(local_chain.rpc_url, tx)
    ledger.resolve_attempt(tx.signature, OWNER, outcome, reason, "wrong verdict", fencing_token=token)
    ledger.fail_trade(trade_id, OWNER, reason, "wrong verdict", fencing_token=token)
    wait_finalized(local_chain.rpc_url, [tx.signature])

    report = one_pass(ledger, local_chain.rpc_url, None)
    assert report.errors == []
    assert classes(report) == [(FindingClass.UNRECORDED_LANDING, tx.signature)]
    (finding,) = report.new_findings
    assert finding.trade_id == trade_id and finding.strategy == fresh_scenario.strategy
    assert outcome.value in finding.detail and "FAILED" in finding.detail


def test_the_double_fill_of_issue_12_is_reported_as_such(local_chain, ledger, ledger_dsn, fresh_scenario):
    """Issue 12's double fill, as the ledger records it: attempt 1 EXPIRED (a lagging status said "not
    found"), attempt 2 signed and LANDED; both transactions are on chain."""
    (trade_id,) = admit(ledger, fresh_scenario, 1, AMOUNT)
    (claimed,) = ledger.claim_trades(fresh_scenario.strategy, OWNER, limit=1)
    token = claimed.fencing_token
    key = vault_key(local_chain, fresh_scenario.vault)
    first, second = signed_transfer(local_chain.rpc_url, key), signed_transfer(local_chain.rpc_url, key)
    ledger.record_attempt(trade_id, OWNER, first.signature, first.raw, first.last_valid_block_height, 50,
                          fencing_token=token)
    send(local_chain.rpc_url, first)
    ledger.resolve_attempt(first.signature, OWNER, AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                           fencing_token=token)
    ledger.record_attempt(trade_id, OWNER, second.signature, second.raw, second.last_valid_block_height, 100,
                          fencing_token=token)
    send(local_chain.rpc_url, second)
    ledger.resolve_attempt(second.signature, OWNER, AttemptOutcome.LANDED, fencing_token=token)
    wait_finalized(local_chain.rpc_url, [first.signature, second.signature])

    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert classes(report) == [(FindingClass.UNRECORDED_LANDING, first.signature)]
    assert f"trade {trade_id} filled 2 times" in report.new_findings[0].detail
    assert report.vaults[0].confirmed_final == 1  # the CONFIRMED trade's own transaction is final: no finding


def test_a_pending_attempt_recorded_expired_after_it_finalized_is_still_caught(local_chain, ledger, ledger_dsn,
                                                                                fresh_scenario):
    trade_id, token, tx = recorded_transfer(local_chain, ledger, fresh_scenario)
    send(local_chain.rpc_url, tx)
    wait_finalized(local_chain.rpc_url, [tx.signature])
    first = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert first.new_findings == [] and first.vaults[0].unsettled == 1  # in flight: not a finding, not passed
    assert cursor_of(ledger_dsn, fresh_scenario.vault) is None

    ledger.resolve_attempt(tx.signature, OWNER, AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                           fencing_token=token)
    second = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert classes(second) == [(FindingClass.UNRECORDED_LANDING, tx.signature)]
    assert cursor_of(ledger_dsn, fresh_scenario.vault) == tx.signature


def test_a_confirmed_trade_whose_transaction_is_not_on_chain(local_chain, ledger, ledger_dsn, fresh_scenario):
    trade_id, token, never_sent = recorded_transfer(local_chain, ledger, fresh_scenario)
    ledger.resolve_attempt(never_sent.signature, OWNER, AttemptOutcome.LANDED, fencing_token=token)
    assert ledger.get_trade(trade_id).state is TradeState.CONFIRMED

    within_grace = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], grace_seconds=600)
    assert within_grace.new_findings == [] and within_grace.vaults[0].confirmed_checked == 1
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], grace_seconds=0)
    assert classes(report) == [(FindingClass.CONFIRMED_NOT_FINAL, never_sent.signature)]
    assert report.new_findings[0].trade_id == trade_id and "not on chain" in report.new_findings[0].detail


def test_a_confirmed_trade_that_finalizes_late_closes_its_finding(local_chain, ledger, ledger_dsn, fresh_scenario,
                                                                  faults_cleared):
    trade_id, token, tx = recorded_transfer(local_chain, ledger, fresh_scenario)
    local_chain.pause_blocks(True)
    try:
        send(local_chain.rpc_url, tx)
        local_chain.advance_blocks(2)
        ledger.resolve_attempt(tx.signature, OWNER, AttemptOutcome.LANDED, fencing_token=token)
        stuck = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], grace_seconds=0)
    finally:
        local_chain.pause_blocks(False)
    assert classes(stuck) == [(FindingClass.CONFIRMED_NOT_FINAL, tx.signature)]
    assert "still confirmed" in stuck.new_findings[0].detail
    wait_finalized(local_chain.rpc_url, [tx.signature])
    later = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], grace_seconds=0)
    assert later.new_findings == [] and later.open_findings == [] and later.vaults[0].confirmed_final == 1


def test_a_malformed_rpc_answer_is_an_error_not_a_clean_pass(local_chain, ledger, ledger_dsn, fresh_scenario,
                                                             faults_cleared):
    admit(ledger, fresh_scenario, 1, AMOUNT)
    stolen = send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, vault_key(local_chain,
                                                                                       fresh_scenario.vault)))
    wait_finalized(local_chain.rpc_url, [stolen])
    local_chain.set_fault(kind="malformed", method="getSignaturesForAddress")
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert [(vault, reason) for vault, reason, _ in report.errors] == [
        (fresh_scenario.vault, ReasonCode.MALFORMED_RESPONSE)]
    assert report.new_findings == [] and cursor_of(ledger_dsn, fresh_scenario.vault) is None
    local_chain.reset_faults()
    assert classes(one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])) == [
        (FindingClass.UNKNOWN_TRANSACTION, stolen)]


def test_the_walk_pages_back_to_the_cursor(local_chain, ledger, ledger_dsn, fresh_scenario):
    admit(ledger, fresh_scenario, 1, AMOUNT)
    key = vault_key(local_chain, fresh_scenario.vault)
    sent = [send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key)) for _ in range(5)]
    wait_finalized(local_chain.rpc_url, sent)
    first = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], page_limit=2)  # pages of 2, 2, 1
    assert sorted(f.signature for f in first.new_findings) == sorted(sent)
    more = [send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key)) for _ in range(3)]
    wait_finalized(local_chain.rpc_url, more)
    second = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault], page_limit=2)
    assert second.vaults[0].walked == 3 and sorted(f.signature for f in second.new_findings) == sorted(more)


@pytest.mark.slow
def test_the_walk_crosses_the_rpcs_page_limit_of_1000(local_chain, ledger, ledger_dsn, fresh_scenario):
    admit(ledger, fresh_scenario, 1, AMOUNT)
    key = vault_key(local_chain, fresh_scenario.vault)
    sent = []
    for start in range(0, 1003, 250):
        latest = rpc(local_chain.rpc_url, "getLatestBlockhash", [{"commitment": "confirmed"}])["value"]
        sent += send_batch(local_chain.rpc_url, [
            signed_transfer(local_chain.rpc_url, key, lamports=1_000_000 + i, latest=latest)
            for i in range(start, min(start + 250, 1003))])
    wait_finalized(local_chain.rpc_url, sent[-256:])  # the newest finalized: so are the older ones
    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])  # pages of 1000, then 3
    assert report.errors == [] and report.vaults[0].walked == 1003
    assert sorted(f.signature for f in report.new_findings) == sorted(sent)
    assert cursor_of(ledger_dsn, fresh_scenario.vault) == sent[-1]
    again = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert again.vaults[0].walked == 0 and again.new_findings == []


def test_a_stolen_key_used_as_a_co_signer_is_caught(local_chain, ledger, ledger_dsn, fresh_scenario):
    """The thief pays the fee (the transaction is listed under the thief's signature) and the vault
    only co-signs the transfer out of it: still a transaction the vault signed."""
    import base64

    from solders.hash import Hash
    from solders.keypair import Keypair
    from solders.message import MessageV0
    from solders.system_program import TransferParams, transfer
    from solders.transaction import VersionedTransaction

    admit(ledger, fresh_scenario, 1, AMOUNT)
    vault = vault_key(local_chain, fresh_scenario.vault)
    thief = Keypair()
    funded = rpc(local_chain.rpc_url, "requestAirdrop", [str(thief.pubkey()), 10_000_000])
    latest = rpc(local_chain.rpc_url, "getLatestBlockhash", [{"commitment": "confirmed"}])["value"]
    message = MessageV0.try_compile(thief.pubkey(), [transfer(TransferParams(
        from_pubkey=vault.pubkey(), to_pubkey=thief.pubkey(), lamports=2_000_000))], [],
        Hash.from_string(latest["blockhash"]))
    tx = VersionedTransaction(message, [thief, vault])
    listed_as = rpc(local_chain.rpc_url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(),
                                                            {"encoding": "base64"}])
    assert listed_as == str(tx.signatures[0]) != str(tx.signatures[1])  # the thief's signature is its id
    wait_finalized(local_chain.rpc_url, [listed_as, funded])

    report = one_pass(ledger, local_chain.rpc_url, [fresh_scenario.vault])
    assert report.errors == []
    assert classes(report) == [(FindingClass.UNKNOWN_TRANSACTION, listed_as)]
