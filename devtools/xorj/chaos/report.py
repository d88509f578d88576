"""Chaos journals -> a results table (Markdown, and HTML for a browser) and a timeline per experiment.

One row per journal: scenario, status, trades, confirmed, failed, duplicates (ledger + on chain),
orphans, time to recover. Every figure is read from the journal's own probe outputs (the last
run of each probe: the hypothesis after the method), never computed or assumed here. The pictures
(:mod:`xorj.chaos.pictures`: fault windows, trades by state over time, alerts, recovery) are static
SVG files in ``pictures/`` beside the report, which ``report.html`` shows and ``report.md`` links to:
no JavaScript, nothing fetched from elsewhere.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xorj.chaos.pictures import Timeline, summary_html


@dataclass
class Row:
    scenario: str
    title: str
    status: str
    deviated: bool
    trades: int | None
    confirmed: int | None
    failed: int | None
    duplicates: int | None
    orphans: int | None
    recover_s: float | None
    duration_s: float | None
    failed_reasons: dict[str, int]
    before_met: bool | None = None
    after_met: bool | None = None
    notes: str = ""
    # from the Alertmanager probes (alert-fired-*): the slowest alert to fire after its fault, and to
    # resolve after the faults were cleared
    alert_fired_s: float | None = None
    alert_resolved_s: float | None = None
    # False when an alert-fired probe whose fault was injected did not see its alert fire and resolve
    # (chaostoolkit does not apply a method probe's tolerance: the run is judged here)
    alerts_ok: bool = True

    @property
    def passed(self) -> bool:
        """Completed, not deviated, BOTH hypotheses met (chaostoolkit itself reports a run whose
        hypothesis failed before the method as "completed" and exits 0), and every alert asked of
        Alertmanager fired and resolved."""
        return (self.status == "completed" and not self.deviated and self.before_met is True
                and self.after_met is True and self.alerts_ok)


def _outputs(journal: dict[str, Any]) -> dict[str, Any]:
    """name -> output of the LAST run of each probe/action (hypothesis after, then method, order)."""
    found: dict[str, Any] = {}
    for run in journal.get("run") or []:
        found[run["activity"]["name"]] = run.get("output")
    after = journal.get("steady_states", {}).get("after") or {}
    for probe in after.get("probes") or []:
        found[probe["activity"]["name"]] = probe.get("output")
    return found


def lead_copies_note(value: dict[str, Any]) -> str:
    """The watcher experiments' on-chain verdict (probes.lead_swaps_copied_once) in a few words."""
    strategies = value.get("strategies") or {}
    copied = min((int(s.get("copied_once", 0)) for s in strategies.values()), default=0)
    sources = ", ".join(f"{source} {n}" for source, n in sorted((value.get("accepted_by_source") or {}).items()))
    note = (f"{value.get('lead_swaps')} lead swaps on chain, {copied} copied by exactly one fill per following "
            f"strategy ({len(strategies)}); accepted first by {sources or 'none'}")
    missing = sum(int(s.get("missing_count", 0)) for s in strategies.values())
    if missing or value.get("not_accepted"):
        note += f"; NOT copied {missing}, not accepted {len(value.get('not_accepted') or [])}"
    return note


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


def unmet_probes(journal: dict[str, Any]) -> list[str]:
    """One line per steady-state probe that broke its hypothesis (failed to run, or out of tolerance):
    which hypothesis, which probe, and its output or the last line of its error. A run that is "NOT
    STEADY BEFORE" says why without opening the journal."""
    lines = []
    for phase in ("before", "after"):
        for probe in (journal.get("steady_states", {}).get(phase) or {}).get("probes") or []:
            name = probe.get("activity", {}).get("name", "?")
            if probe.get("status") == "failed":
                error = [line.strip() for line in probe.get("exception") or [] if line.strip()]
                lines.append(f"{phase}: {name} raised {_short(error[-1] if error else 'an error')}")
            elif probe.get("tolerance_met") is False:
                lines.append(f"{phase}: {name} out of tolerance: {_short(probe.get('output'))}")
    return lines


