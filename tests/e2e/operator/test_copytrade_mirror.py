"""CopyTrade on the real cluster and ledger: idempotent admission, status mirroring the ledger,
the finalizer, TTL deletion, and deletion together with the strategy."""

from __future__ import annotations

import time

import pytest

from tests.polling import wait_for
from xorj.domain.trades import ReasonCode, TradeState
from xorj.ledger import Ledger

from .conftest import Kubectl
from .ledger_driver import LedgerDriver
from .manifests import copytrade, signature, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def _phase(kube: Kubectl, name: str, phase: str):
    def check():
        obj = kube.get("copytrade", name)
        if obj and (obj.get("status") or {}).get("phase") == phase:
            return obj
        return None
    return check


def _total_trades(ledger: Ledger) -> int:
    return sum(ledger.counts_by_state().values())


def test_admission_is_idempotent_and_status_mirrors_the_ledger(kube: Kubectl, operators, ledger: Ledger) -> None:
    operators()
    kube.apply(strategy("alpha"))
    lead = signature("lead-1")
    kube.apply(copytrade("ct1", "alpha", lead))
    first = wait_for(_phase(kube, "ct1", "PENDING"), 60, "ct1 admitted")
    assert first["status"]["admission"] == "Admitted"
    trade_id = first["status"]["tradeId"]
    assert "Admitted" in {e["reason"] for e in kube.events("ct1")}

    # re-apply: nothing new
    kube.apply(copytrade("ct1", "alpha", lead))
    # a second CopyTrade for the same lead trade and strategy: a duplicate, and it says so
    kube.apply(copytrade("ct2", "alpha", lead))
    dup = wait_for(_phase(kube, "ct2", "PENDING"), 60, "ct2 mirrored")
    assert dup["status"]["admission"] == "Duplicate"
    assert dup["status"]["tradeId"] == trade_id
    assert f"{kube.namespace}/ct1" in dup["status"]["admissionMessage"]
    wait_for(lambda: "DuplicateTrade" in {e["reason"] for e in kube.events("ct2")}, 30, "DuplicateTrade event")
    assert _total_trades(ledger) == 1

    # the executor's writes appear in both CopyTrades: SUBMITTED, a slippage failure, a retry, CONFIRMED
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")
    assert [t.trade_id for t in driver.claim_all()] == [int(trade_id)]
    sig1 = driver.submit(int(trade_id), slippage_bps=100)
    sub = wait_for(_phase(kube, "ct1", "SUBMITTED"), 30, "ct1 SUBMITTED")
    assert sub["status"]["attempts"][0]["signature"] == sig1

    # deleting ct1 while SUBMITTED: the finalizer holds it
    kube.run("delete", "copytrade", "ct1", "--wait=false")
    time.sleep(3)
    held = kube.get("copytrade", "ct1")
    assert held is not None and held["metadata"].get("deletionTimestamp"), "deleted while SUBMITTED"

    driver.slippage_failure(sig1)
    sig2 = driver.submit(int(trade_id), slippage_bps=150)
    driver.confirm(int(trade_id), sig2)
    done = wait_for(_phase(kube, "ct2", "CONFIRMED"), 30, "ct2 CONFIRMED")
    status = done["status"]
    assert status["finalSignature"] == sig2
    assert status["attemptCount"] == 2
    assert [(a["slippageBps"], a["outcome"], a.get("reason")) for a in status["attempts"]] == [
        (100, "FAILED_ON_CHAIN", "SLIPPAGE_EXCEEDED"), (150, "LANDED", None)]
    assert status["finishedAt"] and status["submittedAt"]
    terminal = next(c for c in status["conditions"] if c["type"] == "Terminal")
    assert terminal["status"] == "True" and terminal["reason"] == "Confirmed"
    wait_for(lambda: kube.get("copytrade", "ct1") is None, 30, "ct1 released once terminal")

    # re-creating ct1: still one trade, reported as a duplicate, already CONFIRMED
    kube.apply(copytrade("ct1", "alpha", lead))
    again = wait_for(_phase(kube, "ct1", "CONFIRMED"), 60, "re-created ct1 mirrored")
    assert again["status"]["admission"] == "Duplicate"
    assert again["status"]["tradeId"] == trade_id
    assert _total_trades(ledger) == 1
    printed = kube.run("get", "ct", "ct2").stdout
    assert "CONFIRMED" in printed and sig2 in printed


