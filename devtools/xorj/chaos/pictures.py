"""Chaos journals -> one timeline picture per experiment (static SVG, drawn offline with matplotlib).

Each timeline has two panels sharing the time axis (seconds since the experiment started):

- a lane per fault class, shaded from its first injection to the moment the faults were cleared
  (the run's marks, :mod:`xorj.chaos.marks`; the kill switch's pause as its own lane), and a lane
  per alert kind with a mark where each alert fired (and where it resolved, when the data says so:
  the ledger's outbox records only when an alert was raised);
- the run's trades by state over time (waiting, in flight, confirmed, failed), stacked, with the
  fault windows shaded behind them, and the recovery: from the faults being cleared to the last
  trade of the run ending.

Everything is read from the journal: the ``timeline`` that :func:`xorj.chaos.probes.run_timeline`
adds to the final ``all-trades-terminal`` output (marks, each trade's timestamps, outbox alerts).
Journals written before that existed have no timeline: their marks are read from the local chaos
environment's ``env/runs/RUN_ID/marks.json`` beside them when present, and their trades by state are
the counts the probes read during and after the method (points, not a curve).

The extraction (:func:`timeline_from_journal`, :func:`states_at`) is pure; :func:`render_svg` draws.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# what a state is called on the picture, in stacking order (bottom first), and its colour
STATES: tuple[tuple[str, str, str], ...] = (
    ("failed", "failed", "#d62728"),
    ("confirmed", "confirmed", "#2ca02c"),
    ("submitted", "in flight (SUBMITTED)", "#ff7f0e"),
    ("pending", "waiting (PENDING)", "#9ecae1"),
)
FAULT_COLOUR = "#fdae6b"
PAUSE_COLOUR = "#bcbddc"
ALERT_COLOUR = "#756bb1"
SAMPLES = 200  # points per state curve at most: enough for the shape, small enough for a small SVG


@dataclass(frozen=True)
class Window:
    """A fault window, seconds since the experiment started."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class AlertMark:
    kind: str
    fired: float
    resolved: float | None = None


@dataclass(frozen=True)
class Action:
    name: str
    start: float
    end: float


@dataclass
class Timeline:
    """What one experiment's picture shows; every time in seconds since the experiment started."""

    scenario: str
    title: str
    duration_s: float
    windows: list[Window] = field(default_factory=list)
    alerts: list[AlertMark] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    # [created, submitted, finished, state] per trade; None when the journal has no timeline
    trades: list[tuple[float, float | None, float | None, str]] | None = None
    # (time, {state: count}) read by probes, for journals without a timeline
    probe_counts: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    recovered_at: float | None = None  # the last trade of the run ended
    recovered_after_s: float | None = None  # ... this long after the faults were cleared

    @property
    def cleared(self) -> float | None:
        """When the recovery the probe measured began (faults cleared, or the last fault)."""
        if self.recovered_at is None or self.recovered_after_s is None:
            return None
        return round(self.recovered_at - self.recovered_after_s, 3)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _last_timeline(journal: dict[str, Any]) -> dict[str, Any] | None:
    """The timeline of the last probe that recorded one (the hypothesis after the method comes last)."""
    found = None
    after = (journal.get("steady_states") or {}).get("after") or {}
    for run in list(journal.get("run") or []) + list(after.get("probes") or []):
        output = run.get("output")
        if isinstance(output, dict) and isinstance(output.get("timeline"), dict):
            found = output["timeline"]
    return found


def _terminal_output(journal: dict[str, Any]) -> dict[str, Any]:
    after = (journal.get("steady_states") or {}).get("after") or {}
    for probe in after.get("probes") or []:
        if probe["activity"]["name"] == "all-trades-terminal" and isinstance(probe.get("output"), dict):
            return probe["output"]
    return {}


def run_id(journal: dict[str, Any]) -> str | None:
    """The run id the method's ``begin-run`` action reported (names the run's state directory)."""
    for run in journal.get("run") or []:
        output = run.get("output")
        if run["activity"]["name"] == "begin-run" and isinstance(output, dict):
            return output.get("run_id")
    return None


