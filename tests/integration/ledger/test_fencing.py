"""Fencing tokens on the real ledger: every claim of a trade gets a larger token, and a holder whose
claim was replaced, even by a claim under the SAME owner name (its own process re-claiming the trade
after a pause, or a restarted executor with the same identity), has every write refused and changes
nothing. The owner name alone cannot tell the two claims apart."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from xorj.domain.risk import DailyUsage, RiskDecision
from xorj.domain.slippage import SlippageAction, SlippagePolicy, next_slippage
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import InvalidInputError, LeaseLostError
from xorj.ledger import Ledger

from .helpers import intent, raw_tx

LEASE = 0.6  # seconds; the stale holder is "paused" past it


def _allow(usage: DailyUsage) -> RiskDecision:
    return RiskDecision(True)


def _pause_past_lease() -> None:
    time.sleep(LEASE + 0.4)


def test_every_claim_and_takeover_gets_a_larger_token(ledger: Ledger):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    assert ledger.get_trade(trade_id).fencing_token is None  # never claimed
    tokens = []
    for owner in ("ex", "ex", "other", "ex"):
        [claim] = ledger.claim_trades("alpha", owner, limit=1, lease_seconds=LEASE)
        assert claim.trade_id == trade_id and claim.lease_owner == owner
        assert ledger.get_trade(trade_id).fencing_token == claim.fencing_token
        tokens.append(claim.fencing_token)
        _pause_past_lease()
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens


def test_a_stale_holder_with_the_same_owner_name_cannot_write_after_a_reclaim(ledger: Ledger):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    [stale] = ledger.claim_trades("alpha", "ex", limit=1, lease_seconds=LEASE)
    ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 777, 100, fencing_token=stale.fencing_token)
    _pause_past_lease()  # the holder is paused (SIGSTOP, a long GC, a blocked loop) past its lease
    [fresh] = ledger.claim_trades("alpha", "ex", limit=1, lease_seconds=60)  # same owner name
    assert fresh.fencing_token > stale.fencing_token
    before = ledger.get_trade(trade_id)
    events_before = ledger.trade_events(trade_id)
    old = stale.fencing_token

    # The stale holder wakes up: its lease check alone (same owner, a live lease) would pass.
    with pytest.raises(LeaseLostError, match=f"fencing token {old} is stale"):
        ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, fencing_token=old)
    with pytest.raises(LeaseLostError, match="stale"):
        ledger.confirm_trade(trade_id, "ex", "sig-1", fencing_token=old)
    with pytest.raises(LeaseLostError, match="stale"):
        ledger.fail_trade(trade_id, "ex", ReasonCode.RPC_TIMEOUT, "stale view", fencing_token=old)
    with pytest.raises(LeaseLostError, match="stale"):
        ledger.reserve_daily_share(trade_id, "ex", Decimal(10), _allow, fencing_token=old)
    assert ledger.heartbeat({trade_id: old}, "ex", lease_seconds=600) == set()
    assert ledger.release(trade_id, "ex", fencing_token=old) is False

    after = ledger.get_trade(trade_id)
    assert after == before  # nothing changed: attempts, state, lease (expiry included), token
    assert ledger.trade_events(trade_id) == events_before

    # The current claim carries on: it resolves the stored attempt and a new one confirms the trade.
    ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                           fencing_token=fresh.fencing_token)
    with pytest.raises(LeaseLostError, match="stale"):  # still fenced with no attempt pending
        ledger.record_attempt(trade_id, "ex", "sig-stale", raw_tx("stale"), 900, 100, fencing_token=old)
    ledger.record_attempt(trade_id, "ex", "sig-2", raw_tx("2"), 900, 100, fencing_token=fresh.fencing_token)
    confirmed = ledger.confirm_trade(trade_id, "ex", "sig-2", fencing_token=fresh.fencing_token)
    assert (confirmed.state, confirmed.final_signature) == (TradeState.CONFIRMED, "sig-2")
    assert [a.signature for a in confirmed.attempts] == ["sig-1", "sig-2"]


def test_a_stale_holder_cannot_add_an_attempt_past_max_attempts(ledger: Ledger):
    """The case issue 12 names: a holder decided "one more attempt" from the trade as it was before
    its pause; meanwhile its replacement made that attempt and reached maxAttempts. Fenced by owner
    name only, the stale attempt was recorded (attempt 4 of 3) and would have been sent."""
    policy = SlippagePolicy(initial_bps=100, step_bps=50, cap_bps=500, max_attempts=3)
    trade_id = ledger.admit_trade(intent(1)).trade_id
    [stale] = ledger.claim_trades("alpha", "ex", limit=1, lease_seconds=LEASE)
    for n in (1, 2):
        ledger.record_attempt(trade_id, "ex", f"sig-{n}", raw_tx(str(n)), 100 * n, 100,
                              fencing_token=stale.fencing_token)
        ledger.resolve_attempt(f"sig-{n}", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                               fencing_token=stale.fencing_token)
    stale_view = ledger.get_trade(trade_id)
    stale_decision = next_slippage(policy, stale_view.attempts[-1].attempt_no, ReasonCode.BLOCKHASH_EXPIRED, 100)
    assert stale_decision.action is SlippageAction.RETRY  # from its view, attempt 3 is still allowed
    _pause_past_lease()  # ... and it is paused before recording it

    [fresh] = ledger.claim_trades("alpha", "ex", limit=1, lease_seconds=60)
    ledger.record_attempt(trade_id, "ex", "sig-3", raw_tx("3"), 300, 100, fencing_token=fresh.fencing_token)
    ledger.resolve_attempt("sig-3", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                           fencing_token=fresh.fencing_token)
    fresh_view = ledger.get_trade(trade_id)
    assert next_slippage(policy, fresh_view.attempts[-1].attempt_no, ReasonCode.BLOCKHASH_EXPIRED,
                         100).action is SlippageAction.GIVE_UP

    # The stale holder wakes between its replacement's resolve and its fail: no attempt is pending,
    # the trade is open, the owner name and the lease match. Only the token refuses it.
    with pytest.raises(LeaseLostError, match="stale"):
        ledger.record_attempt(trade_id, "ex", "sig-stale", raw_tx("stale"), 400, stale_decision.slippage_bps,
                              fencing_token=stale.fencing_token)
    assert [a.attempt_no for a in ledger.get_trade(trade_id).attempts] == [1, 2, 3]

    failed = ledger.fail_trade(trade_id, "ex", ReasonCode.BLOCKHASH_EXPIRED, "3 attempts expired",
                               fencing_token=fresh.fencing_token)
    assert (failed.state, len(failed.attempts)) == (TradeState.FAILED, 3)


def test_the_token_is_required_and_validated(ledger: Ledger):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    [claim] = ledger.claim_trades("alpha", "ex", limit=1)
    for bad in (None, 0, -1, True, "1"):
        with pytest.raises(InvalidInputError, match="fencing_token"):
            ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1, 100, fencing_token=bad)
        with pytest.raises(InvalidInputError, match="fencing_token"):
            ledger.heartbeat({trade_id: bad}, "ex")
    with pytest.raises(TypeError):
        ledger.confirm_trade(trade_id, "ex", "sig-1")  # type: ignore[call-arg]  # no unfenced write
    # A token of another claim (never this trade's) is refused like a stale one.
    with pytest.raises(LeaseLostError, match="stale"):
        ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1, 100, fencing_token=claim.fencing_token + 1)
    assert ledger.get_trade(trade_id).attempts == ()
