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
    cancel,
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
        trade_id=1,
        strategy="ns/alpha",
        vault="Vau1t111",
        lead_trader="Lead111",
        lead_signature="5igLeadSig",
        input_mint="So11111111111111111111111111111111111111112",
        output_mint="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        amount=1_000_000_000,
        max_slippage_bps=200,
        at=T0,
    )
    fields.update(overrides)
    return new_trade(**fields)  # type: ignore[arg-type]


def attempt(number: int, signature: str | None = None, bps: int = 100) -> Attempt:
    return Attempt(trade_id=1, attempt_no=number, signature=signature or f"sig-{number}", raw_tx=b"signed-%d" % number,
                   slippage_bps=bps, last_valid_block_height=1000 + number)


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
    assert failed.detail == "3 attempts" and failed.final_signature is None


def test_pending_trade_refused_by_risk_fails_without_attempts() -> None:
    failed = fail(pending_trade(), ReasonCode.RISK_LIMIT, "max_trade_notional: 1500.00 USD > limit 1000.00 USD", at=at(1))
    assert failed.state is TradeState.FAILED and failed.attempts == ()
    assert "max_trade_notional" in (failed.detail or "")


# --- refusals ------------------------------------------------------------------------------------


def test_no_second_attempt_while_one_is_unresolved() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(IllegalTransitionError, match="attempt sig-1 is still unresolved"):
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
    with pytest.raises(IllegalTransitionError, match="attempt sig-1 is recorded PENDING; it cannot confirm"):
        confirm(trade, "sig-1", at=at(2))
    with pytest.raises(IllegalTransitionError, match="PENDING -> CONFIRMED"):
        confirm(pending_trade(), "sig-1", at=at(2))
    with pytest.raises(IllegalTransitionError, match="PENDING -> CONFIRMED"):
        land(pending_trade(), "sig-1", at=at(2))
    trade = resolve_attempt(trade, "sig-1", AttemptOutcome.EXPIRED, at=at(3))
    with pytest.raises(IllegalTransitionError, match="recorded EXPIRED; it cannot confirm"):
        confirm(trade, "sig-1", at=at(4))
    with pytest.raises(IllegalTransitionError, match="sig-1 is already EXPIRED; it cannot become LANDED"):
        land(trade, "sig-1", at=at(4))


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
    with pytest.raises(InvalidInputError, match="attempt.attempt_no: must be 1"):
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
        (AttemptOutcome.PENDING, None, "outcome: an attempt is resolved to"),
    ],
)
def test_outcome_and_reason_must_agree(outcome: AttemptOutcome, reason: ReasonCode | None, message: str) -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(InvalidInputError, match=message):
        resolve_attempt(trade, "sig-1", outcome, reason, at=at(2))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"amount": 0}, "trade.amount: must be >= 1, got 0"),
        ({"amount": 1.5}, "trade.amount: must be an integer, got float"),
        ({"amount": True}, "trade.amount: must be an integer, got bool"),
        ({"max_slippage_bps": -1}, "trade.max_slippage_bps: must be >= 0"),
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
    with pytest.raises(InvalidInputError, match="attempt_no must run 1..n"):
        dataclasses.replace(base, state=TradeState.SUBMITTED, attempts=(attempt(2),))
    with pytest.raises(InvalidInputError, match="a PENDING trade has no attempts"):
        dataclasses.replace(base, attempts=(attempt(1),))
    with pytest.raises(InvalidInputError, match="cannot be FAILED \\(it may still land\\)"):
        dataclasses.replace(base, state=TradeState.FAILED, reason=ReasonCode.CANCELLED, attempts=(attempt(1),))
    two_landed = (dataclasses.replace(landed, attempt_no=1),
                  dataclasses.replace(landed, attempt_no=2, signature="sig-2"))
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


# --- the ledger's rows and the rules only the domain states ------------------------------------------