def fault_windows(run_marks: dict[str, Any], end: float) -> list[Window]:
    """One window per fault class, from its first injection (``fault:CLASS``) to ``cleared`` (or
    ``end`` when the faults were never cleared), and the kill switch's pause (``paused`` to
    ``unpaused``). Times as given (epoch seconds)."""
    def until(start: float, stop: Any) -> float:
        # a fault injected after the last clearing lasted to the end
        return float(stop) if stop is not None and float(stop) >= start else end

    cleared = run_marks.get("cleared")
    windows = [Window(key.removeprefix("fault:"), float(at), until(float(at), cleared))
               for key, at in run_marks.items() if key.startswith("fault:") and key != "fault:last"]
    if run_marks.get("paused") is not None:
        paused = float(run_marks["paused"])
        windows.append(Window("kill switch (paused)", paused, until(paused, run_marks.get("unpaused") or cleared)))
    return sorted(windows, key=lambda w: (w.start, w.label))


# the actions that end a fault window (each writes the run's ``cleared`` mark)
CLEARING_ACTIONS = frozenset({"clear_chain_faults", "price_swings", "restart_postgres", "restore_ledger_path",
                              "restore_ledger_egress", "start_operator", "restart_kube_apiserver"})


def method_cleared(journal: dict[str, Any]) -> float | None:
    """End (epoch seconds) of the method's last activity that cleared faults: a rollback clears again
    and overwrites the ``cleared`` mark, so a run's final marks file alone would stretch the windows
    to the end of the run."""
    found = None
    for run in journal.get("run") or []:
        provider = (run.get("activity") or {}).get("provider") or {}
        unpause = provider.get("func") == "set_kill_switch" and (provider.get("arguments") or {}).get("paused") is False
        if (provider.get("func") in CLEARING_ACTIONS or unpause) and run.get("end"):
            found = _epoch(run["end"])
    return found


def timeline_from_journal(journal: dict[str, Any], scenario: str,
                          fallback_marks: dict[str, Any] | None = None) -> Timeline:
    """The picture's content from one journal (pure: the caller reads the files)."""
    t0 = _epoch(journal["start"])
    end = _epoch(journal["end"]) if journal.get("end") else t0 + float(journal.get("duration") or 0.0)
    recorded = _last_timeline(journal)
    if recorded is not None:  # marks as the last probe saw them: before the rollbacks
        run_marks = dict(recorded.get("marks") or {})
    else:
        run_marks = dict(fallback_marks or {})
        cleared_in_method = method_cleared(journal)
        for key in ("cleared", "unpaused"):
            if cleared_in_method is not None and key in run_marks:
                run_marks[key] = min(float(run_marks[key]), cleared_in_method)

    def rel(value: float | None) -> float | None:
        return None if value is None else round(float(value) - t0, 3)

    windows = [Window(w.label, rel(w.start) or 0.0, rel(w.end) or 0.0) for w in fault_windows(run_marks, end)]
    alerts = []
    for entry in (recorded or {}).get("alerts") or []:
        kind, fired = entry[0], entry[1]
        resolved = entry[2] if len(entry) > 2 else None
        alerts.append(AlertMark(kind, rel(fired) or 0.0, rel(resolved)))
    actions = [Action(run["activity"]["name"], rel(_epoch(run["start"])) or 0.0, rel(_epoch(run["end"])) or 0.0)
               for run in journal.get("run") or []
               if run["activity"].get("type", "action") == "action" and run["activity"]["name"] != "begin-run"]
    trades = None
    if recorded is not None:
        trades = [(rel(created) or 0.0, rel(submitted), rel(finished), state)
                  for created, submitted, finished, state in recorded.get("trades") or []]
    probe_counts = []
    after = (journal.get("steady_states") or {}).get("after") or {}
    for run in list(journal.get("run") or []) + list(after.get("probes") or []):
        output = run.get("output")
        if isinstance(output, dict) and {"confirmed", "failed", "open"} <= output.keys() and run.get("end"):
            probe_counts.append((rel(_epoch(run["end"])) or 0.0,
                                 {"confirmed": int(output["confirmed"]), "failed": int(output["failed"]),
                                  "open": int(output["open"])}))
    terminal = _terminal_output(journal)
    return Timeline(
        scenario=scenario, title=(journal.get("experiment") or {}).get("title", scenario),
        duration_s=round(end - t0, 3), windows=windows, alerts=alerts, actions=actions, trades=trades,
        probe_counts=probe_counts, recovered_at=rel(terminal.get("last_finished")),
        recovered_after_s=terminal.get("recovered_after_s"))


