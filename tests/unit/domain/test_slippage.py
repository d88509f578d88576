"""The slippage retry policy: validation, profiles, the ladder (examples and properties)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xorj.domain.slippage import (
    ABSOLUTE_CAP_BPS,
    RiskProfile,
    SlippageAction,
    SlippagePolicy,
    decide_retry,
    ladder_bps,
    next_slippage,
)
from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, confirm, fail, new_trade, resolve_attempt, submit
from xorj.errors import InvalidInputError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_reference_defaults() -> None:
    policy = SlippagePolicy()
    assert (policy.initial_bps, policy.max_attempts, policy.absolute_cap_bps) == (100, 3, 500)
    assert policy.initial_bps == 100


@pytest.mark.parametrize(
    ("profile", "initial", "cap"),
    [("conservative", 50, 50), ("moderate", 100, 100), ("aggressive", 100, 200)],
)
def test_profiles_cap_the_one_percent_initial(profile: str, initial: int, cap: int) -> None:
    policy = SlippagePolicy.for_profile(profile)
    assert (policy.initial_bps, policy.cap_bps, policy.max_attempts) == (initial, cap, 3)
    assert SlippagePolicy.for_profile(RiskProfile(profile)) == policy


def test_profile_overrides_are_validated() -> None:
    assert SlippagePolicy.for_profile("aggressive", step_bps=25, max_attempts=5).step_bps == 25
    with pytest.raises(InvalidInputError, match="slippage.cap_bps: must be <= absolute_cap_bps \\(500\\), got 900"):
        SlippagePolicy.for_profile("aggressive", cap_bps=900)
    with pytest.raises(InvalidInputError, match="slippage.profile: must be one of conservative, moderate, aggressive"):
        SlippagePolicy.for_profile("yolo")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"initial_bps": 0}, "slippage.initial_bps: must be positive, got 0"),
        ({"step_bps": -5}, "slippage.step_bps: must be positive, got -5"),
        ({"max_attempts": 0}, "slippage.max_attempts: must be positive"),
        ({"initial_bps": 150, "cap_bps": 100}, "slippage.initial_bps: must be <= cap_bps \\(100\\), got 150"),
        ({"cap_bps": 300, "absolute_cap_bps": 200}, "slippage.cap_bps: must be <= absolute_cap_bps \\(200\\)"),
        ({"absolute_cap_bps": 600, "cap_bps": 600}, "slippage.absolute_cap_bps: must be <= 500 \\(the hard 5% ceiling\\)"),
        ({"initial_bps": 1.5}, "slippage.initial_bps: must be an integer, got float"),
    ],
)
def test_invalid_policies_name_the_field_and_rule(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SlippagePolicy(**fields)  # type: ignore[arg-type]


def test_only_slippage_raises_slippage() -> None:
    policy = SlippagePolicy.for_profile("aggressive")  # 100 -> 150 -> 200
    first = next_slippage(policy, 1, ReasonCode.SLIPPAGE_EXCEEDED, 100)
    assert (first.action, first.slippage_bps, first.next_attempt) == (SlippageAction.RETRY, 150, 2)
    expired = next_slippage(policy, 1, ReasonCode.BLOCKHASH_EXPIRED, 100)
    assert (expired.action, expired.slippage_bps, expired.next_attempt) == (SlippageAction.RETRY, 100, 2)
    assert "re-sign at 100 bps" in expired.detail


@pytest.mark.parametrize(
    "reason", [ReasonCode.PROGRAM_ERROR, ReasonCode.INSUFFICIENT_FUNDS, ReasonCode.RISK_LIMIT, ReasonCode.CANCELLED]
)
def test_other_failures_are_not_retried(reason: ReasonCode) -> None:
    decision = next_slippage(SlippagePolicy(), 1, reason, 100)
    assert not decision.retry and decision.reason is reason and decision.slippage_bps is None


def test_the_ladder_stops_at_max_attempts_with_the_last_reason() -> None:
    policy = SlippagePolicy.for_profile("aggressive")
    decision = next_slippage(policy, 3, ReasonCode.SLIPPAGE_EXCEEDED, 200)
    assert decision.action is SlippageAction.GIVE_UP and decision.reason is ReasonCode.SLIPPAGE_EXCEEDED
    assert "max_attempts 3 reached" in decision.detail


def test_at_the_cap_a_retry_keeps_the_cap() -> None:
    policy = SlippagePolicy.for_profile("moderate")  # initial == cap == 100
    decision = next_slippage(policy, 1, ReasonCode.SLIPPAGE_EXCEEDED)
    assert decision.slippage_bps == 100 and "at the cap" in decision.detail


def test_ladder_bps_without_expiries() -> None:
    policy = SlippagePolicy(initial_bps=100, step_bps=50, cap_bps=220, max_attempts=5)
    assert [ladder_bps(policy, n) for n in range(1, 6)] == [100, 150, 200, 220, 220]


def test_decide_retry_reads_the_trade_and_respects_its_own_bound() -> None:
    trade = new_trade(trade_id=1, strategy="s", vault="v", lead_trader="l", lead_signature="x",
                      input_mint="A", output_mint="B", amount=5, max_slippage_bps=120, at=T0)
    trade = submit(trade, Attempt(trade_id=1, attempt_no=1, signature="s1", raw_tx=b"tx", slippage_bps=100,
                                 last_valid_block_height=10), at=T0)
    trade = resolve_attempt(trade, "s1", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED, at=T0)
    decision = decide_retry(SlippagePolicy.for_profile("aggressive"), trade)
    assert decision.slippage_bps == 120  # the trade's bound, below the profile's 150
    assert submit(trade, Attempt(trade_id=1, attempt_no=2, signature="s2", raw_tx=b"tx",
                                  slippage_bps=decision.slippage_bps, last_valid_block_height=20), at=T0).attempts[-1].slippage_bps == 120


# --- properties ----------------------------------------------------------------------------------

policies = st.builds(
    lambda absolute, cap_share, initial_share, step, attempts: SlippagePolicy(
        initial_bps=max(1, int(max(1, int(absolute * cap_share)) * initial_share)),
        step_bps=step,
        cap_bps=max(1, int(absolute * cap_share)),
        max_attempts=attempts,
        absolute_cap_bps=absolute,
    ),
    st.integers(min_value=1, max_value=ABSOLUTE_CAP_BPS),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=1, max_value=400),
    st.integers(min_value=1, max_value=8),
)


@settings(max_examples=500, deadline=None)
@given(policy=policies, reasons=st.lists(st.sampled_from(list(ReasonCode)), min_size=1, max_size=12))
def test_the_ladder_never_exceeds_the_caps_or_max_attempts(policy: SlippagePolicy, reasons: list[ReasonCode]) -> None:
    """Follow the policy through a random sequence of failures, as an executor would."""
    bps = policy.initial_bps
    attempt = 1
    attempts_made = [bps]
    for reason in reasons:
        decision = next_slippage(policy, attempt, reason, bps)
        if not decision.retry:
            assert decision.reason is reason and decision.slippage_bps is None
            break
        assert decision.next_attempt == attempt + 1
        assert decision.slippage_bps is not None
        if reason is ReasonCode.SLIPPAGE_EXCEEDED:
            assert decision.slippage_bps == min(bps + policy.step_bps, policy.cap_bps)
        else:
            assert decision.slippage_bps == bps  # only slippage raises slippage
        bps, attempt = decision.slippage_bps, decision.next_attempt
        attempts_made.append(bps)
    assert len(attempts_made) <= policy.max_attempts
    assert all(0 < b <= policy.cap_bps <= policy.absolute_cap_bps <= ABSOLUTE_CAP_BPS for b in attempts_made)
    assert attempts_made == sorted(attempts_made)  # slippage never goes down


@settings(max_examples=300, deadline=None)
@given(policy=policies, bound=st.integers(min_value=1, max_value=1000))
def test_bounding_by_a_trade_never_loosens_the_policy(policy: SlippagePolicy, bound: int) -> None:
    bounded = policy.bounded_by(bound)
    assert bounded.cap_bps <= min(policy.cap_bps, bound)
    assert bounded.initial_bps <= bounded.cap_bps
    assert (bounded.step_bps, bounded.max_attempts) == (policy.step_bps, policy.max_attempts)


chain_results = st.sampled_from(
    [
        (AttemptOutcome.LANDED, None),
        (AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED),
        (AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED),
        (AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.PROGRAM_ERROR),
        (AttemptOutcome.NOT_SENT, ReasonCode.INSUFFICIENT_FUNDS),
        (AttemptOutcome.NOT_SENT, ReasonCode.RPC_ERROR),
    ]
)


@settings(max_examples=400, deadline=None)
@given(policy=policies, bound=st.integers(min_value=1, max_value=600), results=st.lists(chain_results, min_size=8, max_size=8))
def test_an_executor_loop_over_the_policy_always_ends_within_the_limits(
    policy: SlippagePolicy, bound: int, results: list[tuple[AttemptOutcome, ReasonCode | None]]
) -> None:
    """Drive a trade with the policy as the executor does, the chain answering at random: the trade
    always ends terminal, within max_attempts, under every cap, with at most one landing."""
    trade = new_trade(trade_id=1, strategy="s", vault="v", lead_trader="l", lead_signature="x",
                      input_mint="A", output_mint="B", amount=5, max_slippage_bps=bound, at=T0)
    bps = policy.bounded_by(bound).initial_bps
    for number, (outcome, reason) in enumerate(results, start=1):
        signature = f"s{number}"
        trade = submit(trade, Attempt(trade_id=1, attempt_no=number, signature=signature, raw_tx=b"tx",
                                       slippage_bps=bps, last_valid_block_height=100), at=T0, max_attempts=policy.max_attempts)
        trade = resolve_attempt(trade, signature, outcome, reason, at=T0)
        if outcome is AttemptOutcome.LANDED:
            trade = confirm(trade, signature, at=T0)
            break
        decision = decide_retry(policy, trade)
        if not decision.retry:
            assert decision.reason is not None
            trade = fail(trade, decision.reason, decision.detail, at=T0)
            break
        assert decision.slippage_bps is not None
        bps = decision.slippage_bps
    assert trade.state.is_terminal
    assert len(trade.attempts) <= policy.max_attempts
    assert all(a.slippage_bps <= min(policy.cap_bps, bound, ABSOLUTE_CAP_BPS) for a in trade.attempts)
    assert sum(a.outcome is AttemptOutcome.LANDED for a in trade.attempts) <= 1