def row_from_journal(path: Path) -> Row:
    journal = json.loads(path.read_text())
    out = _outputs(journal)
    terminal = out.get("all-trades-terminal") or out.get("trades-after-recovery") or {}
    onchain = out.get("no-duplicate-onchain-transactions") or {}
    ledger_dups = out.get("no-duplicate-trades")
    duplicates = None
    if isinstance(ledger_dups, int) or isinstance(onchain, dict) and "duplicate_fills" in onchain:
        duplicates = (ledger_dups or 0) + (onchain.get("duplicate_fills", 0) if isinstance(onchain, dict) else 0)
    notes = []
    fired = (out.get("clear-chain-faults") or {}).get("fired") if isinstance(out.get("clear-chain-faults"), dict) else None
    if fired:
        notes.append("faults fired: " + ", ".join(f"{k} x{v}" for k, v in sorted(fired.items())))
    for run in journal.get("run") or []:
        output = run.get("output")
        if isinstance(output, dict) and "killed" in output:
            notes.append(f"{run['activity']['name']}: killed {output['killed']}")
        if isinstance(output, dict) and "deleted" in output:  # kill_operator: the operator's pod
            notes.append(f"{run['activity']['name']}: pod {', '.join(output['deleted'])} deleted")
        if isinstance(output, dict) and "replaced" in output and "ready" in output:  # start_operator
            notes.append(f"{run['activity']['name']}: pod {output['ready']} Ready {output.get('ready_after_s')}s after")
        if isinstance(output, dict) and "terminated" in output:
            notes.append(f"{run['activity']['name']}: {output['terminated']} backends terminated")
        if isinstance(output, dict) and "components_restarted" in output:
            took = (f"API server ready {output['ready_after_s']}s after SIGTERM" if "ready_after_s" in output
                    else f"restart action {output.get('outage_s')}s (incl. 20s watching the other components)")
            notes.append(f"{took}; restarted with it: {', '.join(output['components_restarted']) or 'none'}")
        if isinstance(output, dict) and output.get("restarted") and "down_s" in output:
            notes.append(f"Postgres down {output['down_s']}s")
        if isinstance(output, dict) and output.get("mode") in ("reset", "blackhole"):
            notes.append(f"ledger path cut ({output['mode']})")
        if isinstance(output, dict) and "cut_held_after_s" in output:
            policies = ", ".join(output.get("narrowed") or []) or f"added {output.get('added')}"
            notes.append(f"NetworkPolicy cut ({policies}): {output['sessions_ended']} executor sessions ended, "
                         f"none back for 3s after {output['cut_held_after_s']}s")
        if run["activity"]["name"].startswith("terminate-") and isinstance(output, list):
            notes.append(f"{run['activity']['name']}: {', '.join(map(str, output))}")
        if isinstance(output, dict) and output.get("removed"):
            notes.append(f"{run['activity']['name']}: faults fired: "
                         + ", ".join(f"{k} x{v}" for k, v in sorted(output["removed"].items())))
        if isinstance(output, dict) and isinstance(output.get("webhook_posts"), dict):
            posts = output["webhook_posts"]
            notes.append(f"{run['activity']['name']}: each lead swap posted to the webhook at once "
                         f"({posts.get('accepted', 0)} answered 200, {posts.get('refused', 0)} refused)")
        if isinstance(output, dict) and "after_restart" in output:
            notes.append(f"{run['activity']['name']}: {output.get('lead_swaps')} lead swaps redelivered "
                         f"x{output.get('copies')} before and after a watcher SIGKILL")
        if isinstance(output, dict) and "replayed" in output:
            notes.append(f"{run['activity']['name']}: {output['replayed']} replays, {output['created']} created")
    if isinstance(onchain, dict) and onchain.get("violations"):
        notes.append(f"on-chain violations {onchain['violations']}")
    fired_s: list[float] = []
    resolved_s: list[float] = []
    alerts_ok = True
    for name, value in out.items():
        if name.startswith("alert-fired") and isinstance(value, dict) and value.get("injected"):
            if value.get("fired_after_s") is not None:
                fired_s.append(float(value["fired_after_s"]))
            if value.get("resolved_after_s") is not None:
                resolved_s.append(float(value["resolved_after_s"]))
            if not value.get("ok"):
                alerts_ok = False
                state = "did not fire" if not value.get("fired") else "did not resolve"
                notes.append(f"{value.get('alert')} {state}" + (f" ({value['error']})" if value.get("error") else ""))
        if name.startswith("alert-raised") and isinstance(value, dict):
            notes.append(f"{name.removeprefix('alert-raised-')}: {value.get('count', 0)} alert(s)")
        if name.startswith("slippage-failures-retried") and isinstance(value, dict) and value.get("injected"):
            notes.append(f"{value.get('slippage_failures')} slippage failures on chain, "
                         f"{value.get('retried_trades')} trades retried at a raised bound")
        if name == "lead-swaps-copied-once" and isinstance(value, dict) and value.get("loaded"):
            notes.append(lead_copies_note(value))
        if name == "copytrade-status-matches-ledger" and isinstance(value, dict):
            notes.append(f"CopyTrade status mismatches {value.get('mismatches')}/{value.get('checked')}")
    notes.extend(unmet_probes(journal))
    return Row(
        scenario=path.stem, title=journal.get("experiment", {}).get("title", path.stem),
        status=journal.get("status", "?"), deviated=bool(journal.get("deviated")),
        trades=terminal.get("trades"), confirmed=terminal.get("confirmed"), failed=terminal.get("failed"),
        duplicates=duplicates, orphans=out.get("no-orphans") if isinstance(out.get("no-orphans"), int) else None,
        recover_s=terminal.get("recovered_after_s"), duration_s=journal.get("duration"),
        failed_reasons=terminal.get("failed_reasons") or {}, notes="; ".join(notes),
        before_met=(journal.get("steady_states", {}).get("before") or {}).get("steady_state_met"),
        after_met=(journal.get("steady_states", {}).get("after") or {}).get("steady_state_met"),
        alert_fired_s=max(fired_s) if fired_s else None, alert_resolved_s=max(resolved_s) if resolved_s else None,
        alerts_ok=alerts_ok,
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


HEADER = ["scenario", "result", "trades", "confirmed", "failed", "duplicates", "orphans", "time to recover (s)",
          "alert fired (s)", "alert resolved (s)", "failed reasons", "notes"]


def cells(row: Row) -> list[str]:
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(row.failed_reasons.items())) or "-"
    if row.passed:
        result = "passed"
    elif row.deviated:
        result = "DEVIATED"
    elif row.before_met is False:
        result = "NOT STEADY BEFORE"
    elif not row.alerts_ok and row.status == "completed" and row.before_met and row.after_met:
        result = "ALERT MISSED"
    else:
        result = row.status.upper()
    return [row.scenario, result, _cell(row.trades), _cell(row.confirmed), _cell(row.failed), _cell(row.duplicates),
            _cell(row.orphans), _cell(row.recover_s), _cell(row.alert_fired_s), _cell(row.alert_resolved_s), reasons,
            row.notes or "-"]