def states_at(trades: Sequence[tuple[float, float | None, float | None, str]],
              times: Sequence[float]) -> dict[str, list[int]]:
    """How many of ``trades`` were in each state at each of ``times``: pending from admission until
    sent (or ended), submitted until it ended, then confirmed or failed."""
    counts: dict[str, list[int]] = {state: [0] * len(times) for state, _, _ in STATES}
    for index, t in enumerate(times):
        for created, submitted, finished, final in trades:
            if t < created:
                continue
            if finished is not None and t >= finished:
                state = "confirmed" if final == "CONFIRMED" else "failed"
            elif submitted is not None and t >= submitted:
                state = "submitted"
            else:
                state = "pending"
            counts[state][index] += 1
    return counts


def sample_times(trades: Sequence[tuple[float, float | None, float | None, str]], span: float) -> list[float]:
    """Where the state curves are evaluated: every moment a trade changed state (exact steps) when
    there are at most :data:`SAMPLES` of them, else an even grid of that many points over ``span``."""
    events = sorted({0.0, span} | {t for trade in trades for t in trade[:3] if t is not None and 0.0 <= t <= span})
    if len(events) <= SAMPLES:
        return events
    return [span * i / (SAMPLES - 1) for i in range(SAMPLES)]


def step_outline(times: Sequence[float], values: Sequence[int]) -> tuple[list[float], list[float]]:
    """The polygon under a step curve (each value holds until the next time), closed along zero,
    with a vertex only where the value changes."""
    xs, ys = [times[0], times[0]], [0.0, float(values[0])]
    for t, previous, value in zip(times[1:], values, values[1:]):
        if value != previous:
            xs += [t, t]
            ys += [float(previous), float(value)]
    xs += [times[-1], times[-1]]
    ys += [float(values[-1]), 0.0]
    return xs, ys


def read_timelines(journal_dir: Path) -> list[Timeline]:
    """A timeline per journal in ``journal_dir``; marks of journals without a recorded timeline
    from ``journal_dir/../env/runs/RUN_ID/marks.json`` when that exists (a local run's state)."""
    timelines = []
    for path in sorted(journal_dir.glob("*.json")):
        journal = json.loads(path.read_text())
        if not journal.get("start"):
            continue
        fallback = None
        run = run_id(journal)
        marks_file = journal_dir.parent / "env" / "runs" / run / "marks.json" if run else None
        if marks_file is not None and marks_file.exists():
            fallback = json.loads(marks_file.read_text())
        timelines.append(timeline_from_journal(journal, path.stem, fallback))
    return timelines


# -- drawing ----------------------------------------------------------------------------------------

def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the chaos pictures need matplotlib: pip install 'xorj-operator[plots]'") from None
    matplotlib.use("Agg")  # offline, no display
    import matplotlib.pyplot as plt

    return plt


SVG_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller files, searchable pictures
    "svg.hashsalt": "xorj-chaos",  # stable element ids: re-rendering the same journal gives the same file
    "font.size": 9,
}


