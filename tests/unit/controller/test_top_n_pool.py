"""spec.topN.pool: a strategy follows the best N of a TraderPool's ranking; the followed set's changes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xorj.controller.admission import decide, needs_pool
from xorj.controller.models import (
    CopyTradeSpec,
    FollowedTrader,
    RankedTrader,
    TradingStrategySpec,
)
from xorj.controller.tradingstrategy import status as st
from xorj.domain.trades import ReasonCode
from xorj.ledger.records import StoredTraderScore

from .factories import PUBKEY_A, PUBKEY_B, VAULT, copytrade_spec, strategy_spec


def _strategy(**top_n) -> TradingStrategySpec:
    return TradingStrategySpec.model_validate(strategy_spec(traders=None, topN=top_n))


RANKS = [RankedTrader(rank=1, wallet=VAULT, score=40.0, status="ELIGIBLE"),
         RankedTrader(rank=2, wallet=PUBKEY_B, score=30.0, status="ELIGIBLE"),
         RankedTrader(rank=3, wallet=PUBKEY_A, score=0.0, status="INSUFFICIENT_TRADES")]
# the ledger's global scores disagree: a pool-based strategy must not read them
LEDGER = [StoredTraderScore(PUBKEY_A, 99.0, "ELIGIBLE", normalization="fixed")]


def test_pool_ranking_picks_the_followed_traders() -> None:
    spec = _strategy(count=2, pool="leaders")
    assert needs_pool(spec) == "leaders"
    assert [t.wallet for t in st.followed_traders(spec, LEDGER, RANKS)] == [VAULT, PUBKEY_B]
    assert [t.wallet for t in st.followed_traders(_strategy(count=5, pool="leaders", minTrustScore=35), LEDGER,
                                                  RANKS)] == [VAULT]
    assert st.followed_traders(spec, LEDGER, None) == []  # the pool is missing or not scored yet: nobody


def test_without_pool_the_ledger_scores_still_decide() -> None:
    spec = _strategy(count=2)
    assert needs_pool(spec) is None
    assert [t.wallet for t in st.followed_traders(spec, LEDGER, RANKS)] == [PUBKEY_A]


def test_admission_follows_the_pool() -> None:
    spec = _strategy(count=1, pool="leaders")
    assert not decide(spec, CopyTradeSpec.model_validate(copytrade_spec(leadTrader=VAULT)), LEDGER, RANKS).refused
    refused = decide(spec, CopyTradeSpec.model_validate(copytrade_spec(leadTrader=PUBKEY_A)), LEDGER, RANKS)
    assert refused.refusal is ReasonCode.LEADER_NOT_FOLLOWED and "of TraderPool leaders" in refused.detail


def test_pool_name_is_a_dns_label() -> None:
    with pytest.raises(ValidationError) as info:
        _strategy(count=1, pool="Not_A_Name")
    assert "topN.pool" in str(info.value)


def test_followed_change_message() -> None:
    a, b, c = (FollowedTrader(wallet=w) for w in (PUBKEY_A, PUBKEY_B, VAULT))
    assert st.followed_change([a, b], [b, a]) is None
    assert st.followed_change([a, b], [c, b]) == f"following 2 trader(s); now following {VAULT}; no longer following {PUBKEY_A}"
    assert st.followed_change([], [a]) == f"following 1 trader(s); now following {PUBKEY_A}"
