"""A signer that refuses a new signature because its earlier one for the same attempt is unrecorded
and still valid (SIGNED_NOT_RECORDED: the write-ahead commit was lost in a ledger outage) makes the
executor wait for that signature's expiry, not fail the trade after its RPC patience. The chaos
experiment ledger-partition-networkpolicy met it: a trade signed just before the cut FAILED
BLOCKHASH_EXPIRED once 30 s of patience ran out, while the earlier signature lived about 60 s.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from solders.pubkey import Pubkey

from xorj.domain.risk import ALLOWED, DailyShare
from xorj.domain.signing import SigningRefusal
from xorj.domain.slippage import SlippagePolicy
from xorj.domain.trades import ReasonCode, Trade, TradeState
from xorj.executor.signing import EarlierSignatureLiveError, RefusalAnswer, refusal_error
from xorj.executor.submission import SubmissionSettings, Submitter

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TRADE = Trade(trade_id=7, strategy="s", vault="v", lead_signature="l", lead_trader="t", input_mint="a",
              output_mint="b", amount=1_000, max_slippage_bps=None, notional_usd=None, copytrade=None,
              state=TradeState.PENDING, reason=None, detail=None, final_signature=None, lease_owner=None,
              lease_expires_at=None, created_at=NOW, updated_at=NOW, submitted_at=None, finished_at=None)


class _SwapApi:
    async def quote(self, **_: Any) -> object:
        return SimpleNamespace(model=SimpleNamespace(out_amount=5))

    async def swap_transaction(self, quote: object, vault: Pubkey) -> object:
        return object()


class _Risk:
    async def assess(self, trade: Trade) -> object:
        return None

    async def check(self, trade: Trade, quote: object, assessment: object = None) -> DailyShare:
        return DailyShare(Decimal(1), lambda usage: ALLOWED)


class _Signer:
    """Refuses ``refusals`` times as the signer does for a live unrecorded signature, then signs."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals

    async def public_key(self, vault: str) -> Pubkey:
        return Pubkey.default()

    async def sign_swap(self, trade: Trade, answer: object, quote: Any) -> object:
        if self.refusals > 0:
            self.refusals -= 1
            raise refusal_error(RefusalAnswer(refused=SigningRefusal.SIGNED_NOT_RECORDED,
                                              detail="attempt 1 was signed and is not in the ledger",
                                              reason=ReasonCode.BLOCKHASH_EXPIRED))
        return SimpleNamespace(signature="sig-2", tx_bytes=b"tx", last_valid_block_height=300, quote=quote)


class _Ledger:
    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []
        self.failed: list[tuple[ReasonCode, str]] = []

    async def record_attempt(self, trade_id: int, **fields: Any) -> None:
        self.recorded.append(fields)

    async def fail(self, trade_id: int, reason: ReasonCode, detail: str) -> None:
        self.failed.append((reason, detail))


def _attempt(refusals: int, settings: SubmissionSettings) -> tuple[str | None, _Ledger, float]:
    ledger = _Ledger()
    waited = 0.0

    async def sleep(seconds: float) -> None:
        nonlocal waited
        waited += seconds

    async def run() -> str | None:
        submitter = Submitter(rpc=None, swap_api=_SwapApi(), signer=_Signer(refusals), ledger=ledger,  # type: ignore[arg-type]
                              policy=SlippagePolicy(), risk=_Risk(), settings=settings, sleep=sleep)
        return await submitter._new_attempt(TRADE, 100)

    return asyncio.run(run()), ledger, waited


def test_the_signers_live_signature_refusal_is_its_own_error():
    error = refusal_error(RefusalAnswer(refused=SigningRefusal.SIGNED_NOT_RECORDED, detail="d",
                                        reason=ReasonCode.BLOCKHASH_EXPIRED))
    assert isinstance(error, EarlierSignatureLiveError) and error.reason is ReasonCode.BLOCKHASH_EXPIRED


def test_a_live_earlier_signature_is_waited_out_past_the_rpc_patience():
    settings = SubmissionSettings(prepare_rpc_patience=30.0)
    signature, ledger, waited = _attempt(refusals=14, settings=settings)
    assert waited > settings.prepare_rpc_patience  # longer than the RPC patience would have allowed
    assert signature == "sig-2" and not ledger.failed
    assert [r["signature"] for r in ledger.recorded] == ["sig-2"]


def test_a_signature_that_never_expires_fails_the_trade_after_its_own_patience():
    settings = SubmissionSettings(prepare_live_signature_patience=20.0)
    signature, ledger, waited = _attempt(refusals=10_000, settings=settings)
    assert signature is None and not ledger.recorded
    assert [reason for reason, _ in ledger.failed] == [ReasonCode.BLOCKHASH_EXPIRED]
    assert settings.prepare_live_signature_patience <= waited < settings.prepare_live_signature_patience + 20