def render_svg(timeline: Timeline) -> str:
    """The experiment's timeline as an SVG document. Elements carry ids a reader (or a test) can
    find: ``fault-window-N`` (lanes), ``fault-shade-N`` (behind the trades), ``alert-fired-KIND`` and
    ``alert-resolved-KIND`` (a marker per alert), ``recovery``, ``trades-STATE`` (states that occur)."""
    buffer = io.StringIO()
    render(timeline, buffer, "svg")
    return buffer.getvalue()


def render(timeline: Timeline, stream: Any, image_format: str = "svg") -> None:
    """Draw ``timeline`` into ``stream`` (``svg``, or ``png`` for a quick look)."""
    plt = _pyplot()
    import matplotlib as mpl
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    lanes = [w.label for w in timeline.windows]
    lanes = list(dict.fromkeys(lanes)) + [f"alert {k}" for k in dict.fromkeys(a.kind for a in timeline.alerts)]
    lanes = lanes or ["(no fault recorded)"]
    with mpl.rc_context(SVG_STYLE):
        fig, (top, bottom) = plt.subplots(
            2, 1, sharex=True, figsize=(10, 2.2 + 0.28 * len(lanes)),
            gridspec_kw={"height_ratios": [0.6 + 0.3 * len(lanes), 3.2], "hspace": 0.08})
        span = max(timeline.duration_s, 1.0)
        lane_of = {label: i for i, label in enumerate(lanes)}
        for n, window in enumerate(timeline.windows):
            colour = PAUSE_COLOUR if window.label.startswith("kill switch") else FAULT_COLOUR
            bar = top.broken_barh([(window.start, max(window.end - window.start, span / 500))],
                                  (lane_of[window.label] - 0.35, 0.7), facecolors=colour, edgecolor="#e6550d")
            bar.set_gid(f"fault-window-{n}")
            shade = bottom.axvspan(window.start, window.end, color=colour, alpha=0.25, lw=0)
            shade.set_gid(f"fault-shade-{n}")
        for kind in dict.fromkeys(a.kind for a in timeline.alerts):
            lane = lane_of[f"alert {kind}"]
            fired_at = [a.fired for a in timeline.alerts if a.kind == kind]
            (fired,) = top.plot(fired_at, [lane] * len(fired_at), marker="v", ms=6, color=ALERT_COLOUR, ls="none")
            fired.set_gid(f"alert-fired-{kind}")
            resolved_at = [a.resolved for a in timeline.alerts if a.kind == kind and a.resolved is not None]
            if resolved_at:
                (resolved,) = top.plot(resolved_at, [lane] * len(resolved_at), marker="^", ms=6, color="#31a354",
                                       ls="none")
                resolved.set_gid(f"alert-resolved-{kind}")
        for action in timeline.actions:
            top.axvline(action.start, color="#999999", lw=0.6, ls=":")
        top.set_yticks(range(len(lanes)), lanes)
        top.set_ylim(len(lanes) - 0.5, -0.5)
        top.set_title(f"{timeline.scenario}: {timeline.title}", loc="left", fontsize=10)
        top.grid(axis="x", color="#eeeeee")
        top.set_axisbelow(True)

        if timeline.trades is not None:
            times = sample_times(timeline.trades, span)
            counts = states_at(timeline.trades, times)
            drawn = [(state, label, colour) for state, label, colour in STATES if any(counts[state])]
            # stacked: each state's area reaches down to zero, the upper ones drawn first and covered
            # by those below (one outline per state instead of two: half the SVG of a stackplot)
            stacked = [0] * len(times)
            tops = []
            for state, label, colour in drawn:
                stacked = [a + b for a, b in zip(stacked, counts[state])]
                tops.append((state, label, colour, stacked))
            handles = []
            for state, label, colour, top_edge in reversed(tops):
                xs, ys = step_outline(times, top_edge)
                (area,) = bottom.fill(xs, ys, color=colour, alpha=0.9, lw=0, label=label)
                area.set_gid(f"trades-{state}")
                handles.insert(0, area)
            note = "trades of the run by state (ledger timestamps)"
        else:
            handles = []
            for state, label, colour in (("confirmed", "confirmed", "#2ca02c"), ("failed", "failed", "#d62728"),
                                         ("open", "open (PENDING/SUBMITTED)", "#ff7f0e")):
                points = [(t, c[state]) for t, c in timeline.probe_counts]
                (line,) = bottom.plot([t for t, _ in points], [c for _, c in points], marker="o", color=colour,
                                      label=label, ls="--", lw=0.8)
                line.set_gid(f"trades-{state}")
                handles.append(line)
            note = "trades by state as the probes read them (this journal has no timeline)"
        bottom.set_ylabel("trades")
        bottom.set_xlabel("seconds since the experiment started")
        bottom.set_xlim(0, span)
        bottom.set_ylim(0, max(bottom.get_ylim()[1], 1.0) * 1.2)  # room for the recovery bracket
        bottom.grid(color="#eeeeee")
        bottom.set_axisbelow(True)
        bottom.text(0.01, 0.97, note, transform=bottom.transAxes, va="top", fontsize=8, color="#555555")
        if timeline.recovered_at is not None and timeline.cleared is not None:
            top_y = bottom.get_ylim()[1]
            (bracket,) = bottom.plot([timeline.cleared, timeline.recovered_at], [top_y * 0.9] * 2, color="#08519c",
                                     lw=1.4, marker="|", ms=10, mew=1.4)
            bracket.set_gid("recovery")
            left_half = timeline.cleared < span * 0.6  # keep the words inside the plot
            bottom.text(timeline.cleared if left_half else timeline.recovered_at, top_y * 0.935,
                        f" recovered {timeline.recovered_after_s:.1f} s after the faults cleared ",
                        color="#08519c", fontsize=8, va="bottom", ha="left" if left_half else "right")
        if timeline.windows:
            handles.append(Patch(color=FAULT_COLOUR, alpha=0.5, label="fault window"))
        if timeline.alerts:
            handles.append(Line2D([], [], marker="v", color=ALERT_COLOUR, ls="none", label="alert fired"))
        bottom.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.savefig(stream, format=image_format, bbox_inches="tight",
                    metadata={"Date": None} if image_format == "svg" else None)
        plt.close(fig)


