"""The risk gate's first half (the halts and the trade's valuation) runs while the trade is quoted, and
an attempt that stops (the quote refused) leaves no valuation running behind it.

The swap API, risk gate, signer and ledger are in-process stand-ins for the ports: the point is the
order of the algorithm's own calls, which needs no server."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tests.unit.executor.test_live_signature_wait import TRADE, _Ledger, _Signer
from xorj.chain.errors import QuoteRejectedError
from xorj.domain.risk import ALLOWED, DailyShare
from xorj.domain.slippage import SlippagePolicy
from xorj.domain.trades import ReasonCode
from xorj.executor.ports import RiskAssessment
from xorj.executor.submission import SubmissionSettings, Submitter


class _Quoting:
    """Answers a quote only once the trade's valuation has started (a sequential algorithm never
    gets one), or refuses it."""

    def __init__(self, valuing: asyncio.Event, *, refuse: bool = False) -> None:
        self.valuing = valuing
        self.refuse = refuse

    async def quote(self, **_: Any) -> object:
        await asyncio.wait_for(self.valuing.wait(), timeout=2)
        if self.refuse:
            raise QuoteRejectedError("route", "no route for this pair")
        return type("Q", (), {"model": type("M", (), {"out_amount": 5})()})()

    async def swap_transaction(self, quote: object, vault: object) -> object:
        return object()


class _Valuing:
    def __init__(self, valuing: asyncio.Event) -> None:
        self.valuing = valuing
        self.cancelled = False
        self.assessments: list[RiskAssessment] = []

    async def assess(self, trade: object) -> RiskAssessment:
        self.valuing.set()
        try:
            await asyncio.sleep(0.05)  # the valuation's reads
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        assessment = RiskAssessment()
        self.assessments.append(assessment)
        return assessment

    async def check(self, trade: object, quote: object, assessment: RiskAssessment | None = None) -> DailyShare:
        assert assessment is not None and assessment in self.assessments, "checked with the attempt's assessment"
        return DailyShare(Decimal(1), lambda usage: ALLOWED)


def _attempt(*, refuse: bool) -> tuple[str | None, _Ledger, _Valuing]:
    ledger = _Ledger()
    holder: list[_Valuing] = []

    async def run() -> str | None:
        valuing = asyncio.Event()
        risk = _Valuing(valuing)
        holder.append(risk)
        submitter = Submitter(rpc=None, swap_api=_Quoting(valuing, refuse=refuse), signer=_Signer(0),  # type: ignore[arg-type]
                              ledger=ledger, policy=SlippagePolicy(), risk=risk,  # type: ignore[arg-type]
                              settings=SubmissionSettings())
        signature = await submitter._new_attempt(TRADE, 100)
        await asyncio.sleep(0.1)  # a valuation left running would end (or be seen cancelled) by now
        return signature

    signature = asyncio.run(run())
    return signature, ledger, holder[0]


def test_the_trade_is_valued_while_it_is_quoted_and_checked_with_that_valuation():
    signature, ledger, risk = _attempt(refuse=False)
    assert signature == "sig-2" and not ledger.failed
    assert len(risk.assessments) == 1 and not risk.cancelled


def test_a_refused_quote_fails_the_trade_and_stops_its_valuation():
    signature, ledger, risk = _attempt(refuse=True)
    assert signature is None and not ledger.recorded
    assert [reason for reason, _ in ledger.failed] == [ReasonCode.QUOTE_REJECTED]
    assert risk.cancelled and not risk.assessments
