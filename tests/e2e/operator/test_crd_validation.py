"""The API server itself refuses bad objects, with messages naming the field (OpenAPI + CEL)."""

from __future__ import annotations

import pytest

from .conftest import Kubectl
from .manifests import copytrade, signature, strategy

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"slippage": {"initialBps": 300, "capBps": 200}},
         ["spec.slippage.initialBps", "spec.slippage.initialBps must be <= spec.slippage.capBps"]),
        ({"slippage": {"capBps": 400, "absoluteCapBps": 300}},
         ["spec.slippage.capBps must be <= spec.slippage.absoluteCapBps"]),
        ({"topN": {"count": 3}}, ["set exactly one of spec.traders"]),
        ({"traders": ["not-base58-0OIl"]}, ["spec.traders[0]", "should match"]),
        ({"vault": {"publicKey": "0" * 44, "secretName": "v"}}, ["spec.vault.publicKey"]),
        ({"sizing": {"mode": "fixed"}}, ["spec.sizing.fixedAmount is required"]),
        ({"executor": {"replicas": -1}}, ["spec.executor.replicas"]),
    ],
)
def test_bad_strategy_refused(kube: Kubectl, overrides: dict, needles: list[str]) -> None:
    obj = strategy("bad", **overrides)
    result = kube.apply(obj, check=False)
    assert result.returncode != 0, "the API server accepted a bad TradingStrategy"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert kube.get("tradingstrategy", "bad") is None


def test_neither_traders_nor_top_n_refused(kube: Kubectl) -> None:
    obj = strategy("bad")
    del obj["spec"]["traders"]
    result = kube.apply(obj, check=False)
    assert result.returncode != 0
    assert "set exactly one of spec.traders" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"amount": 0}, ["spec.amount"]),
        ({"leadSignature": "abc"}, ["spec.leadSignature"]),
        ({"inputMint": "So11111111111111111111111111111111111111112",
          "outputMint": "So11111111111111111111111111111111111111112"},
         ["spec.outputMint must differ from spec.inputMint"]),
    ],
)
def test_bad_copytrade_refused(kube: Kubectl, overrides: dict, needles: list[str]) -> None:
    result = kube.apply(copytrade("bad", "s", signature("x"), **overrides), check=False)
    assert result.returncode != 0
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_defaults_applied_and_copytrade_spec_immutable(kube: Kubectl) -> None:
    kube.apply(strategy("good"))
    stored = kube.get("ts", "good")  # short name
    assert stored["spec"]["slippage"] == {
        "initialBps": 100, "stepBps": 50, "capBps": 200, "absoluteCapBps": 500, "maxAttempts": 3,
    }
    assert stored["spec"]["paused"] is False
    kube.apply(copytrade("ct1", "good", signature("immutable")))
    changed = copytrade("ct1", "good", signature("immutable"), amount=2000)
    result = kube.apply(changed, check=False)
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr, result.stderr
    assert kube.get("ct", "ct1")["spec"]["amount"] == 1000
    # the category lists both kinds
    listed = kube.run("get", "xorj", "-o", "name").stdout
    assert "tradingstrategy.trading.xorj.io/good" in listed
    assert "copytrade.trading.xorj.io/ct1" in listed
