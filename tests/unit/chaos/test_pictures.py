"""The chaos report draws one timeline per experiment from the journals: fault windows shaded where
the run's marks put them, trades by state over time from the ledger timestamps the final probe
recorded, alert marks, the recovery. The SVG is parsed back and its shapes measured against the
axis the picture itself labels."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from xorj.chaos import pictures, report

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
E0 = T0.timestamp()


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _activity(name: str, start: float, end: float, output: object, func: str = "", kind: str = "action",
              arguments: dict | None = None) -> dict:
    provider = {"type": "python", "module": "xorj.chaos.actions", "func": func or name.replace("-", "_")}
    if arguments is not None:
        provider["arguments"] = arguments
    return {"activity": {"name": name, "type": kind, "provider": provider}, "start": _iso(start), "end": _iso(end),
            "output": output, "status": "succeeded"}


def _journal(directory: Path, name: str, *, timeline: bool = True) -> Path:
    """A run of 60 s: RPC faults from 2 s, ledger faults from 5 s, cleared at 20 s (by the method;
    the rollback clears again at 59 s), four trades, alerts at 6 s and 21 s, the last trade ending at
    26.5 s (6.5 s after the faults cleared)."""
    marks = {"begin": E0 + 0.5, "fault:RPC_FAILURE": E0 + 2, "fault:LEDGER_UNAVAILABLE": E0 + 5,
             "fault:last": E0 + 5, "load": E0 + 1, "cleared": E0 + 20, "loaded": 4}
    trades = [[E0 + 1, E0 + 1.5, E0 + 3, "CONFIRMED"],
              [E0 + 4, E0 + 8, E0 + 21, "CONFIRMED"],
              [E0 + 6, None, E0 + 7, "FAILED"],  # refused before any send
              [E0 + 10, E0 + 22, E0 + 26.5, "CONFIRMED"]]
    alerts = [["LEDGER_UNAVAILABLE", E0 + 6], ["RPC_FAILURE", E0 + 21, E0 + 30]]  # the second resolved at 30 s
    terminal = {"trades": 4, "confirmed": 3, "failed": 1, "open": 0, "ok": True, "last_finished": E0 + 26.5,
                "recovered_after_s": 6.5, "failed_reasons": {"RISK_LIMIT": 1}, "expected": 4}
    if timeline:
        terminal["timeline"] = {"marks": marks, "trades": trades, "alerts": alerts}
    journal = {
        "experiment": {"title": f"Scenario {name}"}, "status": "completed", "deviated": False,
        "start": _iso(0), "end": _iso(60), "duration": 60.0,
        "steady_states": {
            "before": {"steady_state_met": True, "probes": []},
            "after": {"steady_state_met": True, "probes": [
                _activity("all-trades-terminal", 58, 58.5, terminal, func="all_trades_terminal_within", kind="probe")]},
        },
        "run": [
            _activity("begin-run", 0.5, 0.5, {"run_id": f"{name}-1"}),
            _activity("rpc-down", 2, 2, {"fault_id": 1}, func="chain_fault"),
            _activity("load", 1, 11, {"submitted": 4}),
            _activity("fault-window", 5, 19.9, {"held_s": 15}, func="hold"),
            _activity("clear-chain-faults", 19.95, 20, {"cleared": True}),
            _activity("trades-after-recovery", 20, 27, {**terminal, "trades": 3, "open": 1, "confirmed": 2},
                      func="all_trades_terminal_within", kind="probe"),
        ],
        "rollbacks": [_activity("clear-chain-faults", 59, 59.1, {"cleared": True})],
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(journal))
    return path


def test_timeline_reads_windows_alerts_and_recovery_from_the_journal(tmp_path):
    timeline = pictures.timeline_from_journal(json.loads(_journal(tmp_path, "a").read_text()), "a")
    assert [(w.label, w.start, w.end) for w in timeline.windows] == [
        ("RPC_FAILURE", 2.0, 20.0), ("LEDGER_UNAVAILABLE", 5.0, 20.0)]
    assert [(a.kind, a.fired, a.resolved) for a in timeline.alerts] == [
        ("LEDGER_UNAVAILABLE", 6.0, None), ("RPC_FAILURE", 21.0, 30.0)]
    assert (timeline.cleared, timeline.recovered_at, timeline.recovered_after_s) == (20.0, 26.5, 6.5)
    assert [a.name for a in timeline.actions] == ["rpc-down", "load", "fault-window", "clear-chain-faults"]
    assert timeline.duration_s == 60.0


def test_a_fault_injected_after_the_last_clearing_lasts_to_the_end():
    windows = pictures.fault_windows({"fault:RPC_FAILURE": 10.0, "fault:ONCHAIN_FAILURE": 30.0, "cleared": 20.0,
                                      "paused": 5.0, "unpaused": 8.0}, end=60.0)
    assert [(w.label, w.start, w.end) for w in windows] == [
        ("kill switch (paused)", 5.0, 8.0), ("RPC_FAILURE", 10.0, 20.0), ("ONCHAIN_FAILURE", 30.0, 60.0)]


def test_states_over_time_follow_each_trades_timestamps(tmp_path):
    timeline = pictures.timeline_from_journal(json.loads(_journal(tmp_path, "a").read_text()), "a")
    counts = pictures.states_at(timeline.trades, [0.5, 1.2, 2.0, 6.5, 7.0, 12.0, 23.0, 27.0])
    assert counts["pending"] == [0, 1, 0, 2, 1, 1, 0, 0]
    assert counts["submitted"] == [0, 0, 1, 0, 0, 1, 1, 0]
    assert counts["confirmed"] == [0, 0, 0, 1, 1, 1, 2, 3]
    assert counts["failed"] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_step_outline_has_a_vertex_only_where_the_count_changes():
    xs, ys = pictures.step_outline([0.0, 1.0, 2.0, 3.0, 4.0], [0, 2, 2, 2, 1])
    assert list(zip(xs, ys)) == [(0.0, 0.0), (0.0, 0.0), (1.0, 0.0), (1.0, 2.0), (4.0, 2.0), (4.0, 1.0),
                                 (4.0, 1.0), (4.0, 0.0)]


def test_sample_times_are_the_state_changes_or_an_even_grid():
    trades = [(1.0, 2.0, 3.0, "CONFIRMED"), (2.0, None, 70.0, "FAILED")]
    assert pictures.sample_times(trades, 60.0) == [0.0, 1.0, 2.0, 3.0, 60.0]  # 70 s is past the run
    many = [(float(i) / 10, None, None, "PENDING") for i in range(500)]
    grid = pictures.sample_times(many, 50.0)
    assert len(grid) == pictures.SAMPLES and grid[0] == 0.0 and grid[-1] == 50.0


def _x_scale(axes: ET.Element) -> tuple[float, float]:
    """(data per pixel, data at pixel 0) of an axes, from its own x tick marks and their labels."""
    ticks = []
    for group in axes.iter(f"{SVG}g"):
        if not re.fullmatch(r"xtick_\d+", group.get("id", "")):
            continue
        texts = [t.text for t in group.iter(f"{SVG}text") if t.text]
        uses = [u for u in group.iter(f"{SVG}use")]
        if texts and uses:
            ticks.append((float(uses[0].get("x")), float(texts[0].replace("\u2212", "-"))))
    assert len(ticks) >= 2, "the timeline's time axis is labelled"
    (x1, v1), (x2, v2) = ticks[0], ticks[-1]
    slope = (v2 - v1) / (x2 - x1)
    return slope, v1 - slope * x1


def _path_x_extent(element: ET.Element) -> tuple[float, float]:
    """x extent of the shapes drawn in ``element`` (its own paths, not marker definitions)."""
    xs = []
    for path in element.findall(f"{SVG}path"):
        xs += [float(x) for x in re.findall(r"[ML] (-?[\d.]+) ", path.get("d", "") + " ")]
    return min(xs), max(xs)


def _by_id(root: ET.Element, prefix: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith(prefix)]


def test_svg_shades_each_fault_window_over_its_time_extent(tmp_path):
    timeline = pictures.timeline_from_journal(json.loads(_journal(tmp_path, "a").read_text()), "a")
    root = ET.fromstring(pictures.render_svg(timeline))
    trades_axes = next(a for a in _by_id(root, "axes_") if _by_id(a, "fault-shade-"))
    slope, offset = _x_scale(trades_axes)
    shades = _by_id(trades_axes, "fault-shade-")
    assert len(shades) == 2
    extents = [tuple(round(slope * x + offset, 1) for x in _path_x_extent(s)) for s in shades]
    assert extents == [(2.0, 20.0), (5.0, 20.0)]
    assert len(_by_id(root, "fault-window-")) == 2, "each window also has its lane"
    markers = {g.get("id"): len(list(g.iter(f"{SVG}use"))) for g in _by_id(root, "alert-")}
    assert markers == {"alert-fired-LEDGER_UNAVAILABLE": 1, "alert-fired-RPC_FAILURE": 1, "alert-resolved-RPC_FAILURE": 1}
    [recovery] = _by_id(root, "recovery")
    assert tuple(round(slope * x + offset, 1) for x in _path_x_extent(recovery)) == pytest.approx((20.0, 26.5), abs=0.3)
    assert {g.get("id") for g in _by_id(root, "trades-")} == {
        "trades-pending", "trades-submitted", "trades-confirmed", "trades-failed"}
    labels = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "RPC_FAILURE" in labels and "LEDGER_UNAVAILABLE" in labels and "recovered 6.5 s" in labels


def test_journal_without_a_timeline_uses_the_runs_marks_file_and_the_probe_readings(tmp_path):
    journals = tmp_path / "journals"
    journals.mkdir()
    _journal(journals, "old", timeline=False)
    run_dir = tmp_path / "env" / "runs" / "old-1"
    run_dir.mkdir(parents=True)
    # the rollback cleared again at 59 s and overwrote the mark: the method's clearing (20 s) counts
    run_dir.joinpath("marks.json").write_text(json.dumps({"begin": E0, "fault:RPC_FAILURE": E0 + 2, "cleared": E0 + 59.1}))
    [timeline] = pictures.read_timelines(journals)
    assert timeline.trades is None
    assert [(w.label, w.start, w.end) for w in timeline.windows] == [("RPC_FAILURE", 2.0, 20.0)]
    assert [(t, c["confirmed"]) for t, c in timeline.probe_counts] == [(27.0, 2), (58.5, 3)]
    root = ET.fromstring(pictures.render_svg(timeline))
    assert len(_by_id(root, "fault-shade-")) == 1
    assert {g.get("id") for g in _by_id(root, "trades-")} == {"trades-confirmed", "trades-failed", "trades-open"}


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.sections: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found["src"] or "")
        if tag == "section" and found.get("class") == "timeline":
            self.sections.append(found["id"] or "")
        if tag == "script":
            self.scripts += 1


def test_report_html_shows_one_timeline_per_experiment(tmp_path):
    journals = tmp_path / "journals"
    journals.mkdir()
    _journal(journals, "first")
    _journal(journals, "second")
    report.write(journals, tmp_path)
    page = _Images()
    page.feed((tmp_path / "report.html").read_text())
    assert page.sections == ["first", "second"]
    assert page.images == ["pictures/first.svg", "pictures/second.svg"]
    assert page.scripts == 0
    for src in page.images:
        root = ET.parse(tmp_path / src).getroot()
        assert root.tag == f"{SVG}svg" and len(_by_id(root, "fault-shade-")) == 2
        assert "<script" not in (tmp_path / src).read_text()
    html = (tmp_path / "report.html").read_text()
    assert "fault windows: RPC_FAILURE 2.0 s to 20.0 s, LEDGER_UNAVAILABLE 5.0 s to 20.0 s" in html
    assert "RPC_FAILURE first fired at 21.0 s (1 in all, 1 resolved)" in html
    assert "recovered 6.5 s after the faults cleared" in html
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("| scenario |")
    assert "![first timeline](pictures/first.svg)" in markdown and "![second timeline](pictures/second.svg)" in markdown


def test_chaos_report_command_writes_pictures_linked_from_the_markdown(tmp_path):
    from click.testing import CliRunner

    from xorj.chaos.command import chaos

    journals = tmp_path / "run" / "journals"
    journals.mkdir(parents=True)
    _journal(journals, "only")
    docs = tmp_path / "docs"
    docs.mkdir()
    result = CliRunner().invoke(chaos, ["report", str(journals), "--markdown", str(docs / "chaos-results.md"),
                                        "--pictures", str(docs / "chaos")])
    assert result.exit_code == 0, result.output
    assert "![only timeline](chaos/only.svg)" in (docs / "chaos-results.md").read_text()
    assert ET.parse(docs / "chaos" / "only.svg").getroot().tag == f"{SVG}svg"
    assert (tmp_path / "run" / "pictures" / "only.svg").exists() and (tmp_path / "run" / "report.html").exists()
