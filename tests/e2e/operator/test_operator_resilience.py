"""The operator process killed mid-flight loses and duplicates nothing; two peered operators never
both act; the liveness endpoint answers."""

from __future__ import annotations

import json

import pytest

from xorj.domain.trades import TradeState
from xorj.ledger import Ledger

from .conftest import Kubectl, wait_for
from .ledger_driver import LedgerDriver
from .manifests import copytrade, signature, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.slow]

N = 20


def _statuses(kube: Kubectl) -> dict[str, dict]:
    return {o["metadata"]["name"]: (o.get("status") or {}) for o in kube.list("copytrades")}


def _apply_many(kube: Kubectl, prefix: str, n: int) -> None:
    items = [copytrade(f"{prefix}-{i}", "alpha", signature(f"{prefix}-lead-{i}")) for i in range(n)]
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def test_operator_killed_mid_flight_loses_and_duplicates_nothing(kube: Kubectl, operators, ledger: Ledger) -> None:
    first = operators()
    kube.apply(strategy("alpha"))
    _apply_many(kube, "k", N)
    # kill it while admissions are under way (at least one done, not necessarily all)
    wait_for(lambda: sum(1 for s in _statuses(kube).values() if s.get("tradeId")) >= 1, 60, "first admission")
    first.kill()
    admitted_before = sum(1 for s in _statuses(kube).values() if s.get("tradeId"))

    # while no operator runs, the executor moves trades on
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")
    for trade in driver.claim_all():
        driver.confirm(trade.trade_id, driver.submit(trade.trade_id))

    second = operators()
    wait_for(lambda: all(s.get("tradeId") for s in _statuses(kube).values()), 90, "every CopyTrade admitted")
    # the trades admitted after the restart: run them too
    for trade in driver.claim_all():
        driver.confirm(trade.trade_id, driver.submit(trade.trade_id))
    wait_for(lambda: all(s.get("phase") == "CONFIRMED" for s in _statuses(kube).values()), 90, "all CONFIRMED")

    statuses = _statuses(kube)
    trade_ids = [s["tradeId"] for s in statuses.values()]
    assert len(set(trade_ids)) == N, "two CopyTrades share a trade, or one was lost"
    assert ledger.counts_by_state() == {TradeState.PENDING: 0, TradeState.SUBMITTED: 0,
                                        TradeState.CONFIRMED: N, TradeState.FAILED: 0}
    # a CopyTrade whose admission the killed operator committed is not mistaken for a duplicate
    assert all(s["admission"] == "Admitted" for s in statuses.values()), statuses
    for name, s in statuses.items():
        trade = ledger.get_trade(int(s["tradeId"]))
        assert trade.copytrade == f"{kube.namespace}/{name}"
        assert s["finalSignature"] == trade.final_signature
    assert admitted_before <= N
    assert second.healthz() == 200


def test_two_peered_operators_never_both_act(kube: Kubectl, operators, ledger: Ledger) -> None:
    env = {"XORJ_OPERATOR_PEERING_LIFETIME": "10"}
    low = operators(priority=10, standalone=False, extra_env=env)
    high = operators(priority=20, standalone=False, extra_env=env)
    wait_for(lambda: "Pausing operations in favour of" in low.log_text(), 30, "the low-priority operator to pause")
    kube.apply(strategy("alpha"))
    _apply_many(kube, "p", 5)
    wait_for(lambda: all(s.get("phase") == "PENDING" for s in _statuses(kube).values()) and len(_statuses(kube)) == 5,
             90, "admitted by one operator")
    assert high.metric("xorj_operator_admissions_total") == 5
    assert low.metric("xorj_operator_admissions_total") == 0
    assert low.metric("xorj_operator_reconciles_total") == 0
    assert low.metric("xorj_operator_status_patches_total") == 0
    assert high.metric("xorj_operator_reconciles_total") > 0

    # the active one dies: the other takes over once the dead peer's lifetime has passed
    high.kill()
    _apply_many(kube, "q", 3)
    wait_for(lambda: sum(1 for s in _statuses(kube).values() if s.get("tradeId")) == 8, 120, "takeover")
    assert low.metric("xorj_operator_admissions_total") == 3
    assert sum(ledger.counts_by_state().values()) == 8
