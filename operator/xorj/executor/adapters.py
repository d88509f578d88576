"""Adapters between the submission algorithm's ports and the real parts: the (synchronous) Postgres
ledger run in worker threads, and the risk gate over :mod:`xorj.domain.risk` with the ledger's
counts (checked and reserved atomically per vault by the ledger)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from xorj.chain.jupiter import Quote
from xorj.domain.risk import (
    BreakerEvent,
    BreakerStatus,
    CircuitBreaker,
    DailyUsage,
    KillSwitch,
    RiskDecision,
    RiskLimits,
    RiskRule,
    TradeRisk,
    check_trade,
)
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import LedgerUnavailableError
from xorj.ledger.records import AlertSeverity, NewAlert, Trade
from xorj.ledger.repository import Ledger

# Outcomes that say something about the system's health (what breakers count). Refusals and
# cancellations are decisions, not failures: counting them would keep an open breaker open.
NOT_SYSTEM_FAILURES = frozenset({ReasonCode.RISK_LIMIT, ReasonCode.CANCELLED})


# Which trade failures also go to the alert outbox (written in the same transaction as the failure).
FAILURE_ALERTS: dict[ReasonCode, tuple[str, AlertSeverity]] = {
    ReasonCode.SLIPPAGE_EXCEEDED: ("ONCHAIN_FAILURE", AlertSeverity.WARNING),
    ReasonCode.PROGRAM_ERROR: ("ONCHAIN_FAILURE", AlertSeverity.CRITICAL),
    ReasonCode.INSUFFICIENT_FUNDS: ("ONCHAIN_FAILURE", AlertSeverity.CRITICAL),
    ReasonCode.RPC_TIMEOUT: ("RPC_FAILURE", AlertSeverity.WARNING),
    ReasonCode.RPC_ERROR: ("RPC_FAILURE", AlertSeverity.WARNING),
    ReasonCode.MALFORMED_RESPONSE: ("RPC_FAILURE", AlertSeverity.CRITICAL),
    ReasonCode.QUOTE_UNAVAILABLE: ("RPC_FAILURE", AlertSeverity.WARNING),
    # the swap API answered something the vault must not sign: someone may be attacking it
    ReasonCode.SWAP_REJECTED: ("SWAP_REJECTED", AlertSeverity.CRITICAL),
    ReasonCode.QUOTE_REJECTED: ("QUOTE_REJECTED", AlertSeverity.CRITICAL),
}


class OwnedLedger:
    """The ledger as one executor (``owner``) sees it: async, every write fenced by its lease."""

    def __init__(self, ledger: Ledger, owner: str, on_result: Callable[[bool], None] | None = None,
                 strategy: str | None = None) -> None:
        self.ledger = ledger
        self.owner = owner
        self.strategy = strategy
        self._on_result = on_result or (lambda ok: None)

    async def _call(self, fn, *args, **kwargs):
        try:
            result = await asyncio.to_thread(fn, *args, **kwargs)
        except LedgerUnavailableError:
            self._on_result(False)
            raise
        self._on_result(True)
        return result

    async def load(self, trade_id: int) -> Trade:
        return await self._call(self.ledger.get_trade, trade_id)

    async def record_attempt(self, trade_id: int, *, attempt_no: int, signature: str, raw_tx: bytes,
                             last_valid_block_height: int, slippage_bps: int, quote_out_amount: int | None) -> None:
        del attempt_no  # the ledger numbers attempts itself (max + 1, under the row lock)
        await self._call(self.ledger.record_attempt, trade_id, self.owner, signature, raw_tx,
                         last_valid_block_height, slippage_bps, quote_out_amount)

    async def resolve_attempt(self, trade_id: int, signature: str, outcome: AttemptOutcome,
                              reason: ReasonCode | None, detail: str | None) -> None:
        del trade_id
        await self._call(self.ledger.resolve_attempt, signature, self.owner, outcome, reason, detail)

    async def confirm(self, trade_id: int, signature: str) -> None:
        await self._call(self.ledger.confirm_trade, trade_id, self.owner, signature)

    async def fail(self, trade_id: int, reason: ReasonCode, detail: str) -> None:
        alert = None
        if reason in FAILURE_ALERTS:
            kind, severity = FAILURE_ALERTS[reason]
            alert = NewAlert(kind, severity, f"trade {trade_id} FAILED {reason.value}: {detail}"[:1000],
                             strategy=self.strategy, trade_id=trade_id)
        await self._call(self.ledger.fail_trade, trade_id, self.owner, reason, detail, alert=alert)


class LedgerRiskGate:
    """Risk limits before any send: kill switches, breaker, notional, daily volume/count, position
    share (when the vault's value is configured), price impact of the quote.

    An allowed trade is counted against its vault's daily limits in the same ledger transaction that
    read them (:meth:`Ledger.reserve_daily_share`, fenced by ``owner``'s lease), so executors checking
    trades of one vault at once cannot all take the last slot."""

    def __init__(self, ledger: Ledger, *, strategy: str, owner: str, limits: RiskLimits, kill_switch: KillSwitch,
                 breaker: CircuitBreaker, usd_prices: dict[str, Decimal] | None = None,
                 vault_value_usd: Decimal | None = None,
                 on_breaker: Callable[[BreakerStatus], None] | None = None) -> None:
        self.ledger = ledger
        self.strategy = strategy
        self.owner = owner
        self.limits = limits
        self.kill_switch = kill_switch
        self.breaker = breaker
        self.usd_prices = dict(usd_prices or {})
        self.vault_value_usd = vault_value_usd
        self._on_breaker = on_breaker or (lambda status: None)
        self._breaker_cache: tuple[float, BreakerStatus] | None = None

    def notional_usd(self, trade: Trade) -> Decimal | None:
        if trade.notional_usd is not None and trade.notional_usd > 0:
            return trade.notional_usd
        price = self.usd_prices.get(trade.input_mint)
        return None if price is None else price * trade.amount

    async def breaker_status(self) -> BreakerStatus:
        now_mono = time.monotonic()
        if self._breaker_cache is not None and now_mono - self._breaker_cache[0] < 1.0:
            return self._breaker_cache[1]
        now = datetime.now(UTC)
        since = now - self.breaker.window - self.breaker.open_for
        outcomes = await asyncio.to_thread(self.ledger.recent_outcomes, self.strategy, since)
        events = [BreakerEvent(o.at, o.state is TradeState.CONFIRMED) for o in outcomes
                  if o.reason not in NOT_SYSTEM_FAILURES]
        status = self.breaker.status(events, now)
        self._breaker_cache = (now_mono, status)
        self._on_breaker(status)
        return status

    async def check(self, trade: Trade, quote: Quote) -> RiskDecision:
        notional = self.notional_usd(trade)
        if notional is None:
            return RiskDecision(False, RiskRule.MAX_TRADE_NOTIONAL,
                                f"{RiskRule.MAX_TRADE_NOTIONAL.value}: the trade's USD notional is unknown "
                                f"(no notional_usd and no price for {trade.input_mint}); refusing rather than "
                                "trading unchecked")
        breaker = await self.breaker_status()
        position = None
        vault_value = self.vault_value_usd if self.vault_value_usd is not None else Decimal(0)
        if self.vault_value_usd is not None:
            position = Decimal(0)
        risk = TradeRisk(notional_usd=notional, vault_value_usd=vault_value,
                         price_impact=Decimal(str(quote.model.price_impact_pct)), output_position_usd=position)

        def decide(usage: DailyUsage) -> RiskDecision:
            return check_trade(self.limits, risk, usage, kill_switch=self.kill_switch, breaker=breaker)

        return await asyncio.to_thread(self.ledger.reserve_daily_share, trade.trade_id, self.owner, notional, decide)


def breaker_from(failures_in_window: int, window_s: float, failures_in_a_row: int, open_s: float) -> CircuitBreaker:
    return CircuitBreaker(failures_in_window=failures_in_window, window=timedelta(seconds=window_s),
                          failures_in_a_row=failures_in_a_row, open_for=timedelta(seconds=open_s))
