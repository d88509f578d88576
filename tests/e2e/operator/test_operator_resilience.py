"""The operator process killed mid-flight loses and duplicates nothing; two peered operators never
both act; the liveness endpoint answers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.polling import wait_for
from xorj.domain.trades import TradeState
from xorj.ledger import Ledger

from .conftest import Kubectl
from .ledger_driver import LedgerDriver
from .manifests import copytrade, signature, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.slow]

N = 40


def _statuses(kube: Kubectl) -> dict[str, dict]:
    return {o["metadata"]["name"]: (o.get("status") or {}) for o in kube.list("copytrades")}


def _apply_many(kube: Kubectl, prefix: str, n: int) -> None:
    items = [copytrade(f"{prefix}-{i}", "alpha", signature(f"{prefix}-lead-{i}")) for i in range(n)]
    kube.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def _kill_at_next_admission(op, nothing_left: Callable[[], bool], timeout: float = 60) -> None:
    """SIGKILL ``op`` within milliseconds of its next "trade admitted" log line.

    Only the log file is read in the tight loop: asking the API server how many CopyTrades are admitted
    takes a few hundred milliseconds on a busy machine, long enough for the operator to admit all of
    them, so that question is asked once a second, to stop waiting when nothing is left to admit."""
    before = op.log_text().count("trade admitted")
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if op.log_text().count("trade admitted") > before:
            break
        if time.monotonic() >= next_check:
            if nothing_left():
                break
            next_check = time.monotonic() + 1.0
        time.sleep(0.002)
    else:
        raise AssertionError(f"no admission within {timeout}s")
    op.kill()


def test_operator_killed_mid_flight_loses_and_duplicates_nothing(kube: Kubectl, operators, ledger: Ledger) -> None:
    kube.apply(strategy("alpha"))
    _apply_many(kube, "k", N)
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")

    def admitted() -> int:
        return sum(1 for s in _statuses(kube).values() if s.get("tradeId"))

    # SIGKILL the operator three times, each right after its first admission (so in the middle of the
    # others); between two operators the executor's writes go on (trades SUBMITTED, some CONFIRMED)
    kills: list[int] = []
    submitted: dict[int, str] = {}
    for _ in range(3):
        op = operators()
        _kill_at_next_admission(op, lambda: admitted() == N)
        kills.append(admitted())
        for i, trade in enumerate(driver.claim_all()):
            submitted[trade.trade_id] = driver.submit(trade.trade_id)
            if i % 2 == 0:
                driver.confirm(trade.trade_id, submitted.pop(trade.trade_id))
    op = operators()

    wait_for(lambda: admitted() == N, 90, "every CopyTrade admitted")
    for trade in driver.claim_all():
        submitted[trade.trade_id] = driver.submit(trade.trade_id)
    for trade_id, sig in submitted.items():  # the driver still holds these leases
        driver.confirm(trade_id, sig)
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
    assert kills[0] < N, f"the first kill came after every admission: {kills}"
    assert op.healthz() == 200


def test_two_peered_operators_never_both_act(kube: Kubectl, operators, ledger: Ledger) -> None:
    env = {"XORJ_OPERATOR_PEERING_LIFETIME": "20"}
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


def test_ledger_outage_shows_in_conditions_and_heals(kube: Kubectl, tmp_path, disposable_postgres_server) -> None:
    """Postgres stopped under a running operator: LedgerReachable and Ready go False (with Events);
    CopyTrades wait; when it is back everything converges without a restart."""
    from .conftest import OperatorProcess, release_finalizers

    server = disposable_postgres_server
    dsn = server.create_database("ledger_outage")
    op = OperatorProcess(namespace=kube.namespace, dsn=dsn, log_path=tmp_path / "operator.log")
    try:
        op.wait_started()
        kube.apply(strategy("alpha"))

        def condition(type_: str) -> str | None:
            obj = kube.get("tradingstrategy", "alpha") or {}
            return next((c["status"] for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), None)

        wait_for(lambda: condition("Ready") == "True", 90, "Ready")
        server.stop()
        wait_for(lambda: condition("LedgerReachable") == "False", 60, "LedgerReachable False")
        assert condition("Ready") == "False"
        kube.apply(copytrade("during", "alpha", signature("lead-during-outage")))
        server.start()
        wait_for(lambda: condition("LedgerReachable") == "True" and condition("Ready") == "True", 90, "healed")
        obj = wait_for(lambda: ((kube.get("copytrade", "during") or {}).get("status") or {}).get("tradeId"), 90,
                       "admitted after the outage")
        assert obj
        # kopf posts Events from a background queue, after the status patch: wait for them
        wait_for(lambda: {"LedgerReachableFalse", "LedgerReachableTrue"} <= {e["reason"] for e in kube.events("alpha")},
                 30, "the LedgerReachable Events")
        assert op.stop() == 0, "graceful shutdown on SIGTERM"
    finally:
        op.stop()
        release_finalizers(kube)
    assert "Traceback" not in op.log_text()
