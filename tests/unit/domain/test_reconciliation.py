"""Reconciliation of chain and ledger: each finding class, what is not a finding, and the cursor rule."""

from __future__ import annotations

import pytest

from xorj.domain.reconciliation import (
    AttemptRecord,
    ChainSignature,
    ConfirmedTrade,
    FinalityGrace,
    FinalityVerdict,
    FindingClass,
    ObservedStatus,
    classify_confirmed,
    classify_vault,
    needs_signer_check,
)
from xorj.domain.trades import AttemptOutcome, TradeState

VAULT = "Vault111111111111111111111111111111111111111"
OTHER_VAULT = "Other11111111111111111111111111111111111111"


def sig(name: str, slot: int, confirmation: str = "finalized", *, failed: bool = False,
        block_time: int | None = None) -> ChainSignature:
    return ChainSignature(name, slot, failed, confirmation, block_time=block_time,
                          error="InstructionError" if failed else None)


def attempt(name: str, outcome: AttemptOutcome, state: TradeState = TradeState.SUBMITTED, *,
            vault: str = VAULT, trade_id: int = 7) -> AttemptRecord:
    return AttemptRecord(name, trade_id, 1, vault, outcome, state, strategy="ns/s")


def test_landed_attempts_and_inbound_transfers_are_not_findings():
    chain = [sig("c", 12), sig("b", 11, failed=True), sig("a", 10)]
    attempts = {"c": attempt("c", AttemptOutcome.LANDED, TradeState.CONFIRMED),
                "b": attempt("b", AttemptOutcome.FAILED_ON_CHAIN, TradeState.FAILED)}
    assert needs_signer_check(chain, attempts, VAULT) == ["a"]
    verdict = classify_vault(VAULT, chain, attempts, {"a": False})
    assert verdict.findings == ()
    assert verdict.new_cursor == "c" and verdict.unsettled == 0 and verdict.ignored_inbound == 1


def test_a_vault_signed_transaction_without_attempt_is_unknown():
    chain = [sig("x", 20, failed=True), sig("y", 19)]
    verdict = classify_vault(VAULT, chain, {}, {"x": True, "y": True})
    assert [(f.finding_class, f.signature) for f in verdict.findings] == [
        (FindingClass.UNKNOWN_TRANSACTION, "x"), (FindingClass.UNKNOWN_TRANSACTION, "y")]
    assert "failed" in verdict.findings[0].detail and verdict.findings[0].slot == 20
    assert verdict.findings[0].key == f"UNKNOWN_TRANSACTION:{VAULT}:x"


def test_an_attempt_of_another_vault_does_not_cover_this_vaults_signature():
    chain = [sig("z", 5)]
    attempts = {"z": attempt("z", AttemptOutcome.LANDED, TradeState.CONFIRMED, vault=OTHER_VAULT, trade_id=3)}
    assert needs_signer_check(chain, attempts, VAULT) == ["z"]
    verdict = classify_vault(VAULT, chain, attempts, {"z": True})
    (finding,) = verdict.findings
    assert finding.finding_class is FindingClass.UNKNOWN_TRANSACTION and "trade 3" in finding.detail


@pytest.mark.parametrize("outcome", [AttemptOutcome.EXPIRED, AttemptOutcome.NOT_SENT])
@pytest.mark.parametrize("failed", [False, True])
def test_an_attempt_recorded_as_never_landed_that_landed(outcome, failed):
    chain = [sig("e", 30, failed=failed)]
    verdict = classify_vault(VAULT, chain, {"e": attempt("e", outcome, TradeState.FAILED)}, {})
    (finding,) = verdict.findings
    assert finding.finding_class is FindingClass.UNRECORDED_LANDING
    assert finding.trade_id == 7 and finding.strategy == "ns/s" and outcome.value in finding.detail
    assert ("FILLED" in finding.detail) is (not failed)
    assert verdict.new_cursor == "e"


def test_the_double_fill_of_a_wrong_expiry_verdict_is_named():
    # attempt 1 recorded EXPIRED although it landed; attempt 2 was signed and landed too
    chain = [sig("second", 31), sig("first", 30)]
    attempts = {"first": AttemptRecord("first", 7, 1, VAULT, AttemptOutcome.EXPIRED, TradeState.CONFIRMED),
                "second": AttemptRecord("second", 7, 2, VAULT, AttemptOutcome.LANDED, TradeState.CONFIRMED)}
    (finding,) = classify_vault(VAULT, chain, attempts, {}).findings
    assert finding.signature == "first" and "so did second" in finding.detail
    assert "trade 7 filled 2 times" in finding.detail


def test_an_attempt_recorded_failed_on_chain_that_succeeded():
    verdict = classify_vault(VAULT, [sig("f", 30)],
                             {"f": attempt("f", AttemptOutcome.FAILED_ON_CHAIN, TradeState.FAILED)}, {})
    (finding,) = verdict.findings
    assert finding.finding_class is FindingClass.UNRECORDED_LANDING and "FAILED_ON_CHAIN" in finding.detail


