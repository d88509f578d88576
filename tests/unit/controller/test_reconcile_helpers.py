"""Pure helpers of the reconciler: drift detection and validation messages."""

from __future__ import annotations

import copy

from pydantic import ValidationError

from xorj.controller.common import strategy_key, validation_message
from xorj.controller.models import TradingStrategySpec
from xorj.controller.tradingstrategy import desired
from xorj.controller.tradingstrategy.reconcile import _deployment_drifted

from .factories import strategy_spec

OWNER = desired.Owner(name="alpha", uid="u1")


def _want(**overrides):
    spec = TradingStrategySpec.model_validate(strategy_spec(**overrides))
    return desired.deployment(OWNER, "ns", spec, desired.ExecutorDefaults())


def test_drift_detected_on_scale_template_change_or_absence() -> None:
    want = _want(executor={"replicas": 2})
    actual = copy.deepcopy(want)
    assert not _deployment_drifted(actual, want)
    assert _deployment_drifted(None, want)
    scaled = copy.deepcopy(want)
    scaled["spec"]["replicas"] = 5
    assert _deployment_drifted(scaled, want)
    assert _deployment_drifted(actual, _want(executor={"replicas": 2}, slippage={"initialBps": 150}))


def test_validation_message_names_fields() -> None:
    try:
        TradingStrategySpec.model_validate(strategy_spec(slippage={"initialBps": 0}))
    except ValidationError as exc:
        message = validation_message(exc)
    assert message.startswith("spec.slippage.initialBps:")


def test_ledger_strategy_key_is_namespaced() -> None:
    assert strategy_key("team-a", "alpha") != strategy_key("team-b", "alpha")
