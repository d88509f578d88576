"""What the signer boundary decides from the ledger's trade alone (pure): a new attempt only for a
PENDING trade or a SUBMITTED one whose attempts all ended without landing, and one live signature per
attempt until the ledger records it or its validity is past."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xorj.domain.signing import (
    IssuedSignature,
    SigningRefusal,
    new_attempt_refusal,
    unrecorded_signature_refusal,
)
from xorj.domain.trades import (
    Attempt,
    AttemptOutcome,
    ReasonCode,
    fail,
    land,
    new_trade,
    resolve_attempt,
    submit,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _pending():
    return new_trade(trade_id=7, strategy="ns/s", vault="v", lead_trader="l", lead_signature="x",
                     input_mint="A", output_mint="B", amount=5, at=T0)


def _submitted(signature: str = "s1"):
    return submit(_pending(), Attempt(trade_id=7, attempt_no=1, signature=signature, raw_tx=b"tx", slippage_bps=50,
                                      last_valid_block_height=100), at=T0)


@pytest.mark.parametrize("trade, code", [
    (_pending(), None),
    (_submitted(), SigningRefusal.ATTEMPT_IN_FLIGHT),
    (resolve_attempt(_submitted(), "s1", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, at=T0), None),
    (resolve_attempt(_submitted(), "s1", AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED, at=T0), None),
    (resolve_attempt(_submitted(), "s1", AttemptOutcome.LANDED, at=T0), SigningRefusal.TRADE_STATE),
    (land(_submitted(), "s1", at=T0), SigningRefusal.TRADE_STATE),
    (fail(_pending(), ReasonCode.RISK_LIMIT, "no", at=T0), SigningRefusal.TRADE_STATE),
])
def test_a_new_attempt_only_where_the_algorithm_signs_again(trade, code):
    refusal = new_attempt_refusal(trade)
    assert (refusal.code if refusal else None) is code
    if refusal:
        assert str(trade.trade_id) in refusal.detail


def test_one_live_signature_per_attempt():
    issued = IssuedSignature(attempt_no=1, signature="s1", last_valid_block_height=100)
    pending = _pending()
    refused = unrecorded_signature_refusal(pending, issued, block_height=100)
    assert refused is not None and refused.code is SigningRefusal.SIGNED_NOT_RECORDED and "100" in refused.detail
    assert unrecorded_signature_refusal(pending, issued, block_height=None) is not None  # unknown height: refuse
    assert unrecorded_signature_refusal(pending, issued, block_height=101) is None  # past its validity
    assert unrecorded_signature_refusal(_submitted(), issued, block_height=50) is None  # recorded: the ledger decides
    assert unrecorded_signature_refusal(pending, None, block_height=None) is None
