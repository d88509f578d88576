"""The trade state machine: models, transitions, invariants, idempotency key (example-based)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from xorj.domain.trades import (
    ALLOWED_TRANSITIONS,
    Attempt,
    AttemptOutcome,
    IdempotencyKey,
    ReasonCode,
    Trade,
    TradeState,
    check_transition,
    confirm,
    fail,
    idempotency_key,
    land,
    new_trade,
    resolve_attempt,
    submit,
)
from xorj.errors import IllegalTransitionError, InvalidInputError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pending_trade(**overrides: object) -> Trade:
    fields: dict[str, object] = dict(
        id="t-1",
        strategy="ns/alpha",
        vault="Vau1t111",
        lead_trader="Lead111",
        lead_signature="5igLeadSig",
        input_mint="So11111111111111111111111111111111111111112",
        output_mint="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        amount_in=1_000_000_000,
        max_slippage_bps=200,
        at=T0,
    )
    fields.update(overrides)
    return new_trade(**fields)  # type: ignore[arg-type]


def attempt(number: int, signature: str | None = None, bps: int = 100) -> Attempt:
    return Attempt(number=number, signature=signature or f"sig-{number}", slippage_bps=bps, last_valid_block_height=1000 + number)


# --- the shared contract -------------------------------------------------------------------------


def test_contract_names_and_values_are_unchanged() -> None:
    assert [s.value for s in TradeState] == ["PENDING", "SUBMITTED", "CONFIRMED", "FAILED"]
    for code in ("RPC_TIMEOUT", "LEDGER_UNAVAILABLE", "SLIPPAGE_EXCEEDED", "BLOCKHASH_EXPIRED", "RISK_LIMIT",
                 "INSUFFICIENT_FUNDS", "PROGRAM_ERROR", "MALFORMED_RESPONSE", "CANCELLED"):
        assert ReasonCode(code).value == code
    assert ALLOWED_TRANSITIONS[TradeState.PENDING] == {TradeState.SUBMITTED, TradeState.FAILED}
    assert ALLOWED_TRANSITIONS[TradeState.SUBMITTED] == {TradeState.CONFIRMED, TradeState.FAILED}
    assert not ALLOWED_TRANSITIONS[TradeState.CONFIRMED] and not ALLOWED_TRANSITIONS[TradeState.FAILED]


@pytest.mark.parametrize("current", list(TradeState))
@pytest.mark.parametrize("target", list(TradeState))
def test_check_transition_matches_the_table(current: TradeState, target: TradeState) -> None:
    if target in ALLOWED_TRANSITIONS[current]:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransitionError, match=f"{current.value} -> {target.value}"):
            check_transition(current, target)


# --- happy paths ---------------------------------------------------------------------------------


def test_first_attempt_then_landing_confirms_with_the_final_signature() -> None:
    trade = pending_trade()
    submitted = submit(trade, attempt(1), at=at(1))
    assert trade.state is TradeState.PENDING and trade.attempts == ()  # the original is untouched
    assert submitted.state is TradeState.SUBMITTED
    assert submitted.submitted_at == at(1) and submitted.attempts[0].created_at == at(1)
    landed = resolve_attempt(submitted, "sig-1", AttemptOutcome.LANDED, at=at(2))
    assert landed.state is TradeState.SUBMITTED and landed.attempts[0].outcome is AttemptOutcome.LANDED
    done = confirm(landed, "sig-1", at=at(3))
    assert done.state is TradeState.CONFIRMED and done.final_signature == "sig-1"
    assert done.finished_at == at(3) and done.reason is None
    # land() is resolve + confirm in one step (one ledger write)
    assert land(submitted, "sig-1", at=at(3)) == confirm(
        resolve_attempt(submitted, "sig-1", AttemptOutcome.LANDED, at=at(3)), "sig-1", at=at(3)
    )


def test_expired_attempt_is_re_signed_and_the_second_lands() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    trade = resolve_attempt(trade, "sig-1", AttemptOutcome.EXPIRED, at=at(90))
    assert trade.attempts[0].reason is ReasonCode.BLOCKHASH_EXPIRED  # EXPIRED's only explanation
    trade = submit(trade, attempt(2), at=at(91))
    trade = land(trade, "sig-2", at=at(95))
    assert trade.state is TradeState.CONFIRMED and trade.final_signature == "sig-2"
    assert [a.outcome for a in trade.attempts] == [AttemptOutcome.EXPIRED, AttemptOutcome.LANDED]
    assert trade.submitted_at == at(1)  # the first submission time is kept


def test_slippage_failure_then_give_up_fails_with_the_reason() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    trade = resolve_attempt(trade, "sig-1", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED, "6001", at=at(2))
    failed = fail(trade, ReasonCode.SLIPPAGE_EXCEEDED, "3 attempts", at=at(3))
    assert failed.state is TradeState.FAILED and failed.reason is ReasonCode.SLIPPAGE_EXCEEDED
    assert failed.reason_detail == "3 attempts" and failed.final_signature is None


def test_pending_trade_refused_by_risk_fails_without_attempts() -> None:
    failed = fail(pending_trade(), ReasonCode.RISK_LIMIT, "max_trade_notional: 1500.00 USD > limit 1000.00 USD", at=at(1))
    assert failed.state is TradeState.FAILED and failed.attempts == ()
    assert "max_trade_notional" in (failed.reason_detail or "")


# --- refusals ------------------------------------------------------------------------------------


def test_no_second_attempt_while_one_is_unresolved() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(IllegalTransitionError, match="attempt 1 is still unresolved"):
        submit(trade, attempt(2), at=at(2))


def test_no_new_attempt_after_a_landed_one() -> None:
    trade = resolve_attempt(submit(pending_trade(), attempt(1), at=at(1)), "sig-1", AttemptOutcome.LANDED, at=at(2))
    with pytest.raises(IllegalTransitionError, match="LANDED, confirm it instead"):
        submit(trade, attempt(2), at=at(3))
    with pytest.raises(IllegalTransitionError, match="LANDED; confirm it instead"):
        fail(trade, ReasonCode.CANCELLED, at=at(3))


def test_cannot_fail_while_an_attempt_may_still_land() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(IllegalTransitionError, match="may still land"):
        fail(trade, ReasonCode.RPC_TIMEOUT, at=at(2))


def test_confirm_needs_a_landed_attempt_of_that_signature() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(IllegalTransitionError, match="no LANDED attempt with signature sig-1"):
        confirm(trade, "sig-1", at=at(2))
    with pytest.raises(IllegalTransitionError, match="only a SUBMITTED trade"):
        confirm(pending_trade(), "sig-1", at=at(2))
    trade = resolve_attempt(trade, "sig-1", AttemptOutcome.EXPIRED, at=at(3))
    with pytest.raises(IllegalTransitionError, match="no LANDED attempt"):
        confirm(trade, "sig-1", at=at(4))


@pytest.mark.parametrize("terminal", ["confirmed", "failed"])
def test_terminal_states_are_absorbing(terminal: str) -> None:
    submitted = submit(pending_trade(), attempt(1), at=at(1))
    trade = (
        land(submitted, "sig-1", at=at(2))
        if terminal == "confirmed"
        else fail(pending_trade(), ReasonCode.CANCELLED, at=at(2))
    )
    with pytest.raises(IllegalTransitionError, match="absorbing"):
        submit(trade, attempt(len(trade.attempts) + 1, "sig-x"), at=at(3))
    with pytest.raises(IllegalTransitionError, match="absorbing"):
        fail(trade, ReasonCode.CANCELLED, at=at(3))
    with pytest.raises(IllegalTransitionError):
        confirm(trade, "sig-1", at=at(3))
    with pytest.raises(IllegalTransitionError):
        resolve_attempt(trade, "sig-1", AttemptOutcome.LANDED, at=at(3))


def test_a_resolved_attempt_is_never_resolved_again() -> None:
    trade = resolve_attempt(submit(pending_trade(), attempt(1), at=at(1)), "sig-1", AttemptOutcome.EXPIRED, at=at(2))
    with pytest.raises(IllegalTransitionError, match="already EXPIRED"):
        resolve_attempt(trade, "sig-1", AttemptOutcome.LANDED, at=at(3))


def test_attempt_rules_name_the_field() -> None:
    trade = pending_trade(max_slippage_bps=100)
    with pytest.raises(InvalidInputError, match="attempt.number: must be 1"):
        submit(trade, attempt(2), at=at(1))
    with pytest.raises(InvalidInputError, match="attempt.slippage_bps: 150 exceeds trade max_slippage_bps 100"):
        submit(trade, attempt(1, bps=150), at=at(1))
    resolved = dataclasses.replace(attempt(1), outcome=AttemptOutcome.EXPIRED, reason=ReasonCode.BLOCKHASH_EXPIRED)
    with pytest.raises(InvalidInputError, match="attempt.outcome: a new attempt must be PENDING"):
        submit(trade, resolved, at=at(1))
    trade = resolve_attempt(submit(trade, attempt(1), at=at(1)), "sig-1", AttemptOutcome.EXPIRED, at=at(2))
    with pytest.raises(InvalidInputError, match="attempt.signature: sig-1 is already an attempt"):
        submit(trade, attempt(2, "sig-1"), at=at(3))
    with pytest.raises(IllegalTransitionError, match="exceeds max_attempts 1"):
        submit(trade, attempt(2), at=at(3), max_attempts=1)
    with pytest.raises(InvalidInputError, match="signature: nope is not an attempt"):
        resolve_attempt(submit(trade, attempt(2), at=at(3)), "nope", AttemptOutcome.LANDED, at=at(4))


@pytest.mark.parametrize(
    ("outcome", "reason", "message"),
    [
        (AttemptOutcome.FAILED_ON_CHAIN, None, "attempt.reason: required when outcome is FAILED_ON_CHAIN"),
        (AttemptOutcome.LANDED, ReasonCode.PROGRAM_ERROR, "attempt.reason: must be empty when outcome is LANDED"),
        (AttemptOutcome.EXPIRED, ReasonCode.RPC_TIMEOUT, "RPC_TIMEOUT cannot explain outcome EXPIRED"),
        (AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.RISK_LIMIT, "RISK_LIMIT cannot explain outcome FAILED_ON_CHAIN"),
        (AttemptOutcome.PENDING, None, "outcome: must be a resolved AttemptOutcome"),
    ],
)
def test_outcome_and_reason_must_agree(outcome: AttemptOutcome, reason: ReasonCode | None, message: str) -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(InvalidInputError, match=message):
        resolve_attempt(trade, "sig-1", outcome, reason, at=at(2))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"amount_in": 0}, "trade.amount_in: must be >= 1, got 0"),
        ({"amount_in": 1.5}, "trade.amount_in: must be an integer, got float"),
        ({"amount_in": True}, "trade.amount_in: must be an integer, got bool"),
        ({"max_slippage_bps": 0}, "trade.max_slippage_bps: must be >= 1"),
        ({"max_slippage_bps": 10_001}, "trade.max_slippage_bps: must be <= 10000"),
        ({"output_mint": "So11111111111111111111111111111111111111112"}, "trade.output_mint: must differ"),
        ({"lead_signature": " sig"}, "lead_signature: must be a non-empty string without surrounding whitespace"),
        ({"vault": ""}, "vault: must be a non-empty string"),
        ({"at": datetime(2026, 1, 1)}, "at: must be a timezone-aware datetime"),
    ],
)
def test_bad_trade_fields_are_refused_by_name(override: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        pending_trade(**override)


def test_inconsistent_rows_are_refused_on_construction() -> None:
    base = pending_trade()
    landed = dataclasses.replace(attempt(1), outcome=AttemptOutcome.LANDED)
    with pytest.raises(InvalidInputError, match="CONFIRMED requires exactly one LANDED"):
        dataclasses.replace(base, state=TradeState.CONFIRMED, attempts=(attempt(1),), final_signature="sig-1")
    with pytest.raises(InvalidInputError, match="final_signature: must be the signature of the LANDED attempt"):
        dataclasses.replace(base, state=TradeState.CONFIRMED, attempts=(landed,), final_signature="other")
    with pytest.raises(InvalidInputError, match="a FAILED trade must have a reason"):
        dataclasses.replace(base, state=TradeState.FAILED)
    with pytest.raises(InvalidInputError, match="only the last attempt may be unresolved"):
        dataclasses.replace(base, state=TradeState.SUBMITTED, attempts=(attempt(1), attempt(2)))
    with pytest.raises(InvalidInputError, match="numbers must run 1..n"):
        dataclasses.replace(base, state=TradeState.SUBMITTED, attempts=(attempt(2),))
    with pytest.raises(InvalidInputError, match="a PENDING trade has no attempts"):
        dataclasses.replace(base, attempts=(attempt(1),))
    with pytest.raises(InvalidInputError, match="cannot be FAILED \\(it may still land\\)"):
        dataclasses.replace(base, state=TradeState.FAILED, reason=ReasonCode.CANCELLED, attempts=(attempt(1),))
    two_landed = (dataclasses.replace(landed, number=1), dataclasses.replace(landed, number=2, signature="sig-2"))
    with pytest.raises(InvalidInputError, match="at most one LANDED attempt, found 2"):
        dataclasses.replace(base, state=TradeState.SUBMITTED, attempts=two_landed)


def test_attempts_given_as_a_list_are_frozen_into_a_tuple() -> None:
    trade = dataclasses.replace(pending_trade(), state=TradeState.SUBMITTED, attempts=[attempt(1)])  # type: ignore[arg-type]
    assert isinstance(trade.attempts, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trade.state = TradeState.FAILED  # type: ignore[misc]


# --- idempotency key -----------------------------------------------------------------------------


def test_idempotency_key_is_the_triple_and_has_an_unambiguous_text_form() -> None:
    key = idempotency_key("ns/alpha", "Vau1t", "5igX")
    assert key == IdempotencyKey("ns/alpha", "Vau1t", "5igX")
    assert str(key) == "ns/alpha:Vau1t:5igX"
    assert pending_trade().key == idempotency_key("ns/alpha", "Vau1t111", "5igLeadSig")
    # case matters in base58: these are two different lead trades
    assert idempotency_key("s", "v", "abc") != idempotency_key("s", "v", "ABC")


@pytest.mark.parametrize(("field", "value"), [("strategy", "a:b"), ("vault", "v v"), ("lead_signature", "")])
def test_idempotency_key_refuses_ambiguous_components(field: str, value: str) -> None:
    parts = {"strategy": "s", "vault": "v", "lead_signature": "sig"} | {field: value}
    with pytest.raises(InvalidInputError, match=field):
        idempotency_key(**parts)
