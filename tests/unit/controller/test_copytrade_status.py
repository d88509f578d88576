"""The CopyTrade status builder (pure): ledger trades map onto the CopyTrade's status; admission; TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xorj.controller.copytrade import status as st
from xorj.controller.models import ConditionStatus
from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, Trade, TradeState
from xorj.ledger.records import AdmitResult

from .factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, SIGNATURE, VAULT

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _cond(status, type_):
    return next(c for c in status.conditions if c.type == type_)


def _trade(state: TradeState, attempts=(), **kw) -> Trade:
    base = dict(
        trade_id=7, strategy="ns/alpha", vault=VAULT, lead_signature=SIGNATURE, lead_trader=PUBKEY_A,
        input_mint=PUBKEY_B, output_mint=PUBKEY_C, amount=10, max_slippage_bps=None, notional_usd=None,
        copytrade="ns/ct1", state=state, reason=None, detail=None, final_signature=None, lease_owner=None,
        lease_expires_at=None, created_at=T0, updated_at=T0, submitted_at=None, finished_at=None,
        attempts=tuple(attempts),
    )
    base.update(kw)
    return Trade(**base)


def _attempt(no: int, outcome: AttemptOutcome, reason=None) -> Attempt:
    return Attempt(
        attempt_id=no, trade_id=7, attempt_no=no, signature=f"sig{no}", raw_tx=b"x", last_valid_block_height=5,
        slippage_bps=100 * no, quote_out_amount=None, outcome=outcome, reason=reason, detail=None,
        created_at=T0, resolved_at=None,
    )


def test_copytrade_status_mirrors_attempts_and_outcome() -> None:
    attempts = [
        _attempt(1, AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED),
        _attempt(2, AttemptOutcome.LANDED),
    ]
    trade = _trade(TradeState.CONFIRMED, attempts, final_signature="sig2", submitted_at=T0, finished_at=T0)
    s = st.copytrade_status(trade=trade, previous=None, generation=1, now=T0)
    wire = s.to_wire()
    assert wire["phase"] == "CONFIRMED"
    assert wire["attemptCount"] == 2
    assert wire["attempts"][0] == {
        "number": 1, "signature": "sig1", "slippageBps": 100, "outcome": "FAILED_ON_CHAIN",
        "reason": "SLIPPAGE_EXCEEDED", "createdAt": "2026-01-01T00:00:00Z",
    }
    assert wire["finalSignature"] == "sig2"
    assert _cond(s, st.TERMINAL).status is ConditionStatus.TRUE


def test_copytrade_failed_carries_reason() -> None:
    trade = _trade(TradeState.FAILED, reason=ReasonCode.RISK_LIMIT, detail="max trade notional", finished_at=T0)
    s = st.copytrade_status(trade=trade, previous=None, generation=1, now=T0)
    assert s.error_reason == "RISK_LIMIT" and s.error_message == "max trade notional"
    assert _cond(s, st.TERMINAL).reason == "Failed"


def test_duplicate_admission_names_the_owner() -> None:
    replay = AdmitResult(trade_id=7, created=False, existing_state=TradeState.SUBMITTED)
    fields = st.admission_fields(replay, "ns/ct2", owner="ns/ct1")
    assert fields["admission"] == "Duplicate"
    assert "ns/ct1" in fields["admissionMessage"]
    fresh = AdmitResult(trade_id=8, created=True, existing_state=None)
    assert st.admission_fields(fresh, "ns/ct2", owner="ns/ct2")["admission"] == "Admitted"


def test_ttl_remaining() -> None:
    assert st.ttl_remaining(None, 10, T0) is None
    assert st.ttl_remaining(T0, None, T0) is None
    assert st.ttl_remaining(T0, 10, T0 + timedelta(seconds=4)) == 6
    assert st.ttl_remaining(T0, 10, T0 + timedelta(seconds=40)) == 0


def test_failed_trade_detail_reaches_status_without_url_credentials() -> None:
    trade = _trade(TradeState.FAILED, reason=ReasonCode.RPC_ERROR, finished_at=T0,
                   detail="getLatestBlockhash at https://rpc.example/?api-key=s3cr3t: HTTP 500")
    status = st.copytrade_status(trade=trade, previous=None, generation=1, now=T0)
    assert "s3cr3t" not in status.error_message and "api-key=REDACTED" in status.error_message
    assert all("s3cr3t" not in c.message for c in status.conditions)
