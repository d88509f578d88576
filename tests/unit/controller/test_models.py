"""The models refuse what the CRD refuses, with messages that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from xorj.controller.models import CopyTradeSpec, TradingStrategySpec

from .factories import SIGNATURE, copytrade_spec, strategy_spec


def test_valid_strategy_gets_reference_defaults() -> None:
    spec = TradingStrategySpec.model_validate(strategy_spec())
    assert spec.slippage.initial_bps == 100
    assert spec.slippage.absolute_cap_bps == 500
    assert spec.slippage.max_attempts == 3
    assert spec.risk.max_position_share == 0.5
    assert spec.executor.replicas == 1
    assert spec.paused is False


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"slippage": {"initialBps": 300, "capBps": 200}}, "spec.slippage.initialBps must be <= spec.slippage.capBps"),
        ({"slippage": {"capBps": 400, "absoluteCapBps": 300}}, "spec.slippage.capBps must be <= spec.slippage.absoluteCapBps"),
        ({"topN": {"count": 3}}, "set exactly one of spec.traders"),
        ({"traders": None}, "set exactly one of spec.traders"),
        ({"traders": ["0OIl-not-base58"]}, "traders.0"),
        ({"vault": {"publicKey": "short", "secretName": "v"}}, "vault.publicKey"),
        ({"sizing": {"mode": "fixed"}}, "spec.sizing.fixedAmount is required"),
        ({"sizing": {"mode": "fixed", "fixedAmount": 0}}, "sizing.fixedAmount"),
        ({"risk": {"maxTradeNotionalUsd": -1}}, "risk.maxTradeNotionalUsd"),
        ({"endpoints": {"rpcUrl": "ftp://x", "swapApiUrl": "http://y"}}, "endpoints.rpcUrl"),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_bad_strategy_refused_naming_the_field(overrides: dict, needle: str) -> None:
    spec = strategy_spec(**overrides)
    if overrides.get("traders", "x") is None:
        spec.pop("traders")
    with pytest.raises(ValidationError) as info:
        TradingStrategySpec.model_validate(spec)
    assert needle in str(info.value)


def test_valid_copytrade() -> None:
    spec = CopyTradeSpec.model_validate(copytrade_spec(maxSlippageBps=150, ttlSecondsAfterFinished=60))
    assert spec.lead_signature == SIGNATURE
    assert spec.to_wire()["leadSignature"] == SIGNATURE
    assert spec.to_wire()["ttlSecondsAfterFinished"] == 60


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"leadSignature": "abc"}, "leadSignature"),
        ({"leadSignature": "0" * 88}, "leadSignature"),
        ({"leadTrader": "l" * 40 + "0000"}, "leadTrader"),
        ({"outputMint": "So11111111111111111111111111111111111111112"}, "spec.outputMint must differ"),
        ({"strategy": "Not_A_Name"}, "strategy"),
        ({"maxSlippageBps": 20000}, "maxSlippageBps"),
    ],
)
def test_bad_copytrade_refused_naming_the_field(overrides: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        CopyTradeSpec.model_validate(copytrade_spec(**overrides))
    assert needle in str(info.value)


def test_examples_are_valid() -> None:
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[3] / "examples"
    docs = [d for f in ("tradingstrategy.yaml", "copytrades.yaml") for d in yaml.safe_load_all((root / f).read_text())]
    kinds = [d["kind"] for d in docs]
    assert kinds == ["TradingStrategy", "CopyTrade", "CopyTrade"]
    for doc in docs:
        model = TradingStrategySpec if doc["kind"] == "TradingStrategy" else CopyTradeSpec
        model.model_validate(doc["spec"])
