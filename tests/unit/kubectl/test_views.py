"""The plugin's pure views: filters, tables, explain, status, scores and explorer links."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, VAULT
from xorj.domain.risk import BreakerState
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.executor.metrics import ExecutorMetrics
from xorj.kubectl import views
from xorj.kubectl.errors import PluginError
from xorj.ledger.records import StoredTraderScore, TradingHalt

from .objects import NOW, SIG_1, SIG_2, attempt, confirmed_after_slippage, copytrade, strategy, trade


def _failed(trade_id: int, minutes_ago: int, detail: str = "over limit") -> dict:
    t = trade(trade_id, TradeState.FAILED, created=NOW - timedelta(minutes=minutes_ago + 1),
              reason=ReasonCode.RISK_LIMIT, detail=detail, finished=NOW - timedelta(minutes=minutes_ago))
    return copytrade(f"f{trade_id}", t)


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "delta"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("2d", 172800)])
def test_since_accepts_durations(text: str, delta: int) -> None:
    assert views.parse_since(text, NOW) == NOW - timedelta(seconds=delta)


def test_since_accepts_a_time_and_refuses_anything_else() -> None:
    assert views.parse_since("2026-12-01T09:00:00Z", NOW).hour == 9
    with pytest.raises(PluginError) as err:
        views.parse_since("yesterday", NOW)
    assert "--since" in err.value.message and "30m" in (err.value.hint or "")


def test_an_unknown_state_is_refused_naming_the_states() -> None:
    with pytest.raises(PluginError) as err:
        views.select_trades([], state="DONE")
    assert "PENDING" in (err.value.hint or "") and "CONFIRMED" in (err.value.hint or "")


# -- trades ----------------------------------------------------------------------------------------


def test_trades_filter_by_strategy_state_and_since_newest_first() -> None:
    old = copytrade("old", trade(1, TradeState.PENDING, created=NOW - timedelta(days=3)))
    other = copytrade("other", trade(2, TradeState.PENDING, created=NOW - timedelta(minutes=5)), strategy="beta")
    recent = copytrade("recent", trade(3, TradeState.PENDING, created=NOW - timedelta(minutes=2)))
    done = copytrade("done", confirmed_after_slippage(4))
    everything = [old, other, recent, done]

    assert [r["name"] for r in views.select_trades(everything)] == ["recent", "other", "done", "old"]
    assert [r["name"] for r in views.select_trades(everything, strategy="alpha",
                                                   since=NOW - timedelta(hours=1))] == ["recent", "done"]
    assert [r["name"] for r in views.select_trades(everything, state="confirmed")] == ["done"]


def test_trades_table_has_kubectl_columns_and_shortens_signatures() -> None:
    rows = views.select_trades([copytrade("done", confirmed_after_slippage())])
    text = views.trades_table(rows, NOW, all_namespaces=True)
    header, line = text.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "STRATEGY", "TRADE", "STATE", "ATTEMPTS", "REASON", "SIGNATURE",
                              "AGE"]
    assert line.split() == ["ns1", "done", "alpha", "7", "CONFIRMED", "2", "-", SIG_2[:12] + "...", "30m"]
    assert "NAMESPACE" not in views.trades_table(rows, NOW, all_namespaces=False)
    assert views.trades_table([], NOW, all_namespaces=False) == "No trades found."


def test_trade_rows_redact_credentials_in_messages() -> None:
    ct = _failed(9, 1, detail="rpc https://user:hunter2@rpc.example/?api-key=s3cret failed")
    row = views.trade_row(ct)
    assert "hunter2" not in json.dumps(row) and "s3cret" not in json.dumps(row)


# -- explain ---------------------------------------------------------------------------------------


def test_explorer_links_name_the_cluster_except_mainnet() -> None:
    assert views.explorer_link(SIG_1) == f"https://explorer.solana.com/tx/{SIG_1}"
    assert views.explorer_link(SIG_1, "devnet") == f"https://explorer.solana.com/tx/{SIG_1}?cluster=devnet"
    custom = views.explorer_link(SIG_1, "custom", "http://127.0.0.1:8899")
    assert custom.endswith("?cluster=custom&customUrl=http%3A%2F%2F127.0.0.1%3A8899")
    # a URL with a key is never put in a link
    assert "secret" not in views.explorer_link(SIG_1, "custom", "https://rpc.example/?api-key=secret")
    assert "pw" not in views.explorer_link(SIG_1, "custom", "https://u:pw@rpc.example/")
    with pytest.raises(PluginError):
        views.explorer_link(SIG_1, "localnet")


def test_explain_lists_each_attempt_with_slot_reason_and_link() -> None:
    ct = copytrade("done", confirmed_after_slippage())
    statuses = {SIG_1: views.SignatureStatus(310, "finalized", "instruction 2: custom program error 6001"),
                SIG_2: views.SignatureStatus(None, None, None)}
    view = views.explain_view(ct, statuses, cluster="mainnet-beta")
    first, second = view["attemptsDetail"]
    assert (first["number"], first["signature"], first["slot"], first["outcome"], first["reason"]) == (
        1, SIG_1, 310, "FAILED_ON_CHAIN", "SLIPPAGE_EXCEEDED")
    assert first["chainError"].endswith("6001")
    assert first["explorer"] == f"https://explorer.solana.com/tx/{SIG_1}"
    assert second["slot"] is None and second["outcome"] == "LANDED"
    text = views.explain_text(view)
    assert "SLIPPAGE_EXCEEDED" in text and "310" in text and "not found" in text
    assert f"#2: https://explorer.solana.com/tx/{SIG_2}" in text

    without_rpc = views.explain_text(views.explain_view(ct, None, cluster="devnet"))
    assert "--rpc-url" in without_rpc and "?cluster=devnet" in without_rpc


def test_explain_of_a_trade_refused_before_signing_says_nothing_was_signed() -> None:
    view = views.explain_view(_failed(5, 2), None, cluster="mainnet-beta")
    assert view["attemptsDetail"] == [] and view["reason"] == "RISK_LIMIT"
    assert "nothing was signed" in views.explain_text(view)


# -- status ----------------------------------------------------------------------------------------


def _status(obj: dict, **kwargs) -> dict:
    base = {"deployment": None, "pods": [], "copytrades": [], "scores": None, "scores_error": None,
            "halt": views.halt_view(None, "no DSN", []), "breakers": {}, "now": NOW}
    base.update(kwargs)
    return views.status_view(strategy=obj, **base)


def test_status_counts_today_against_the_limits_and_orders_failures() -> None:
    obj = strategy(risk={"maxDailyTrades": 3, "maxDailyVolumeUsd": 500.0})
    yesterday = trade(1, TradeState.CONFIRMED, created=NOW - timedelta(days=1), submitted=NOW - timedelta(days=1),
                      finished=NOW - timedelta(days=1), final=SIG_1,
                      attempts=(attempt(1, 1, SIG_1, AttemptOutcome.LANDED),))
    cts = [copytrade("y", yesterday), copytrade("done", confirmed_after_slippage()), _failed(8, 50), _failed(9, 5),
           copytrade("beta", confirmed_after_slippage(11), strategy="beta")]
    view = _status(obj, copytrades=cts)
    assert view["today"]["sent"] == 1 and view["today"]["admitted"] == 3
    assert view["today"]["maxDailyTrades"] == 3 and view["today"]["maxDailyVolumeUsd"] == 500.0
    assert [f["name"] for f in view["lastFailures"]] == ["f9", "f8"]
    text = views.status_text(view, NOW)
    assert "1/3 sent against maxDailyTrades" in text and "RISK_LIMIT" in text
    assert "Vaults:" not in text  # a one-vault strategy reads as before


def test_status_shows_how_many_vaults_a_many_vault_strategy_fans_out_to() -> None:
    obj = strategy()
    obj["status"] = {"vaultCount": 3}
    view = _status(obj)
    assert view["vaultCount"] == 3
    assert "3 get each lead swap (this one and 2 Vault object(s): kubectl get vaults --field-selector " \
        "spec.strategy=alpha)" in views.status_text(view, NOW)


def test_status_prefers_fresh_ledger_scores_and_reports_halt_breaker_and_executors() -> None:
    obj = strategy()
    obj["status"] = {"followedTraders": [{"wallet": PUBKEY_A, "trustScore": 10.0, "status": "ELIGIBLE"}],
                     "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ready"}]}
    scores = [StoredTraderScore(PUBKEY_A, 42.5, "ELIGIBLE", rank=1)]
    halt = views.halt_view(TradingHalt(True, "incident 7", "operator/x", NOW),
                           None, [views.OperatorHalt("xorj/xorj-operator", True, "incident 7")])
    deployment = {"metadata": {"name": "alpha-executor"}, "spec": {"replicas": 2},
                  "status": {"readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 2}}
    pod = {"metadata": {"name": "alpha-executor-1"}, "status": {"phase": "Running", "containerStatuses": [
        {"ready": True, "restartCount": 3}]}}
    view = _status(obj, scores=scores, halt=halt, deployment=deployment, pods=[pod],
                   breakers={"alpha-executor-1": "OPEN"})
    assert view["leaders"] == [{"wallet": PUBKEY_A, "trustScore": 42.5, "status": "ELIGIBLE", "rank": 1,
                                "scoreFrom": "ledger"}]
    assert view["vault"] == {"publicKey": VAULT, "secretName": "vault-keypair"}
    text = views.status_text(view, NOW)
    assert "ON: every trade is refused (incident 7) (ledger)" in text
    assert "xorj/xorj-operator=on" in text
    assert "alpha-executor-1 OPEN" in text
    assert "1/2 ready (Deployment alpha-executor)" in text
    assert "42.5" in text
    json.dumps(view)  # -o json


def test_status_without_ledger_keeps_the_operators_scores_and_says_why() -> None:
    obj = strategy()
    obj["status"] = {"followedTraders": [{"wallet": PUBKEY_A, "trustScore": 10.0, "status": "ELIGIBLE"}]}
    view = _status(obj, scores_error="no read-only ledger DSN (--ledger-dsn)")
    assert view["leaders"][0]["trustScore"] == 10.0 and view["leaders"][0]["scoreFrom"] == "strategy status"
    text = views.status_text(view, NOW)
    assert "fresh scores unavailable" in text and "unknown in the ledger" in text
    assert "no executor running" in text


@pytest.mark.parametrize("state", list(BreakerState))
def test_breaker_state_is_read_from_an_executors_own_metrics(state: BreakerState) -> None:
    metrics = ExecutorMetrics("ns1/alpha")
    metrics.set_ledger_counts({TradeState.PENDING: 1, TradeState.FAILED: 2})  # other gauges with a state label
    metrics.set_breaker(state)
    assert views.breaker_from_metrics(generate_latest(metrics.registry).decode()) == state.value


def test_breaker_state_is_unknown_when_the_metrics_do_not_say() -> None:
    assert views.breaker_from_metrics("") is None
    assert views.breaker_from_metrics("<html>not metrics</html>") is None
    two = ('xorj_executor_breaker_state{strategy="a",state="OPEN"} 1\n'
           'xorj_executor_breaker_state{strategy="a",state="CLOSED"} 1\n')
    assert views.breaker_from_metrics(two) is None


def test_operator_halt_reads_the_deployment_env() -> None:
    dep = {"metadata": {"namespace": "xorj", "name": "xorj-operator"}, "spec": {"template": {"spec": {"containers": [
        {"name": "operator", "env": [{"name": "XORJ_LEDGER_DSN", "valueFrom": {"secretKeyRef": {"name": "s"}}},
                                     {"name": "XORJ_OPERATOR_GLOBAL_HALT", "value": "true"},
                                     {"name": "XORJ_OPERATOR_GLOBAL_HALT_REASON", "value": "drill"}]}]}}}}
    assert views.operator_halt(dep) == views.OperatorHalt("xorj/xorj-operator", True, "drill")
    dep["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "false"
    assert views.operator_halt(dep).halted is False


# -- scores ----------------------------------------------------------------------------------------


def test_scores_of_a_strategy_are_its_traders_or_its_topn_cohort() -> None:
    rows = [StoredTraderScore(PUBKEY_A, 30.0, "ELIGIBLE", normalization="fixed"),
            StoredTraderScore(PUBKEY_B, 50.0, "ELIGIBLE", normalization="cohort"),
            StoredTraderScore(VAULT, 0.0, "INSUFFICIENT_HISTORY", normalization="fixed")]
    explicit = views.scores_view(rows, strategy())
    assert [r["wallet"] for r in explicit["scores"]] == [PUBKEY_A] and explicit["scores"][0]["followed"]

    topn = strategy(traders=None, topN={"count": 1, "normalization": "cohort"})
    del topn["spec"]["traders"]
    cohort = views.scores_view(rows, topn)
    assert [r["wallet"] for r in cohort["scores"]] == [PUBKEY_B] and "cohort" in cohort["pool"]

    everyone = views.scores_view(rows, None)
    assert [r["score"] for r in everyone["scores"]] == [50.0, 30.0, 0.0]
    table = views.scores_table(everyone)
    assert table.splitlines()[0].split()[:3] == ["WALLET", "SCORE", "STATUS"]
    assert "xorj score" in views.scores_table(views.scores_view([], None))


def test_table_cells_stay_on_one_line() -> None:
    text = views.render_table((("A", "a"),), [{"a": "two\nlines"}])
    assert text.splitlines() == ["A", "two lines"]