def test_a_row_as_the_ledger_stores_it_builds_the_model() -> None:
    """Columns come back as text and numeric: the model takes them as they are (no hand mapper)."""
    from decimal import Decimal

    row_attempt = Attempt(trade_id=7, attempt_no=1, signature="sig-1", raw_tx=memoryview(b"tx"),  # type: ignore[arg-type]
                          last_valid_block_height=5, slippage_bps=100, quote_out_amount=Decimal(42),  # type: ignore[arg-type]
                          outcome="EXPIRED", reason="BLOCKHASH_EXPIRED", send_failure="RPC_TIMEOUT",  # type: ignore[arg-type]
                          attempt_id=3)
    assert (row_attempt.outcome, row_attempt.reason, row_attempt.send_failure) == (
        AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, ReasonCode.RPC_TIMEOUT)
    assert row_attempt.quote_out_amount == 42 and type(row_attempt.quote_out_amount) is int
    assert row_attempt.raw_tx == b"tx"
    trade = Trade(trade_id=7, strategy="ns/a", vault="v", lead_signature="l", lead_trader="t", input_mint="a",
                  output_mint="b", amount=Decimal(18_446_744_073_709_551_615), state="SUBMITTED",  # type: ignore[arg-type]
                  attempts=(row_attempt,))
    assert trade.amount == 2**64 - 1 and trade.state is TradeState.SUBMITTED
    with pytest.raises(InvalidInputError, match="trade.state: must be one of PENDING, SUBMITTED"):
        dataclasses.replace(trade, state="DONE")
    with pytest.raises(InvalidInputError, match="trade.amount: must be an integer"):
        dataclasses.replace(trade, amount=Decimal("1.5"))
    with pytest.raises(InvalidInputError, match="belongs to trade 7"):
        dataclasses.replace(pending_trade(), state=TradeState.SUBMITTED, attempts=(row_attempt,))


def test_send_failure_belongs_to_an_expired_attempt_and_decides_its_retry() -> None:
    trade = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(InvalidInputError, match="attempt.send_failure: only an EXPIRED attempt"):
        resolve_attempt(trade, "sig-1", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.PROGRAM_ERROR,
                        send_failure=ReasonCode.RPC_TIMEOUT, at=at(2))
    expired = resolve_attempt(trade, "sig-1", AttemptOutcome.EXPIRED, detail="never accepted",
                              send_failure=ReasonCode.INSUFFICIENT_FUNDS, at=at(2)).attempts[0]
    assert expired.send_failure is ReasonCode.INSUFFICIENT_FUNDS
    assert expired.decisive_reason is ReasonCode.INSUFFICIENT_FUNDS
    plain = resolve_attempt(trade, "sig-1", AttemptOutcome.EXPIRED, detail="RPC_TIMEOUT: text only",
                            at=at(2)).attempts[0]
    assert plain.decisive_reason is ReasonCode.BLOCKHASH_EXPIRED


def test_only_a_pending_trade_is_cancelled() -> None:
    cancelled = cancel(pending_trade(), "CopyTrade deleted", at=at(1))
    assert (cancelled.state, cancelled.reason, cancelled.detail) == (
        TradeState.FAILED, ReasonCode.CANCELLED, "CopyTrade deleted")
    submitted = submit(pending_trade(), attempt(1), at=at(1))
    with pytest.raises(IllegalTransitionError, match="only PENDING trades can be cancelled"):
        cancel(submitted, "too late", at=at(2))


def test_a_terminal_trade_holds_no_lease() -> None:
    leased = dataclasses.replace(pending_trade(), lease_owner="ex", lease_expires_at=at(30), fencing_token=4)
    failed = fail(leased, ReasonCode.RISK_LIMIT, "max_daily_trades", at=at(1))
    assert failed.lease_owner is None and failed.lease_expires_at is None and failed.fencing_token == 4
    with pytest.raises(InvalidInputError, match="trade.lease_owner: a FAILED trade holds no lease"):
        dataclasses.replace(failed, lease_owner="ex", lease_expires_at=at(30))