PICTURES_INTRO = ("Timelines, one per experiment: fault windows shaded, the run's trades by state over time, "
                  "alerts fired (the ledger's alert outbox), and the recovery from the faults being cleared to the "
                  "last trade ending.")


def markdown(rows: list[Row], preamble: str = "", pictures: dict[str, str] | None = None) -> str:
    """The table; with ``pictures`` (scenario -> link), each experiment's timeline below it."""
    lines = [preamble.rstrip(), ""] if preamble else []
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells(r)) + " |" for r in rows]
    if pictures:
        lines += ["", PICTURES_INTRO, ""]
        lines += [f"![{scenario} timeline]({link})" for scenario, link in pictures.items()]
    return "\n".join(lines) + "\n"


def html_report(rows: list[Row], title: str = "xorj chaos results",
                timelines: list[tuple[Timeline, str]] | None = None, note: str = "") -> str:
    """The table, then each experiment's timeline (``(Timeline, picture link)`` pairs) as an <img> of
    its SVG file with the same facts in words under it. Static: no script, nothing fetched."""
    drawn = {timeline.scenario for timeline, _ in timelines or []}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)

    def cell(index: int, text: str, scenario: str) -> str:
        if index == 0 and scenario in drawn:
            return f"<td><a href='#{html.escape(scenario)}'>{html.escape(text)}</a></td>"
        return f"<td>{html.escape(text)}</td>"

    body = "".join(
        "<tr class='{}'>".format("ok" if r.passed else "bad")
        + "".join(cell(i, c, r.scenario) for i, c in enumerate(cells(r))) + "</tr>"
        for r in rows)
    sections = "".join(
        f"<section class='timeline' id='{html.escape(timeline.scenario)}'><h3>{html.escape(timeline.scenario)}</h3>"
        f"<img src='{html.escape(link)}' alt='{html.escape(timeline.scenario)} timeline'>{summary_html(timeline)}</section>"
        for timeline, link in timelines or [])
    pictures = (f"<h2>Timelines</h2><p>{html.escape(PICTURES_INTRO)}</p>{sections}" if sections else "")
    if note:
        pictures += f"<p class='note'>{html.escape(note)}</p>"
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>td,th{border:1px solid #ccc;padding:4px 8px}tr.bad{background:#fdd}tr.ok{background:#efe}"
            "section.timeline img{max-width:100%}</style>"
            f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>{pictures}\n")


# -- the run: which set, when, on what machine ------------------------------------------------------

def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine() -> dict[str, Any]:
    """What the run ran on: cores, memory, OS and Python (no host name: the report is published)."""
    memory = None
    with contextlib.suppress(OSError, ValueError, StopIteration):
        line = next(entry for entry in Path("/proc/meminfo").read_text().splitlines()
                    if entry.startswith("MemTotal:"))
        memory = int(line.split()[1]) * 1024
    return {"cores": os.cpu_count(), "memory_bytes": memory, "platform": platform.platform(terse=True),
            "machine": platform.machine(), "python": platform.python_version()}


def run_metadata(set_name: str, planned: list[Any], target: str) -> dict[str, Any]:
    """run.json of ``xorj chaos run``: the set, each experiment's trades and scale, start time, machine."""
    return {"set": set_name, "target": target, "started_at": utc_now(), "finished_at": None,
            "machine": machine(),
            "experiments": [{"name": p.name, "trades": p.trades, "declared_trades": p.declared_trades,
                             "trade_scale": round(p.trade_scale, 4)} for p in planned]}


def read_run_metadata(directory: Path) -> dict[str, Any] | None:
    path = directory / "run.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _duration(started: str | None, finished: str | None) -> str:
    if not started or not finished:
        return ""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    seconds = int((datetime.strptime(finished, fmt) - datetime.strptime(started, fmt)).total_seconds())
    return f" ({seconds // 60} min {seconds % 60} s)"


def describe_run(meta: dict[str, Any]) -> str:
    """One paragraph for the report: which set, when, on what machine, with how many trades."""
    box = meta.get("machine") or {}
    memory = box.get("memory_bytes")
    memory_text = f"{memory / 2**30:.1f} GiB memory" if memory else "memory unknown"
    experiments = meta.get("experiments") or []
    counts = sorted({e["trades"] for e in experiments})
    if not counts:
        trades = "no experiments"
    elif all(e.get("trade_scale", 1) == 1 for e in experiments):
        trades = "each with the trades its file declares"
    else:
        trades = (f"at least {counts[0]} trades each" if len(counts) > 1 else f"{counts[0]} trades each")
    finished = meta.get("finished_at")
    when = f"{meta.get('started_at', '?')} to {finished}{_duration(meta.get('started_at'), finished)}" if finished \
        else f"started {meta.get('started_at', '?')}, did not finish"
    return (f"Set `{meta.get('set', '?')}` on the {meta.get('target', '?')} target: {len(experiments)} experiments, "
            f"{trades} ({sum(e['trades'] for e in experiments)} trades planned in all). Run {when} UTC on "
            f"{box.get('cores', '?')} cores, {memory_text}, {box.get('platform', '?')}, Python {box.get('python', '?')}.")


def build(journal_dir: Path) -> list[Row]:
    return [row_from_journal(p) for p in sorted(journal_dir.glob("*.json"))]


def draw(journal_dir: Path, pictures_dir: Path) -> tuple[list[tuple[Timeline, Path]], str]:
    """Each journal's timeline as ``pictures_dir/SCENARIO.svg``: ``[(Timeline, file)]`` and, when
    nothing could be drawn (matplotlib missing), why."""
    from xorj.chaos import pictures

    timelines = pictures.read_timelines(journal_dir)
    try:
        files = pictures.write_svgs(timelines, pictures_dir)
    except ImportError as exc:
        return [], f"no pictures: {exc}"
    return [(t, files[t.scenario]) for t in timelines], ""


def write(journal_dir: Path, out_dir: Path, preamble: str = "") -> list[Row]:
    """``report.md``, ``report.html`` and ``pictures/*.svg`` in ``out_dir``."""
    rows = build(journal_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn, note = draw(journal_dir, out_dir / "pictures")
    links = [(timeline, os.path.relpath(path, out_dir)) for timeline, path in drawn]
    (out_dir / "report.md").write_text(markdown(rows, preamble, {t.scenario: link for t, link in links}))
    (out_dir / "report.html").write_text(html_report(rows, timelines=links, note=note))
    return rows
