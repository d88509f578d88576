"""The TradingStrategy status builder (pure): conditions keep their transition time; followed traders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xorj.controller.models import ConditionStatus, TradingStrategySpec
from xorj.controller.tradingstrategy import status as st
from xorj.domain.trades import TradeState
from xorj.ledger.records import StoredTraderScore

from .factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, SIGNATURE, VAULT, strategy_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _strategy_status(spec, deployment, previous=None, now=T0, ledger_error=None):
    return st.strategy_status(
        spec=spec,
        generation=2,
        deployment=deployment,
        ledger_error=ledger_error,
        counts=st.trade_counts({TradeState.CONFIRMED: 3, "FAILED": 1}),
        followed=[],
        previous=previous,
        config_hash="abc",
        now=now,
    )


def _cond(status, type_):
    return next(c for c in status.conditions if c.type == type_)


def test_strategy_ready_when_executors_available_and_ledger_up() -> None:
    spec = TradingStrategySpec.model_validate(strategy_spec(executor={"replicas": 2}))
    s = _strategy_status(spec, st.DeploymentObservation(desired=2, replicas=2, ready=2, available=2, updated=2))
    assert _cond(s, st.READY).status is ConditionStatus.TRUE
    assert _cond(s, st.PAUSED).status is ConditionStatus.FALSE
    assert s.executors == "2/2"
    assert s.trades_summary == "0/0/3/1"
    assert {c.type for c in s.conditions} == {"Ready", "SpecAccepted", "ChildrenApplied", "ExecutorsAvailable",
                                              "LedgerReachable", "Paused"}
    assert all(c.observed_generation == 2 for c in s.conditions)


def test_transition_time_kept_until_status_changes() -> None:
    spec = TradingStrategySpec.model_validate(strategy_spec())
    up = st.DeploymentObservation(desired=1, replicas=1, ready=1, available=1, updated=1)
    first = _strategy_status(spec, up)
    again = _strategy_status(spec, up, previous=first, now=T0 + timedelta(minutes=5))
    assert _cond(again, st.READY).last_transition_time == T0
    assert again == first
    down = _strategy_status(spec, up, previous=again, now=T0 + timedelta(minutes=6), ledger_error="connection refused")
    assert _cond(down, st.READY).status is ConditionStatus.FALSE
    assert _cond(down, st.READY).last_transition_time == T0 + timedelta(minutes=6)
    assert _cond(down, st.LEDGER_REACHABLE).message == "connection refused"
    assert _cond(down, st.EXECUTORS_AVAILABLE).last_transition_time == T0


def test_paused_condition() -> None:
    spec = TradingStrategySpec.model_validate(strategy_spec(paused=True))
    s = _strategy_status(spec, st.DeploymentObservation(desired=0))
    assert _cond(s, st.PAUSED).status is ConditionStatus.TRUE
    assert _cond(s, st.EXECUTORS_AVAILABLE).reason == "ScaledToZero"
    still = _strategy_status(spec, st.DeploymentObservation(desired=0, replicas=1))
    assert _cond(still, st.EXECUTORS_AVAILABLE).status is ConditionStatus.FALSE


def test_followed_traders_explicit_and_top_n() -> None:
    scores = [
        StoredTraderScore(wallet=PUBKEY_A, score=80.0, status="ELIGIBLE", normalization="fixed"),
        StoredTraderScore(wallet=PUBKEY_B, score=90.0, status="ELIGIBLE", normalization="fixed"),
        StoredTraderScore(wallet=PUBKEY_C, score=0.0, status="INSUFFICIENT_TRADES", normalization="fixed"),
        StoredTraderScore(wallet=VAULT, score=40.0, status="ELIGIBLE", normalization="fixed"),
    ]
    explicit = TradingStrategySpec.model_validate(strategy_spec(traders=[PUBKEY_A, SIGNATURE[:44]]))
    out = st.followed_traders(explicit, scores)
    assert [(f.wallet, f.trust_score, f.status) for f in out] == [
        (PUBKEY_A, 80.0, "ELIGIBLE"),
        (SIGNATURE[:44], None, "NO_DATA"),
    ]
    spec = strategy_spec(topN={"count": 2, "minTrustScore": 50})
    spec.pop("traders")
    top = st.followed_traders(TradingStrategySpec.model_validate(spec), scores)
    assert [f.wallet for f in top] == [PUBKEY_B, PUBKEY_A]
