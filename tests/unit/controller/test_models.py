"""The models refuse what the CRD refuses, with messages that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xorj.controller.models import CopyTradeSpec, TradingStrategySpec, VaultSpec

from .factories import PUBKEY_A, SIGNATURE, VAULT, copytrade_spec, strategy_spec


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
        # issue 11: the rules CEL cannot check, and their Python twins
        ({"vault": {"publicKey": "z" * 44, "secretName": "v"}}, "must decode from base58 to exactly 32 bytes"),
        ({"traders": ["1" * 44]}, "must decode from base58 to exactly 32 bytes"),
        ({"traders": [PUBKEY_A, PUBKEY_A]}, "spec.traders is a set"),
        ({"vault": {"publicKey": VAULT, "secretName": "v", "secretKey": "../etc/passwd"}}, "vault.secretKey"),
        ({"vault": {"publicKey": VAULT, "secretName": "v", "secretKey": ".hidden"}}, "vault.secretKey"),
        ({"executor": {"requests": {"cpu": "lots"}}}, "executor.requests.cpu"),
        ({"executor": {"limits": {"memory": "-1Gi"}}}, "executor.limits.memory"),
        ({"executor": {"replicas": 0}}, "spec.executor.replicas may be 0 only with spec.paused: true"),
        ({"endpoints": {"rpcUrl": "https://u:p@rpc.example", "swapApiUrl": "https://y"}},
         "spec.endpoints.rpcUrl must not carry credentials"),
        ({"endpoints": {"rpcUrl": "https://rpc.example/?api-key=abc", "swapApiUrl": "https://y"}},
         "spec.endpoints.rpcUrl must not carry an API key or token"),
        ({"endpoints": {"rpcUrl": "https://x", "swapApiUrl": "https://y/?Token=abc"}},
         "spec.endpoints.swapApiUrl must not carry an API key or token"),
        ({"endpoints": {"rpcUrl": "https://x", "swapApiUrl": "https://y",
                        "swapApiKeySecretRef": {"name": "k", "key": "a/b"}}}, "swapApiKeySecretRef.key"),
    ],
)
def test_bad_strategy_refused_naming_the_field(overrides: dict, needle: str) -> None:
    spec = strategy_spec(**overrides)
    if overrides.get("traders", "x") is None:
        spec.pop("traders")
    with pytest.raises(ValidationError) as info:
        TradingStrategySpec.model_validate(spec)
    assert needle in str(info.value)


def test_zero_replicas_allowed_when_paused_and_quantities_accepted() -> None:
    spec = TradingStrategySpec.model_validate(strategy_spec(
        paused=True, executor={"replicas": 0, "requests": {"cpu": "0.5", "memory": "128Mi"}, "limits": {"cpu": "2"}}))
    assert spec.executor.replicas == 0


def test_legacy_image_fields_are_read_but_never_used() -> None:
    """The CRD refuses spec.executor.image (CEL); a value stored before that rule is parsed (the
    operator must not refuse the whole strategy for it) and the executor image stays the operator's."""
    from xorj.controller.tradingstrategy import desired

    spec = TradingStrategySpec.model_validate(strategy_spec(executor={"image": "evil/exfiltrate:latest"}))
    deployment = desired.deployment(desired.Owner("alpha", "uid"), "ns", spec,
                                    desired.ExecutorDefaults(image="registry.local/xorj:1.0"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/xorj:1.0"


def test_crd_refuses_image_and_keeps_vault_immutable() -> None:
    from xorj.controller import crdgen

    schema = crdgen.crd(crdgen.TRADING_STRATEGY)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert {"rule": "!has(self.image)"}.items() <= spec["properties"]["executor"]["x-kubernetes-validations"][0].items()
    assert spec["properties"]["vault"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert spec["properties"]["traders"]["x-kubernetes-list-type"] == "set"
    assert "image" not in spec["properties"]["executor"]["default"]


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
        ({"inputMint": "z" * 44}, "must decode from base58 to exactly 32 bytes"),
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
    vault_docs = list(yaml.safe_load_all((root / "vaults.yaml").read_text()))
    assert [d["kind"] for d in vault_docs] == ["Vault", "Vault"]
    for doc in vault_docs:
        assert VaultSpec.model_validate(doc["spec"]).strategy == docs[0]["metadata"]["name"]
