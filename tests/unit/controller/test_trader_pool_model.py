"""TraderPool: the model refuses what the CRD refuses, naming the field; the CRD carries the same rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xorj.controller import crdgen
from xorj.controller.models import TraderPoolSpec, WindowEnd
from xorj.domain.scoring import Normalization

from .factories import PUBKEY_A, trader_pool_spec


def test_valid_pool_gets_the_trust_score_defaults() -> None:
    spec = TraderPoolSpec.model_validate(trader_pool_spec())
    assert spec.window.days == 90
    assert spec.window.ends_at is WindowEnd.NOW
    assert spec.normalization is Normalization.FIXED
    assert spec.ranks_shown == 10


def test_pool_from_labelled_configmaps() -> None:
    spec = TraderPoolSpec.model_validate({"walletConfigMaps": {"matchLabels": {"xorj.io/pool": "main"}},
                                          "window": {"endsAt": "LatestTrade", "days": 30},
                                          "normalization": "cohort"})
    assert spec.wallets is None
    assert spec.wallet_config_maps is not None and spec.wallet_config_maps.key == "wallets"
    assert spec.window.ends_at is WindowEnd.LATEST_TRADE


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({}, "set exactly one of spec.wallets"),
        (trader_pool_spec(walletConfigMaps={"matchLabels": {"a": "b"}}), "set exactly one of spec.wallets"),
        (trader_pool_spec(wallets=[]), "wallets"),
        (trader_pool_spec(wallets=[PUBKEY_A, PUBKEY_A]), "spec.wallets is a set"),
        (trader_pool_spec(wallets=["0OIl-not-base58"]), "wallets.0"),
        (trader_pool_spec(wallets=["1" * 44]), "must decode from base58 to exactly 32 bytes"),
        (trader_pool_spec(window={"days": 0}), "window.days"),
        (trader_pool_spec(window={"days": 366}), "window.days"),
        (trader_pool_spec(window={"endsAt": "Yesterday"}), "window.endsAt"),
        (trader_pool_spec(normalization="zscore"), "normalization"),
        (trader_pool_spec(ranksShown=101), "ranksShown"),
        ({"walletConfigMaps": {"matchLabels": {}}}, "walletConfigMaps.matchLabels"),
        ({"walletConfigMaps": {"matchLabels": {"a": "b"}, "key": "../x"}}, "walletConfigMaps.key"),
        (trader_pool_spec(unknownField=1), "unknownField"),
    ],
)
def test_bad_pool_refused_naming_the_field(spec: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        TraderPoolSpec.model_validate(spec)
    assert needle in str(info.value)


def test_crd_has_the_rules_columns_and_set_semantics() -> None:
    doc = crdgen.crd(crdgen.TRADER_POOL)
    version = doc["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert [v["rule"] for v in spec["x-kubernetes-validations"]] == ["has(self.wallets) != has(self.walletConfigMaps)"]
    assert spec["properties"]["wallets"]["x-kubernetes-list-type"] == "set"
    assert spec["properties"]["wallets"]["items"]["pattern"] == "^[1-9A-HJ-NP-Za-km-z]{32,44}$"
    assert spec["properties"]["window"]["default"] == {"days": 90, "endsAt": "Now"}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Eligible"] == ".status.eligible"
    assert columns["Ineligible"] == ".status.ineligible"
    assert columns["Top"] == ".status.topTrader"
    assert columns["Scored"] == ".status.lastScored"
    assert doc["spec"]["names"]["kind"] == "TraderPool" and "xorj" in doc["spec"]["names"]["categories"]


def test_example_pool_is_valid_and_a_follower_may_name_it() -> None:
    from pathlib import Path

    import yaml

    from xorj.controller.models import TradingStrategySpec

    from .factories import strategy_spec

    docs = list(yaml.safe_load_all((Path(__file__).resolve().parents[3] / "examples" / "traderpool.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["TraderPool"]  # the demo takes the first TradingStrategy of examples/
    TraderPoolSpec.model_validate(docs[0]["spec"])
    follower = TradingStrategySpec.model_validate(
        strategy_spec(traders=None, topN={"count": 1, "pool": docs[0]["metadata"]["name"]}))
    assert follower.top_n is not None and follower.top_n.pool == "leaders"
