"""What one experiment run remembers between its activities: when each fault class was injected
and when the faults were cleared (``<state_dir>/marks.json``), for alert and recovery probes."""

from __future__ import annotations

import json
import time
from typing import Any

from xorj.chaos.target import Target


def read(target: Target) -> dict[str, Any]:
    try:
        return json.loads((target.state_dir / "marks.json").read_text())
    except (OSError, ValueError):
        return {}


def write(target: Target, key: str, value: Any = None) -> None:
    marks = read(target)
    marks[key] = time.time() if value is None else value
    path = target.state_dir / "marks.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(marks))
    tmp.replace(path)


def fault(target: Target, fault_class: str) -> None:
    """Record that a fault of ``fault_class`` (an alert kind) was injected; the first time counts."""
    marks = read(target)
    if f"fault:{fault_class}" not in marks:
        write(target, f"fault:{fault_class}")
    write(target, "fault:last")


def reset(target: Target) -> None:
    (target.state_dir / "marks.json").unlink(missing_ok=True)