def summary_html(timeline: Timeline) -> str:
    """The lines under a picture: fault windows, alerts, the method's actions, recovery (text for
    those who would rather read)."""
    import html

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    parts = []
    if timeline.windows:
        parts.append("fault windows: " + ", ".join(f"{html.escape(w.label)} {seconds(w.start)} to {seconds(w.end)}"
                                                   for w in timeline.windows))
    if timeline.alerts:
        first: dict[str, AlertMark] = {}
        count: dict[str, int] = {}
        resolved: dict[str, int] = {}
        for alert in timeline.alerts:
            first.setdefault(alert.kind, alert)
            count[alert.kind] = count.get(alert.kind, 0) + 1
            resolved[alert.kind] = resolved.get(alert.kind, 0) + (alert.resolved is not None)
        parts.append("alerts: " + ", ".join(
            f"{html.escape(k)} first fired at {seconds(a.fired)} ({count[k]} in all"
            + (f", {resolved[k]} resolved" if resolved[k] else "") + ")" for k, a in first.items()))
    if timeline.actions:
        parts.append("method: " + ", ".join(f"{html.escape(a.name)} at {seconds(a.start)}" for a in timeline.actions))
    if timeline.recovered_after_s is not None:
        parts.append(f"recovered {timeline.recovered_after_s:.1f} s after the faults cleared")
    return "<ul>" + "".join(f"<li>{p}</li>" for p in parts) + "</ul>" if parts else ""


def write_svgs(timelines: Sequence[Timeline], directory: Path) -> dict[str, Path]:
    """``directory/SCENARIO.svg`` for each timeline; scenario -> file."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for timeline in timelines:
        path = directory / f"{_safe(timeline.scenario)}.svg"
        path.write_text(render_svg(timeline))
        written[timeline.scenario] = path
    return written


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
