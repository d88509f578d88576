"""Where the risk gate's decision takes effect in an attempt: a refusal of the gate's check comes before
the swap is built (an open breaker or a halt stops the calls to the swap API) and so before anything
is signed; the trade's daily share travels with its write-ahead record, and the ledger's
refusal of it there fails the trade with the refusal's own words, the signed bytes dropped unrecorded.

The swap API, risk gate, signer and ledger are in-process stand-ins for the ports (the ledger side of
the same rule runs on Postgres in tests/integration/executor/test_risk_gate.py)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tests.unit.executor.test_live_signature_wait import TRADE, _Ledger, _Signer, _SwapApi
from xorj.domain.risk import ALLOWED, DailyShare, RiskDecision, RiskRefusedError, RiskRule
from xorj.domain.slippage import SlippagePolicy
from xorj.domain.trades import ReasonCode, Trade
from xorj.executor.submission import SubmissionSettings, Submitter

OVER_THE_DAY = RiskDecision(False, RiskRule.MAX_DAILY_TRADES, "risk.max_daily_trades: 3 trades today already")
OVER_THE_DAY_USAGE = object()  # stands for the vault's usage the ledger reads
TOO_BIG = RiskDecision(False, RiskRule.MAX_TRADE_NOTIONAL, "risk.max_trade_notional: 2000 USD is over 1000 USD")


class _Gate:
    def __init__(self, answer: RiskDecision | DailyShare) -> None:
        self.answer = answer

    async def assess(self, trade: Trade) -> None:
        return None

    async def check(self, trade: Trade, quote: object, assessment: object = None) -> RiskDecision | DailyShare:
        return self.answer


class _CountingSwapApi(_SwapApi):
    def __init__(self) -> None:
        self.built = 0

    async def swap_transaction(self, quote: object, vault: Any) -> object:
        self.built += 1
        return await super().swap_transaction(quote, vault)


class _CountingSigner(_Signer):
    def __init__(self) -> None:
        super().__init__(0)
        self.signed = 0

    async def sign_swap(self, trade: Trade, answer: object, quote: Any) -> object:
        self.signed += 1
        return await super().sign_swap(trade, answer, quote)


class _RefusingLedger(_Ledger):
    """Refuses the daily share as the ledger's write-ahead transaction does (nothing recorded)."""

    async def record_attempt(self, trade_id: int, **fields: Any) -> None:
        share = fields["share"]
        decision = share.decide(OVER_THE_DAY_USAGE)
        if not decision.allowed:
            raise RiskRefusedError(decision)
        await super().record_attempt(trade_id, **fields)


def _attempt(gate: _Gate, ledger: _Ledger, swap_api: _CountingSwapApi | None = None
             ) -> tuple[str | None, _CountingSigner]:
    signer = _CountingSigner()

    async def run() -> str | None:
        submitter = Submitter(rpc=None, swap_api=swap_api or _SwapApi(), signer=signer, ledger=ledger,  # type: ignore[arg-type]
                              policy=SlippagePolicy(), risk=gate, settings=SubmissionSettings())  # type: ignore[arg-type]
        return await submitter._new_attempt(TRADE, 100)

    return asyncio.run(run()), signer


def test_a_refusal_of_the_check_fails_the_trade_before_its_swap_is_built():
    ledger, swap_api = _Ledger(), _CountingSwapApi()
    signature, signer = _attempt(_Gate(TOO_BIG), ledger, swap_api)
    assert signature is None and swap_api.built == 0 and signer.signed == 0 and not ledger.recorded
    assert ledger.failed == [(ReasonCode.RISK_LIMIT, TOO_BIG.message)]


def test_the_daily_share_travels_with_the_write_ahead_record():
    share = DailyShare(Decimal("12.5"), lambda usage: ALLOWED)
    ledger = _Ledger()
    signature, signer = _attempt(_Gate(share), ledger)
    assert signature == "sig-2" and signer.signed == 1 and not ledger.failed
    assert [(r["signature"], r["share"]) for r in ledger.recorded] == [("sig-2", share)]


def test_a_daily_share_the_ledger_refuses_fails_the_trade_with_its_words_and_records_nothing():
    share = DailyShare(Decimal("12.5"), lambda usage: OVER_THE_DAY if usage is OVER_THE_DAY_USAGE else ALLOWED)
    ledger = _RefusingLedger()
    signature, signer = _attempt(_Gate(share), ledger)
    assert signature is None and signer.signed == 1  # signed, then dropped: never recorded, so never sent
    assert not ledger.recorded
    assert ledger.failed == [(ReasonCode.RISK_LIMIT, OVER_THE_DAY.message)]
