"""The API server itself refuses bad objects, with messages naming the field (OpenAPI + CEL)."""

from __future__ import annotations

import pytest

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, VAULT

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
        # issue 11: the executor image is the operator's, never the strategy's
        ({"executor": {"image": "attacker/exfiltrate:latest"}},
         ["spec.executor.image", "spec.executor.image is not allowed: the executor image comes from the operator's"]),
        ({"executor": {"imagePullPolicy": "Always"}}, ["spec.executor.imagePullPolicy is not allowed"]),
        # traders is a set
        ({"traders": [PUBKEY_A, PUBKEY_B, PUBKEY_A]}, ["spec.traders[2]", "Duplicate value"]),
        # secretKey is a file name
        ({"vault": {"publicKey": VAULT, "secretName": "v", "secretKey": "../../etc/passwd"}},
         ["spec.vault.secretKey", "should match"]),
        # resource quantities
        ({"executor": {"requests": {"cpu": "lots"}}}, ["spec.executor.requests.cpu", "should match"]),
        ({"executor": {"limits": {"memory": "-1Gi"}}}, ["spec.executor.limits.memory", "should match"]),
        # replicas 0 only when paused
        ({"executor": {"replicas": 0}},
         ["spec.executor.replicas", "spec.executor.replicas may be 0 only with spec.paused: true"]),
        # credentials never in the CR
        ({"endpoints": {"rpcUrl": "https://user:pa55@rpc.example", "swapApiUrl": "https://swap.example"}},
         ["spec.endpoints.rpcUrl", "must not carry credentials"]),
        ({"endpoints": {"rpcUrl": "https://rpc.example/?api-key=k", "swapApiUrl": "https://swap.example"}},
         ["spec.endpoints.rpcUrl", "must not carry an API key or token in its query"]),
        ({"endpoints": {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example",
                        "swapApiKeySecretRef": {"name": "k", "key": "a/b"}}},
         ["spec.endpoints.swapApiKeySecretRef.key", "should match"]),
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


def test_zero_replicas_accepted_when_paused(kube: Kubectl) -> None:
    kube.apply(strategy("good", executor={"replicas": 0}, paused=True))
    assert kube.get("ts", "good")["spec"]["executor"]["replicas"] == 0
    # and un-pausing while at zero is refused: the rule holds on every update
    result = kube.apply(strategy("good", executor={"replicas": 0}, paused=False), check=False)
    assert result.returncode != 0
    assert "spec.executor.replicas may be 0 only with spec.paused: true" in result.stderr, result.stderr


def test_vault_is_immutable(kube: Kubectl) -> None:
    """A changed vault would hand the old vault's admitted trades to executors holding another key."""
    kube.apply(strategy("good"))
    for vault in ({"publicKey": PUBKEY_B, "secretName": "vault-keypair"},
                  {"publicKey": VAULT, "secretName": "another-secret"},
                  {"publicKey": VAULT, "secretName": "vault-keypair", "secretKey": "other.json"}):
        result = kube.apply(strategy("good", vault=vault), check=False)
        assert result.returncode != 0, f"the API server accepted a changed vault: {vault}"
        assert "spec.vault is immutable" in result.stderr, result.stderr
    stored = kube.get("ts", "good")["spec"]["vault"]
    assert stored == {"publicKey": VAULT, "secretName": "vault-keypair", "secretKey": "keypair.json"}
    # the rest of the spec still changes freely
    kube.apply(strategy("good", paused=True))
    assert kube.get("ts", "good")["spec"]["paused"] is True
