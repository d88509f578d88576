"""What admission makes of a CopyTrade under its strategy (pure: no I/O).

- The lead trader must be one the strategy follows: one of ``spec.traders``, or, with ``spec.topN``,
  one of the best N eligible wallets in the ledger's trader scores now, or in the ranking of the
  TraderPool ``spec.topN.pool`` names (the same selection the strategy's status shows). Any other lead is refused: its trade is stored already FAILED with
  LEADER_NOT_FOLLOWED, so no executor ever claims it, and the CopyTrade's status says why.
- ``spec.sizing`` decides the follower's amount: the CopyTrade's ``amount`` is the LEAD's input amount
  (what the watcher saw); mode ``fixed`` trades ``fixedAmount`` base units, mode ``proportional``
  trades ``amount x ratio`` rounded down (ratio 1, the default, copies the lead's size); the USD
  modes (fixedUsd, vaultPercent) need a price and a vault value, which the watcher has and this
  manual path does not: here they copy ``amount x ratio`` as proportional does. A stated
  ``notionalUsd`` is scaled the same way; it is informational only (executors value trades themselves).
  A size that rounds to 0 base units is refused (RISK_LIMIT, detail "sizing: ...").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from xorj.controller.models import (
    CopyTradeSpec,
    RankedTrader,
    SizingMode,
    TradingStrategySpec,
)
from xorj.controller.tradingstrategy.status import followed_traders
from xorj.domain.sizing import follower_amount
from xorj.domain.trades import ReasonCode
from xorj.ledger.records import StoredTraderScore


@dataclass(frozen=True, slots=True)
class AdmissionDecision:
    amount: int  # the follower's input amount, base units (0 when refused for its size)
    notional_usd: Decimal | None  # the stated notional, scaled like the amount
    refusal: ReasonCode | None = None
    detail: str = ""

    @property
    def refused(self) -> bool:
        return self.refusal is not None


def needs_scores(strategy: TradingStrategySpec) -> bool:
    """Whether deciding needs the ledger's trader scores (topN selection)."""
    return strategy.traders is None


def needs_pool(strategy: TradingStrategySpec) -> str | None:
    """The TraderPool whose ranking decides who is followed (``spec.topN.pool``), if any."""
    return strategy.top_n.pool if strategy.top_n is not None else None


def decide(strategy: TradingStrategySpec, copytrade: CopyTradeSpec,
           scores: Sequence[StoredTraderScore] = (),
           pool_ranks: Sequence[RankedTrader] | None = None) -> AdmissionDecision:
    followed = {t.wallet for t in followed_traders(strategy, scores, pool_ranks)}
    sizing = strategy.sizing
    if sizing.mode is SizingMode.FIXED:
        amount = follower_amount(copytrade.amount, fixed_amount=sizing.fixed_amount)
        how = f"fixed {sizing.fixed_amount} base units"
    else:
        ratio = Decimal(str(sizing.ratio))
        amount = follower_amount(copytrade.amount, ratio=ratio)
        how = f"lead amount {copytrade.amount} x ratio {ratio}"
    notional = None
    if copytrade.notional_usd is not None:
        notional = Decimal(str(copytrade.notional_usd)) * Decimal(amount) / Decimal(copytrade.amount)
    if copytrade.lead_trader not in followed:
        pool = needs_pool(strategy)
        which = ("spec.traders" if strategy.traders is not None
                 else f"the top {strategy.top_n.count} eligible traders by Trust Score"  # type: ignore[union-attr]
                 + (f" of TraderPool {pool}" if pool else ""))
        return AdmissionDecision(amount, notional, ReasonCode.LEADER_NOT_FOLLOWED,
                                 f"lead trader {copytrade.lead_trader} is not followed by the strategy "
                                 f"(not in {which})")
    if amount <= 0:
        return AdmissionDecision(0, notional, ReasonCode.RISK_LIMIT, f"sizing: {how} rounds down to 0 base units")
    return AdmissionDecision(amount, notional)


__all__ = ["AdmissionDecision", "decide", "needs_pool", "needs_scores"]