def test_a_pending_attempt_is_in_flight_not_a_finding_but_holds_the_cursor():
    chain = [sig("n3", 42), sig("p", 41), sig("n1", 40)]
    attempts = {"n3": attempt("n3", AttemptOutcome.LANDED, TradeState.CONFIRMED, trade_id=1),
                "p": attempt("p", AttemptOutcome.PENDING, trade_id=2),
                "n1": attempt("n1", AttemptOutcome.LANDED, TradeState.CONFIRMED, trade_id=3)}
    verdict = classify_vault(VAULT, chain, attempts, {})
    assert verdict.findings == ()
    # the cursor stops below the pending attempt: if it is later recorded EXPIRED, it is walked again
    assert verdict.new_cursor == "n1" and verdict.unsettled == 1


def test_the_cursor_moves_only_past_finalized_transactions():
    chain = [sig("d", 53, "confirmed"), sig("c", 52, "finalized"), sig("b", 51, "confirmed"), sig("a", 50)]
    verdict = classify_vault(VAULT, chain, {}, {"a": False, "b": False, "c": False, "d": False})
    assert verdict.new_cursor == "a"  # b is only confirmed: c (finalized) is not passed either
    assert verdict.unsettled == 2


def test_the_cursor_stays_when_the_oldest_is_not_settled():
    chain = [sig("b", 51), sig("a", 50, "confirmed")]
    assert classify_vault(VAULT, chain, {}, {"a": False, "b": False}).new_cursor is None
    assert classify_vault(VAULT, [], {}, {}).new_cursor is None


def test_an_unknown_signer_is_unsettled_not_fine():
    chain = [sig("b", 51), sig("a", 50)]
    verdict = classify_vault(VAULT, chain, {}, {"b": False})  # the adapter could not tell for "a"
    assert verdict.findings == () and verdict.new_cursor is None and verdict.unsettled == 1


def test_a_finding_on_a_confirmed_transaction_is_reported_before_it_is_final():
    # a stolen key's transaction is reported at once; the cursor still waits for finality
    verdict = classify_vault(VAULT, [sig("s", 60, "confirmed")], {}, {"s": True})
    assert [f.finding_class for f in verdict.findings] == [FindingClass.UNKNOWN_TRANSACTION]
    assert verdict.new_cursor is None


def test_transactions_before_the_ledger_knew_the_vault_are_not_judged():
    chain = [sig("new", 71, block_time=1_000), sig("old", 70, block_time=999), sig("undated", 69)]
    assert needs_signer_check(chain, {}, VAULT, not_before_block_time=1_000) == ["new", "undated"]
    verdict = classify_vault(VAULT, chain, {}, {"new": True, "undated": True}, not_before_block_time=1_000)
    assert sorted(f.signature for f in verdict.findings) == ["new", "undated"]
    assert verdict.new_cursor == "new"


def test_chain_signature_refuses_nonsense():
    with pytest.raises(ValueError, match="confirmation"):
        ChainSignature("a", 1, False, "rooted")
    with pytest.raises(ValueError, match="slot"):
        ChainSignature("a", -1, False, "finalized")


# ---- CONFIRMED trades ------------------------------------------------------------------------------

GRACE = FinalityGrace(seconds=60, slots=100)


def trade(age: float) -> ConfirmedTrade:
    return ConfirmedTrade(trade_id=9, vault=VAULT, final_signature="fin", age_seconds=age, strategy="ns/s")


def test_a_finalized_success_is_final():
    check = classify_confirmed(trade(1), ObservedStatus(10, "finalized", False), 50, GRACE)
    assert check.verdict is FinalityVerdict.FINAL and check.finding is None


def test_a_failure_at_finalized_is_reported_at_once():
    check = classify_confirmed(trade(1), ObservedStatus(10, "finalized", True, "Custom(1)"), 50, GRACE)
    assert check.verdict is FinalityVerdict.NOT_FINAL
    assert check.finding.finding_class is FindingClass.CONFIRMED_NOT_FINAL and "Custom(1)" in check.finding.detail


def test_missing_waits_for_the_grace_in_seconds():
    assert classify_confirmed(trade(59), None, 500, GRACE).verdict is FinalityVerdict.WAITING
    check = classify_confirmed(trade(61), None, 500, GRACE)
    assert check.verdict is FinalityVerdict.NOT_FINAL and "not on chain" in check.finding.detail
    assert check.finding.trade_id == 9 and check.finding.signature == "fin"


@pytest.mark.parametrize(("age", "context_slot", "verdict"), [
    (10, 110, FinalityVerdict.WAITING),  # 100 slots behind: still within both graces
    (10, 111, FinalityVerdict.NOT_FINAL),  # past the slot grace
    (61, 20, FinalityVerdict.NOT_FINAL),  # past the seconds grace
])
def test_not_finalized_is_reported_past_either_grace(age, context_slot, verdict):
    check = classify_confirmed(trade(age), ObservedStatus(10, "confirmed", False), context_slot, GRACE)
    assert check.verdict is verdict
    if verdict is FinalityVerdict.NOT_FINAL:
        assert "still confirmed" in check.finding.detail


def test_grace_refuses_negative_values():
    with pytest.raises(ValueError, match="grace"):
        FinalityGrace(seconds=-1)
