"""TraderPool on a real API server: bad pools refused naming the field (OpenAPI + CEL)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B

from .conftest import Kubectl

pytestmark = pytest.mark.cluster


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TraderPool", "metadata": {"name": name},
            "spec": spec}


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ({}, ["set exactly one of spec.wallets (listed wallets) or spec.walletConfigMaps"]),
        ({"wallets": [PUBKEY_A], "walletConfigMaps": {"matchLabels": {"a": "b"}}},
         ["set exactly one of spec.wallets"]),
        ({"wallets": ["not-base58-0OIl"]}, ["spec.wallets[0]", "should match"]),
        ({"wallets": [PUBKEY_A, PUBKEY_B, PUBKEY_A]}, ["spec.wallets[2]", "Duplicate value"]),
        ({"wallets": [PUBKEY_A], "window": {"days": 0}}, ["spec.window.days"]),
        ({"wallets": [PUBKEY_A], "window": {"endsAt": "Yesterday"}}, ["spec.window.endsAt", "Unsupported value"]),
        ({"wallets": [PUBKEY_A], "normalization": "zscore"}, ["spec.normalization"]),
        ({"walletConfigMaps": {"matchLabels": {}}}, ["spec.walletConfigMaps.matchLabels"]),
    ],
)
def test_bad_pool_refused(kube: Kubectl, spec: dict, needles: list[str]) -> None:
    result = kube.apply(pool("bad", **spec), check=False)
    assert result.returncode != 0, "the API server accepted a bad TraderPool"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert kube.get("traderpool", "bad") is None


def test_good_pool_is_stored_with_defaults(kube: Kubectl) -> None:
    kube.apply(pool("main", wallets=[PUBKEY_A, PUBKEY_B]))
    stored = kube.get("traderpool", "main")
    assert stored is not None
    assert stored["spec"]["window"] == {"days": 90, "endsAt": "Now"}
    assert stored["spec"]["normalization"] == "fixed"
