"""The report reads every figure from the journal's own probe outputs, and a run whose hypothesis was
not met before the method is not a pass (chaostoolkit calls it "completed")."""

from __future__ import annotations

import json
from pathlib import Path

from xorj.chaos import report


def _journal(tmp_path: Path, name: str, *, before_met: bool = True, after_met: bool = True, deviated: bool = False,
             duplicates: int = 0, duplicate_fills: int = 0, orphans: int = 0) -> Path:
    terminal = {"trades": 40, "confirmed": 37, "failed": 3, "open": 0, "ok": True, "recovered_after_s": 4.2,
                "failed_reasons": {"SLIPPAGE_EXCEEDED": 3}}

    def probe(name: str, output: object) -> dict:
        return {"activity": {"name": name}, "output": output, "tolerance_met": True, "status": "succeeded"}

    journal = {
        "experiment": {"title": "A scenario"}, "status": "completed", "deviated": deviated, "duration": 12.5,
        "steady_states": {
            "before": {"steady_state_met": before_met, "probes": []},
            "after": {"steady_state_met": after_met, "probes": [
                probe("no-duplicate-trades", duplicates),
                probe("no-duplicate-onchain-transactions", {"violations": duplicate_fills, "duplicate_fills": duplicate_fills}),
                probe("all-trades-terminal", terminal), probe("no-orphans", orphans),
                probe("alert-raised-ledger-unavailable", {"raised": True, "count": 2})]},
        },
        "run": [{"activity": {"name": "trades-after-recovery"}, "output": {**terminal, "trades": 1}}],
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(journal))
    return path


def test_row_figures_come_from_the_hypothesis_after_the_method(tmp_path):
    row = report.row_from_journal(_journal(tmp_path, "slippage", duplicates=1, duplicate_fills=2, orphans=3,
                                           after_met=False, deviated=True))
    assert (row.trades, row.confirmed, row.failed, row.duplicates, row.orphans, row.recover_s) == (40, 37, 3, 3, 3, 4.2)
    assert not row.passed
    assert "| slippage | DEVIATED | 40 | 37 | 3 | 3 | 3 | 4.2 | - | - | SLIPPAGE_EXCEEDED 3 |" in report.markdown([row])
    assert "ledger-unavailable: 2 alert(s)" in row.notes


def test_not_steady_before_is_not_a_pass(tmp_path):
    row = report.row_from_journal(_journal(tmp_path, "broken", before_met=False))
    assert not row.passed
    assert "| broken | NOT STEADY BEFORE |" in report.markdown([row])
    ok = report.row_from_journal(_journal(tmp_path, "fine"))
    assert ok.passed


def test_a_broken_hypothesis_names_the_probe_and_what_it_saw(tmp_path):
    path = _journal(tmp_path, "broken", before_met=False)
    journal = json.loads(path.read_text())
    journal["steady_states"]["before"]["probes"] = [
        {"activity": {"name": "ledger-reachable"}, "output": True, "tolerance_met": True, "status": "succeeded"},
        {"activity": {"name": "no-orphans"}, "output": 2, "tolerance_met": False, "status": "succeeded"},
        {"activity": {"name": "no-duplicate-onchain-transactions"}, "status": "failed",
         "exception": ["Traceback (most recent call last):\n", "  File x\n",
                       "httpx.ConnectError: [Errno 111] Connection refused\n"]}]
    path.write_text(json.dumps(journal))
    notes = report.row_from_journal(path).notes
    assert "before: no-orphans out of tolerance: 2" in notes
    assert "before: no-duplicate-onchain-transactions raised httpx.ConnectError: [Errno 111] Connection refused" in notes
    assert "ledger-reachable" not in notes
    assert "after:" not in notes


def test_write_produces_markdown_and_html(tmp_path):
    journals = tmp_path / "journals"
    journals.mkdir()
    _journal(journals, "a")
    rows = report.write(journals, tmp_path)
    assert len(rows) == 1
    assert (tmp_path / "report.md").read_text().startswith("| scenario |")
    assert "<table>" in (tmp_path / "report.html").read_text()


def test_the_networkpolicy_cut_says_what_it_narrowed_and_that_it_held(tmp_path):
    path = _journal(tmp_path, "ledger-partition-networkpolicy")
    journal = json.loads(path.read_text())
    journal["run"].insert(0, {"activity": {"name": "cut-ledger-egress"}, "output": {
        "narrowed": ["xorj-executors"], "added": None, "ledger_port": 5433, "sessions_ended": 8,
        "cut_held_after_s": 4.0}})
    path.write_text(json.dumps(journal))
    row = report.row_from_journal(path)
    assert "NetworkPolicy cut (xorj-executors): 8 executor sessions ended, none back for 3s after 4.0s" in row.notes


def _run_json(directory: Path, **overrides) -> dict:
    meta = {"set": "full", "target": "local", "started_at": "2026-12-01T14:00:00Z", "finished_at": "2026-12-01T14:41:30Z",
            "machine": {"cores": 2, "memory_bytes": 24 * 2**30, "platform": "Linux-6.1-x86_64", "python": "3.11.7"},
            "experiments": [{"name": "a", "trades": 500, "declared_trades": 50, "trade_scale": 10.0},
                            {"name": "b", "trades": 501, "declared_trades": 17, "trade_scale": 29.4118}]}
    meta.update(overrides)
    (directory / "run.json").write_text(json.dumps(meta))
    return meta


