"""What one experiment run remembers between its activities: when each fault class was injected,
when the faults were cleared and how many trades the run's loads submitted
(``<state_dir>/marks.json``), for alert and recovery probes.

Background activities (a load) write while other activities do: every change is a read-modify-write
under an exclusive lock on ``marks.lock``, so none is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from xorj.chaos.target import Target


def read(target: Target) -> dict[str, Any]:
    try:
        return json.loads((target.state_dir / "marks.json").read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _locked(target: Target) -> Iterator[None]:
    with open(target.state_dir / "marks.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _update(target: Target, change: Callable[[dict[str, Any]], None]) -> None:
    with _locked(target):
        marks = read(target)
        change(marks)
        path = target.state_dir / "marks.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(marks))
        tmp.replace(path)


def write(target: Target, key: str, value: Any = None) -> None:
    stamp = time.time() if value is None else value
    _update(target, lambda marks: marks.__setitem__(key, stamp))


def fault(target: Target, fault_class: str) -> None:
    """Record that a fault of ``fault_class`` (an alert kind) was injected; the first time counts."""
    now = time.time()

    def change(marks: dict[str, Any]) -> None:
        marks.setdefault(f"fault:{fault_class}", now)
        marks["fault:last"] = now

    _update(target, change)


def add(target: Target, key: str, amount: int) -> None:
    """Add ``amount`` to the counter ``key`` (e.g. trades submitted by this run's loads)."""
    _update(target, lambda marks: marks.__setitem__(key, int(marks.get(key, 0)) + int(amount)))


def reset(target: Target) -> None:
    (target.state_dir / "marks.json").unlink(missing_ok=True)
