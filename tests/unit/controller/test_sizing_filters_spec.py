"""TradingStrategy spec.sizing (fixedUsd, vaultPercent, minUsd, maxUsd) and spec.filters: the model
refuses what the CRD's CEL rules refuse, with the same message naming the field; the rules are in
the generated CRD with their field paths."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, VAULT
from xorj.controller import crdgen
from xorj.controller.models import TradingStrategySpec


def spec(**extra: object) -> dict:
    return {"traders": [PUBKEY_A], "vault": {"publicKey": VAULT, "secretName": "v"},
            "endpoints": {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example"}, **extra}


def test_defaults_keep_existing_strategies_valid() -> None:
    model = TradingStrategySpec.model_validate(spec())
    assert model.sizing.mode.value == "proportional" and model.filters.max_signal_age_seconds == 120
    assert model.filters.min_notional_usd == 1.0 and model.filters.allow_mints is None


@pytest.mark.parametrize(("extra", "message"), [
    ({"sizing": {"mode": "fixedUsd"}}, "spec.sizing.fixedUsd is required when spec.sizing.mode is fixedUsd"),
    ({"sizing": {"mode": "vaultPercent"}}, "spec.sizing.vaultPercent is required when spec.sizing.mode is vaultPercent"),
    ({"sizing": {"minUsd": 10, "maxUsd": 5}}, "spec.sizing.minUsd must be <= spec.sizing.maxUsd"),
    ({"sizing": {"mode": "vaultPercent", "vaultPercent": 101}}, "less than or equal to 100"),
    ({"filters": {"allowMints": [PUBKEY_B], "denyMints": [PUBKEY_B]}},
     "spec.filters.allowMints and spec.filters.denyMints must not share a mint"),
    ({"filters": {"maxSignalAgeSeconds": 0}}, "greater than or equal to 1"),
    ({"filters": {"denyMints": ["not-a-key"]}}, "String should match pattern"),
])
def test_bad_sizing_and_filters_are_refused_with_the_rule(extra: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TradingStrategySpec.model_validate(spec(**extra))


def test_the_crd_carries_the_rules_with_their_field_paths() -> None:
    [crd] = [crdgen.crd(k) for k in crdgen.KINDS if k.kind == "TradingStrategy"]
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    sizing_rules = {r["fieldPath"]: r["message"] for r in props["sizing"]["x-kubernetes-validations"]}
    assert sizing_rules[".fixedUsd"].startswith("spec.sizing.fixedUsd is required")
    assert sizing_rules[".minUsd"] == "spec.sizing.minUsd must be <= spec.sizing.maxUsd"
    filters = props["filters"]
    assert filters["x-kubernetes-validations"][0]["fieldPath"] == ".allowMints"
    assert filters["properties"]["denyMints"]["maxItems"] == 100
    assert props["sizing"]["properties"]["mode"]["enum"] == ["fixed", "proportional", "fixedUsd", "vaultPercent"]