def test_run_description_says_which_set_when_on_what_machine_and_how_many_trades(tmp_path):
    text = report.describe_run(_run_json(tmp_path))
    assert "Set `full` on the local target: 2 experiments, at least 500 trades each (1001 trades planned in all)" in text
    assert "2026-12-01T14:00:00Z to 2026-12-01T14:41:30Z (41 min 30 s) UTC" in text
    assert "2 cores, 24.0 GiB memory" in text
    unfinished = report.describe_run(_run_json(tmp_path, finished_at=None, set="ci", experiments=[
        {"name": "a", "trades": 50, "declared_trades": 50, "trade_scale": 1.0}]))
    assert "Set `ci`" in unfinished and "did not finish" in unfinished and "the trades its file declares" in unfinished


def test_run_metadata_records_the_machine_it_ran_on():
    from xorj.chaos.sets import PlannedExperiment

    meta = report.run_metadata("full", [PlannedExperiment("a", 12, 500 / 12, 500)], target="local")
    assert meta["machine"]["cores"] >= 1 and meta["machine"]["memory_bytes"] > 0
    assert meta["experiments"] == [{"name": "a", "trades": 500, "declared_trades": 12, "trade_scale": 41.6667}]
    assert meta["set"] == "full" and meta["started_at"].endswith("Z") and meta["finished_at"] is None


def test_report_command_puts_the_run_description_above_the_table(tmp_path):
    from click.testing import CliRunner

    from xorj.chaos.command import chaos

    journals = tmp_path / "journals"
    journals.mkdir()
    _journal(journals, "a")
    _run_json(tmp_path)
    doc = tmp_path / "results.md"
    result = CliRunner().invoke(chaos, ["report", str(journals), "--markdown", str(doc)])
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert text.startswith("Set `full` on the local target") and "\n| scenario |" in text
    assert "2 cores" in (tmp_path / "report.md").read_text()


def test_alert_fired_and_resolved_columns_come_from_the_alertmanager_probes(tmp_path):
    path = _journal(tmp_path, "rpc")
    journal = json.loads(path.read_text())
    probes = journal["steady_states"]["after"]["probes"]
    probes.append({"activity": {"name": "alert-fired-breaker"}, "output": {
        "alert": "XorjCircuitBreakerOpen", "injected": True, "fired": True, "resolved": True, "ok": True,
        "fired_after_s": 61.5, "resolved_after_s": 12.0}})
    probes.append({"activity": {"name": "alert-fired-ledger"}, "output": {
        "alert": "XorjLedgerUnreachable", "injected": True, "fired": True, "resolved": False, "ok": False,
        "fired_after_s": 125.0, "resolved_after_s": None}})
    probes.append({"activity": {"name": "alert-fired-halt"}, "output": {
        "alert": "XorjTradingHalted", "injected": False, "ok": True, "fired_after_s": None}})
    path.write_text(json.dumps(journal))

    row = report.row_from_journal(path)

    assert (row.alert_fired_s, row.alert_resolved_s) == (125.0, 12.0)
    assert "XorjLedgerUnreachable did not resolve" in row.notes
    table = report.markdown([row])
    assert "| time to recover (s) | alert fired (s) | alert resolved (s) |" in table
    assert "| 4.2 | 125.0 | 12.0 | SLIPPAGE_EXCEEDED 3 |" in table
    assert "<th>alert fired (s)</th><th>alert resolved (s)</th>" in report.html_report([row])


def test_a_run_whose_alert_did_not_fire_or_resolve_does_not_pass(tmp_path):
    """chaostoolkit does not apply a background method probe's tolerance: an alert that Alertmanager
    never showed (or never cleared) would pass unnoticed unless the report judges it."""
    path = _journal(tmp_path, "rpc")
    assert report.row_from_journal(path).passed
    journal = json.loads(path.read_text())
    journal["steady_states"]["after"]["probes"].append({"activity": {"name": "alert-fired-XorjRpcErrors"}, "output": {
        "alert": "XorjRpcErrors", "injected": True, "checked": True, "fired": False, "resolved": False, "ok": False,
        "fired_after_s": None, "resolved_after_s": None}})
    path.write_text(json.dumps(journal))

    row = report.row_from_journal(path)

    assert not row.passed and not row.alerts_ok
    assert "XorjRpcErrors did not fire" in row.notes
    assert "| rpc | ALERT MISSED |" in report.markdown([row])


def test_an_alert_probe_before_its_fault_or_that_fired_and_resolved_keeps_the_run_passing(tmp_path):
    path = _journal(tmp_path, "rpc")
    journal = json.loads(path.read_text())
    journal["steady_states"]["after"]["probes"] += [
        {"activity": {"name": "alert-fired-a"}, "output": {"alert": "A", "injected": False, "ok": True}},
        {"activity": {"name": "alert-fired-b"}, "output": {"alert": "B", "injected": True, "fired": True,
                                                          "resolved": True, "ok": True, "fired_after_s": 3.0,
                                                          "resolved_after_s": 9.0}}]
    path.write_text(json.dumps(journal))

    assert report.row_from_journal(path).passed


def test_an_operator_pod_deleted_and_its_replacement_are_noted(tmp_path):
    """operator-killed on the real node: the pod kill_operator deleted, and the one its Deployment
    started, Ready after how long (start_operator)."""
    path = _journal(tmp_path, "operator-killed")
    journal = json.loads(path.read_text())
    journal["run"] += [{"activity": {"name": "kill-operator"}, "output": {"deleted": ["xorj-operator-7d9-abcde"]}},
                       {"activity": {"name": "start-operator"},
                        "output": {"ready": "xorj-operator-7d9-fghij", "replaced": ["xorj-operator-7d9-abcde"],
                                   "ready_after_s": 21.4}}]
    path.write_text(json.dumps(journal))
    notes = report.row_from_journal(path).notes
    assert "kill-operator: pod xorj-operator-7d9-abcde deleted" in notes
    assert "start-operator: pod xorj-operator-7d9-fghij Ready 21.4s after" in notes
