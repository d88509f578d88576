"""Admission's decision: the lead trader must be followed by the strategy, and spec.sizing sets the
follower's amount."""

from __future__ import annotations

from decimal import Decimal

from xorj.controller.admission import decide, needs_scores
from xorj.controller.models import CopyTradeSpec, TradingStrategySpec
from xorj.domain.trades import ReasonCode
from xorj.ledger.records import StoredTraderScore

from .factories import PUBKEY_A, VAULT, copytrade_spec, strategy_spec

OTHER = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"


def _strategy(**overrides) -> TradingStrategySpec:
    return TradingStrategySpec.model_validate(strategy_spec(**overrides))


def _copytrade(**overrides) -> CopyTradeSpec:
    return CopyTradeSpec.model_validate(copytrade_spec(**overrides))


def test_a_listed_leader_is_admitted_at_the_lead_size_by_default() -> None:
    decision = decide(_strategy(), _copytrade(notionalUsd=12.5))
    assert not decision.refused
    assert (decision.amount, decision.notional_usd) == (1_000_000, Decimal("12.5"))
    assert not needs_scores(_strategy())


def test_an_unlisted_leader_is_refused() -> None:
    decision = decide(_strategy(), _copytrade(leadTrader=OTHER))
    assert decision.refusal is ReasonCode.LEADER_NOT_FOLLOWED
    assert OTHER in decision.detail and "spec.traders" in decision.detail


def test_top_n_follows_only_the_best_eligible_scores() -> None:
    strategy = _strategy(traders=None, topN={"count": 1, "minTrustScore": 50})
    assert needs_scores(strategy)
    scores = [StoredTraderScore(PUBKEY_A, 90.0, "ELIGIBLE"), StoredTraderScore(OTHER, 80.0, "ELIGIBLE"),
              StoredTraderScore(VAULT, 99.0, "INSUFFICIENT_HISTORY")]
    assert not decide(strategy, _copytrade(), scores).refused
    assert decide(strategy, _copytrade(leadTrader=OTHER), scores).refusal is ReasonCode.LEADER_NOT_FOLLOWED
    assert decide(strategy, _copytrade(leadTrader=VAULT), scores).refusal is ReasonCode.LEADER_NOT_FOLLOWED
    # no scores at all: nobody is followed
    assert decide(strategy, _copytrade(), []).refusal is ReasonCode.LEADER_NOT_FOLLOWED


def test_sizing_fixed_and_proportional() -> None:
    fixed = decide(_strategy(sizing={"mode": "fixed", "fixedAmount": 5_000}), _copytrade(notionalUsd=100.0))
    assert (fixed.amount, fixed.notional_usd) == (5_000, Decimal("0.5"))
    half = decide(_strategy(sizing={"mode": "proportional", "ratio": 0.5}), _copytrade(amount=1_000_001))
    assert half.amount == 500_000  # rounded down: never a base unit more than the rule allows
    tiny = decide(_strategy(sizing={"ratio": 0.1}), _copytrade(amount=9))
    assert tiny.refusal is ReasonCode.RISK_LIMIT and tiny.detail.startswith("sizing:")