def test_failed_trade_then_ttl_deletion(kube: Kubectl, operators, ledger: Ledger) -> None:
    operators()
    kube.apply(strategy("alpha"))
    kube.apply(copytrade("ct-fail", "alpha", signature("lead-fail"), ttlSecondsAfterFinished=3))
    obj = wait_for(_phase(kube, "ct-fail", "PENDING"), 60, "admitted")
    trade_id = int(obj["status"]["tradeId"])
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")
    driver.claim_all()
    driver.fail(trade_id, ReasonCode.RISK_LIMIT, "max trade notional exceeded")
    failed = wait_for(_phase(kube, "ct-fail", "FAILED"), 30, "FAILED mirrored")
    assert failed["status"]["errorReason"] == "RISK_LIMIT"
    assert failed["status"]["errorMessage"] == "max trade notional exceeded"
    wait_for(lambda: "Failed" in {e["reason"] for e in kube.events("ct-fail")}, 30, "Failed event")
    wait_for(lambda: kube.get("copytrade", "ct-fail") is None, 30, "TTL deletion")
    # the ledger keeps the history
    assert ledger.get_trade(trade_id).state is TradeState.FAILED


def test_deleting_a_pending_copytrade_cancels_its_trade(kube: Kubectl, operators, ledger: Ledger) -> None:
    operators()
    kube.apply(strategy("alpha", paused=True))
    kube.apply(copytrade("ct-cancel", "alpha", signature("lead-cancel")))
    obj = wait_for(_phase(kube, "ct-cancel", "PENDING"), 60, "admitted")
    kube.run("delete", "copytrade", "ct-cancel", "--timeout=30s")
    trade = ledger.get_trade(int(obj["status"]["tradeId"]))
    assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.CANCELLED


def test_copytrade_waits_for_its_strategy(kube: Kubectl, operators, ledger: Ledger) -> None:
    operators()
    kube.apply(copytrade("early", "later", signature("lead-early")))
    wait_for(lambda: "StrategyNotFound" in {e["reason"] for e in kube.events("early")}, 30, "StrategyNotFound")
    assert _total_trades(ledger) == 0
    kube.apply(strategy("later"))
    wait_for(_phase(kube, "early", "PENDING"), 60, "admitted once the strategy exists")
    assert _total_trades(ledger) == 1


def test_deleting_strategy_and_submitted_copytrade_together_never_deadlocks(
    kube: Kubectl, operators, ledger: Ledger
) -> None:
    operators(extra_env={"XORJ_OPERATOR_STRATEGY_DRAIN_SECONDS": "8"})
    kube.apply(strategy("alpha"))
    kube.apply(copytrade("stuck", "alpha", signature("lead-stuck")))
    obj = wait_for(_phase(kube, "stuck", "PENDING"), 60, "admitted")
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")
    driver.claim_all()
    driver.submit(int(obj["status"]["tradeId"]))
    wait_for(_phase(kube, "stuck", "SUBMITTED"), 30, "SUBMITTED")
    # both deleted; nobody finishes the trade (a dead executor): the strategy waits out its drain
    # period, then goes; the CopyTrade then finds no strategy and goes too, with Warnings
    kube.run("delete", "tradingstrategy", "alpha", "--wait=false")
    kube.run("delete", "copytrade", "stuck", "--wait=false")
    wait_for(lambda: kube.get("tradingstrategy", "alpha") is None, 60, "the strategy to go")
    wait_for(lambda: kube.get("copytrade", "stuck") is None, 60, "the CopyTrade to go")
    reasons = {e["reason"] for e in kube.events("alpha")} | {e["reason"] for e in kube.events("stuck")}
    assert {"DrainTimeout", "StrategyGone"} <= reasons, reasons
    # the ledger still has the trade, SUBMITTED, for a re-created strategy to take over
    assert ledger.get_trade(int(obj["status"]["tradeId"])).state is TradeState.SUBMITTED


def test_deleting_a_paused_strategy_cancels_its_pending_trades(kube: Kubectl, operators, ledger: Ledger) -> None:
    operators()
    kube.apply(strategy("alpha", paused=True))
    names = ("wait-1", "wait-2")
    for name in names:
        kube.apply(copytrade(name, "alpha", signature(f"lead-{name}")))
    ids = [int(wait_for(_phase(kube, n, "PENDING"), 60, f"{n} admitted")["status"]["tradeId"]) for n in names]
    # paused: no executor will ever run them; deleting the strategy must not leave them PENDING (a
    # strategy re-created under the same name, perhaps with another vault, would run them later)
    kube.run("delete", "tradingstrategy", "alpha", "--wait=false")
    wait_for(lambda: kube.get("tradingstrategy", "alpha") is None, 60, "the paused strategy to go")
    for trade_id in ids:
        trade = ledger.get_trade(trade_id)
        assert trade.state is TradeState.FAILED and trade.reason is ReasonCode.CANCELLED, trade
    assert "TradesCancelled" in {e["reason"] for e in kube.events("alpha")}
    # the CopyTrades' statuses follow the ledger
    for name in names:
        obj = wait_for(_phase(kube, name, "FAILED"), 30, f"{name} FAILED")
        assert obj["status"]["errorReason"] == "CANCELLED"
