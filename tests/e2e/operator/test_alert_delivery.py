"""The ledger's alert outbox delivered to Kubernetes Events exactly once (xorj.controller.alerts),
against real Postgres and the real local API server: one Event per alert, on its CopyTrade or its
TradingStrategy; a deliverer SIGKILLed between creating the Event and marking the alert does not
cause a second Event; concurrent deliverers never deliver one alert twice; the operator process
delivers what the executors write."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from typing import Any

import pytest
from lightkube import Client

from tests.integration.ledger.helpers import intent
from tests.polling import wait_for
from xorj.controller.alerts import AlertEventPoster, blocking_client, deliver_pending, event_name
from xorj.controller.kube import load_config
from xorj.ledger import Ledger, TradeIntent

from .conftest import Kubectl
from .manifests import copytrade, signature, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def alert_events(kube: Kubectl) -> list[dict[str, Any]]:
    items = json.loads(kube.run("get", "events", "-l", "trading.xorj.io/alert-kind", "-o", "json").stdout)["items"]
    return items


def new_kube() -> Client:
    return blocking_client(load_config())


def trade_intent(namespace: str, n: int) -> TradeIntent:
    return dataclasses.replace(intent(n, strategy=f"{namespace}/alpha"), copytrade=f"{namespace}/ct-{n}")


def test_each_alert_is_one_event_on_its_copytrade_or_strategy(kube: Kubectl, ledger: Ledger) -> None:
    ns = kube.namespace
    kube.apply(strategy("alpha"))
    kube.apply(copytrade("ct-1", "alpha", signature("ct-1")))
    strategy_uid = kube.get("tradingstrategy", "alpha")["metadata"]["uid"]
    copytrade_uid = kube.get("copytrade", "ct-1")["metadata"]["uid"]
    trade_id = ledger.admit_trade(trade_intent(ns, 1)).trade_id
    on_trade = ledger.raise_alert("ONCHAIN_FAILURE", "warning", "swap failed on chain: SlippageExceeded",
                                  strategy=f"{ns}/alpha", trade_id=trade_id)
    on_strategy = ledger.raise_alert("BREAKER_TRIPPED", "critical", "breaker open after 3 failures "
                                     "calling https://rpc.example/?api-key=SECRET123", strategy=f"{ns}/alpha")
    k = new_kube()
    try:
        poster = AlertEventPoster(k, "test")
        delivered = deliver_pending(ledger, poster)
        assert [a.alert_id for a in delivered] == [on_trade.alert_id, on_strategy.alert_id]
        assert deliver_pending(ledger, poster) == [], "a delivered alert was delivered again"
    finally:
        k.close()
    assert ledger.pending_alerts() == []
    events = {e["metadata"]["name"]: e for e in alert_events(kube)}
    assert set(events) == {event_name(on_trade), event_name(on_strategy)}
    trade_event, strategy_event = events[event_name(on_trade)], events[event_name(on_strategy)]
    involved = trade_event["involvedObject"]
    assert (involved["kind"], involved["name"], involved["uid"]) == ("CopyTrade", "ct-1", copytrade_uid)
    assert trade_event["reason"] == "OnchainFailure" and trade_event["type"] == "Warning"
    assert "SlippageExceeded" in trade_event["message"]
    assert strategy_event["involvedObject"]["kind"] == "TradingStrategy"
    assert strategy_event["involvedObject"]["uid"] == strategy_uid
    assert strategy_event["reason"] == "BreakerTripped"
    assert "SECRET123" not in strategy_event["message"], "a URL's API key reached an Event"
    described = kube.run("describe", "tradingstrategy", "alpha").stdout
    assert "BreakerTripped" in described


KILLED_DELIVERER = textwrap.dedent("""
    import os, signal, sys
    from xorj.controller.alerts import AlertEventPoster, blocking_client
    from xorj.controller.kube import load_config
    from xorj.ledger import Ledger

    ledger = Ledger.connect(sys.argv[1], apply_migrations=False)
    poster = AlertEventPoster(blocking_client(load_config()), "doomed")

    def deliver_then_die(claimed):
        poster(claimed)
        print("event created", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # after the Event, before the mark commits

    ledger.deliver_next_alert(deliver_then_die)
""")


def test_a_deliverer_killed_between_event_and_mark_leaves_one_event(kube: Kubectl, ledger: Ledger,
                                                                      ledger_dsn: str) -> None:
    ns = kube.namespace
    kube.apply(strategy("alpha"))
    alert = ledger.raise_alert("RPC_FAILURE", "warning", "RPC unreachable", strategy=f"{ns}/alpha")
    done = subprocess.run([sys.executable, "-c", KILLED_DELIVERER, ledger_dsn], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "event created" in done.stdout
    assert [a.alert_id for a in ledger.pending_alerts()] == [alert.alert_id], "the mark must not have committed"
    assert [e["metadata"]["name"] for e in alert_events(kube)] == [event_name(alert)]

    k = new_kube()
    try:
        poster = AlertEventPoster(k, "survivor")
        assert [a.alert_id for a in deliver_pending(ledger, poster)] == [alert.alert_id]
        assert (poster.created, poster.already_there) == (0, 1), "the survivor created a second Event"
    finally:
        k.close()
    assert ledger.pending_alerts() == []
    events = alert_events(kube)
    assert [e["metadata"]["name"] for e in events] == [event_name(alert)]
    assert events[0]["count"] == 1


def test_concurrent_deliverers_deliver_each_alert_once(kube: Kubectl, ledger: Ledger) -> None:
    ns = kube.namespace
    kube.apply(strategy("alpha"))
    alerts = [ledger.raise_alert("RPC_FAILURE", "warning", f"RPC unreachable #{i}", strategy=f"{ns}/alpha")
              for i in range(40)]
    posters: list[AlertEventPoster] = []
    delivered: list[list[int]] = []
    start = threading.Barrier(4)

    def deliverer() -> None:
        k = new_kube()
        poster = AlertEventPoster(k, f"deliverer-{threading.get_ident()}")
        posters.append(poster)
        start.wait()
        try:
            delivered.append([a.alert_id for a in deliver_pending(ledger, poster)])
        finally:
            k.close()

    threads = [threading.Thread(target=deliverer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    every = [alert_id for one in delivered for alert_id in one]
    assert sorted(every) == sorted(a.alert_id for a in alerts), "an alert was delivered twice or not at all"
    assert sum(p.created for p in posters) == 40 and sum(p.already_there for p in posters) == 0
    assert ledger.pending_alerts() == []
    names = [e["metadata"]["name"] for e in alert_events(kube)]
    assert sorted(names) == sorted(event_name(a) for a in alerts)


def test_the_operator_delivers_the_outbox(kube: Kubectl, ledger: Ledger, operators: Any) -> None:
    ns = kube.namespace
    op = operators(extra_env={"XORJ_OPERATOR_ALERT_DELIVERY_SECONDS": "0.5"})
    alert = ledger.raise_alert("KILL_SWITCH", "critical", "trading halted by the kill switch",
                               strategy=f"{ns}/alpha")
    wait_for(lambda: [e for e in alert_events(kube) if e["metadata"]["name"] == event_name(alert)], 30,
             "the operator to post the alert's Event")
    wait_for(lambda: ledger.pending_alerts() == [], 30, "the alert to be marked delivered")

    def delivered_count() -> str:
        text = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).read().decode()
        return next((line for line in text.splitlines() if line.startswith("xorj_operator_alerts_delivered_total{")
                     and 'kind="KILL_SWITCH"' in line), "")
    line = wait_for(delivered_count, 15, "the delivered counter")
    assert line.endswith(" 1.0"), line


def test_an_alert_the_api_server_refuses_does_not_hold_up_the_others(kube: Kubectl, ledger: Ledger,
                                                                      k8s_cluster: Any) -> None:
    """A namespace being deleted refuses new Events (403): its alert stays undelivered, the alerts
    after it are delivered; an alert of a namespace that is gone (404) is counted and marked."""
    ns = kube.namespace
    kube.apply(strategy("alpha"))
    closing = f"{ns}-closing"
    k8s_cluster.kubectl("create", "namespace", closing)
    k8s_cluster.kubectl("create", "configmap", "held", "-n", closing)
    k8s_cluster.kubectl("patch", "configmap", "held", "-n", closing, "--type=merge",
                        "-p", '{"metadata":{"finalizers":["xorj.test/hold"]}}')
    try:
        k8s_cluster.kubectl("delete", "namespace", closing, "--wait=false")
        refused = ledger.raise_alert("RPC_FAILURE", "warning", "refused", strategy=f"{closing}/alpha")
        gone = ledger.raise_alert("RPC_FAILURE", "warning", "gone", strategy="no-such-namespace-x1/alpha")
        after = ledger.raise_alert("RPC_FAILURE", "warning", "after", strategy=f"{ns}/alpha")
        k = new_kube()
        try:
            poster = AlertEventPoster(k, "test")
            delivered = deliver_pending(ledger, poster)
        finally:
            k.close()
        assert [a.alert_id for a in delivered] == [gone.alert_id, after.alert_id]
        assert (poster.created, poster.namespace_gone) == (1, 1)
        assert [a.alert_id for a in ledger.pending_alerts()] == [refused.alert_id]
        assert [e["metadata"]["name"] for e in alert_events(kube)] == [event_name(after)]
    finally:
        k8s_cluster.kubectl("patch", "configmap", "held", "-n", closing, "--type=merge",
                            "-p", '{"metadata":{"finalizers":null}}', check=False)
