"""TradingStrategy on the real cluster: created, updated, paused, resumed, deleted."""

from __future__ import annotations

import pytest

from tests.polling import wait_for
from xorj.controller.tradingstrategy.desired import CONFIG_HASH_ANNOTATION

from .conftest import Kubectl
from .manifests import strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

CHILDREN = (("deployment", "alpha-executor"), ("configmap", "alpha-executor-config"),
            ("service", "alpha-executor"), ("poddisruptionbudget", "alpha-executor"))


def _condition(obj: dict, type_: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return cond
    return None


def _status_is(kube: Kubectl, name: str, **expected: str):
    def check():
        obj = kube.get("tradingstrategy", name)
        if obj is None:
            return None
        for type_, value in expected.items():
            cond = _condition(obj, type_)
            if cond is None or cond["status"] != value:
                return None
        if obj["status"].get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj
    return check


def _template_hash(kube: Kubectl) -> str:
    dep = kube.get("deployment", "alpha-executor")
    return dep["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]


def _paused_gauge(operator, kube: Kubectl, name: str) -> float | None:
    """The operator's xorj_operator_strategy_paused sample for the strategy, None without a series. A
    paused strategy has no executor left to report the kill switch, so the alert relies on this one."""
    import urllib.request

    exposition = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
    wanted = f'xorj_operator_strategy_paused{{strategy="{kube.namespace}/{name}"}}'
    for line in exposition.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_strategy_lifecycle(kube: Kubectl, operators) -> None:
    operator = operators()
    kube.apply(strategy("alpha", executor={"replicas": 2}))

    # created: four children, owned by the strategy, executors available
    obj = wait_for(_status_is(kube, "alpha", Ready="True", ExecutorsAvailable="True", LedgerReachable="True",
                              Paused="False"), 90, "strategy alpha Ready")
    uid = obj["metadata"]["uid"]
    for kind, name in CHILDREN:
        child = kube.get(kind, name)
        assert child is not None, f"{kind}/{name} missing"
        refs = child["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("TradingStrategy", uid, True)]
    dep = kube.get("deployment", "alpha-executor")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["xorj", "executor"]
    assert obj["status"]["executors"] == "2/2"
    assert obj["status"]["trades"] == {"pending": 0, "submitted": 0, "confirmed": 0, "failed": 0}
    assert obj["status"]["followedTraderCount"] == 1
    assert _paused_gauge(operator, kube, "alpha") == 0.0
    printed = kube.run("get", "ts", "alpha").stdout
    assert "READY" in printed and "EXECUTORS" in printed and "2/2" in printed

    # updated: the ConfigMap changes and the executors roll (new pod-template hash)
    before = _template_hash(kube)
    kube.apply(strategy("alpha", executor={"replicas": 2}, slippage={"initialBps": 150}))
    wait_for(lambda: _template_hash(kube) != before, 30, "the executors to roll")
    assert kube.get("configmap", "alpha-executor-config")["data"]["XORJ_SLIPPAGE_INITIAL_BPS"] == "150"
    wait_for(_status_is(kube, "alpha", Ready="True"), 60, "Ready after the update")

    # paused: scaled to zero, Paused condition, an Event; the pod template does not change
    rolled = _template_hash(kube)
    kube.apply(strategy("alpha", executor={"replicas": 2}, slippage={"initialBps": 150}, paused=True))
    obj = wait_for(_status_is(kube, "alpha", Paused="True", ExecutorsAvailable="True"), 60, "paused")
    assert kube.get("deployment", "alpha-executor")["spec"]["replicas"] == 0
    assert _template_hash(kube) == rolled
    assert obj["status"]["executors"] == "0/0"
    reasons = {e["reason"] for e in kube.events("alpha")}
    assert "PausedTrue" in reasons, reasons
    assert _paused_gauge(operator, kube, "alpha") == 1.0

    # resumed
    kube.apply(strategy("alpha", executor={"replicas": 2}, slippage={"initialBps": 150}, paused=False))
    wait_for(_status_is(kube, "alpha", Paused="False", Ready="True"), 90, "resumed and Ready")
    assert kube.get("deployment", "alpha-executor")["spec"]["replicas"] == 2
    assert _paused_gauge(operator, kube, "alpha") == 0.0

    # deleted: the finalizer lets go (no trades in flight) and garbage collection takes the children
    kube.run("delete", "tradingstrategy", "alpha", "--wait=false")
    wait_for(lambda: kube.get("tradingstrategy", "alpha") is None, 60, "the strategy to go")
    # a deleted strategy leaves no series behind, or its last value would keep the alert firing
    wait_for(lambda: _paused_gauge(operator, kube, "alpha") is None, 30, "the paused series to go")
    for kind, name in CHILDREN:
        wait_for(lambda k=kind, n=name: kube.get(k, n) is None, 90, f"{kind}/{name} to be collected")


def test_hand_edited_executors_are_put_back_in_process(kube: Kubectl, ledger_dsn: str, monkeypatch) -> None:
    """The operator in-process under kopf's KopfRunner (with a timeout: a start-up error must not hang
    the run). Level-triggered: the periodic reconcile puts back a Deployment scaled or deleted by hand."""
    from kopf.testing import KopfRunner

    from .conftest import free_port

    for key, value in {
        "XORJ_LEDGER_DSN": ledger_dsn, "XORJ_OPERATOR_STANDALONE": "true",
        "XORJ_OPERATOR_HEALTH_HOST": "127.0.0.1", "XORJ_OPERATOR_HEALTH_PORT": str(free_port()),
        "XORJ_OPERATOR_METRICS_PORT": str(free_port()), "XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": "true",
    }.items():
        monkeypatch.setenv(key, value)
    args = ["run", "--standalone", "--namespace", kube.namespace, "-m", "xorj.controller.handlers"]
    with KopfRunner(args, timeout=300) as runner:
        kube.apply(strategy("alpha", executor={"replicas": 2}))
        wait_for(_status_is(kube, "alpha", Ready="True"), 90, "Ready")
        kube.run("scale", "deployment", "alpha-executor", "--replicas=5")
        wait_for(lambda: kube.get("deployment", "alpha-executor")["spec"]["replicas"] == 2, 30,
                 "replicas put back to 2")
        kube.run("delete", "deployment", "alpha-executor")
        wait_for(lambda: kube.get("deployment", "alpha-executor"), 30, "the Deployment re-created")
        kube.run("delete", "tradingstrategy", "alpha", "--timeout=60s")
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0, runner.output[-3000:]
    assert "Traceback" not in runner.output, runner.output[-6000:]


def test_top_n_strategy_follows_the_best_scored_traders(kube: Kubectl, operators, ledger) -> None:
    """Followed traders and their Trust Scores come from the ledger's trader_scores, re-read on resync."""
    from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C
    from xorj.ledger import StoredTraderScore

    operators()
    obj = strategy("topn")
    del obj["spec"]["traders"]
    obj["spec"]["topN"] = {"count": 2, "minTrustScore": 50}
    kube.apply(obj)
    wait_for(lambda: ((kube.get("ts", "topn") or {}).get("status") or {}).get("followedTraderCount") == 0, 60,
             "an empty selection before any score exists")
    ledger.upsert_trader_scores([
        StoredTraderScore(wallet=PUBKEY_A, score=71.5, status="ELIGIBLE", normalization="fixed"),
        StoredTraderScore(wallet=PUBKEY_B, score=88.0, status="ELIGIBLE", normalization="fixed"),
        StoredTraderScore(wallet=PUBKEY_C, score=64.0, status="ELIGIBLE", normalization="fixed"),
    ])

    def followed():
        status = (kube.get("ts", "topn") or {}).get("status") or {}
        return status.get("followedTraders") if status.get("followedTraderCount") == 2 else None

    top = wait_for(followed, 60, "the top 2 traders")
    assert [(t["wallet"], t["trustScore"]) for t in top] == [(PUBKEY_B, 88.0), (PUBKEY_A, 71.5)]
