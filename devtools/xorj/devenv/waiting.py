"""Waiting for a part of the development environment to come up: one helper for every start-up wait.

Each wait polls a readiness signal (a socket that accepts, a /healthz that answers 200, a file the
process writes once it serves, an API object's condition) under one generous overall limit: the
wait ends as soon as the signal is there, so a large limit costs nothing on an idle machine and
keeps a machine busy with builds from failing a start-up that was merely slow. A fixed sleep is
never a readiness signal.

When the limit passes, or the process being waited for exits, the error says what was waited for,
for how long, what was last seen, and the tail of the process's log.

(A retry library such as tenacity would replace only the polling loop; the message, the liveness
check and the log tail, which are most of this module, would stay.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from xorj.errors import EnvironmentSetupError

T = TypeVar("T")

LOG_TAIL_LINES = 20


class StartupTimeout(EnvironmentSetupError):
    """A part of the development environment did not come up within its limit (or its process exited)."""


def log_tail(path: Path | str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when there is none)."""
    if not path:
        return ""
    with contextlib.suppress(OSError):
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    return ""


def describe_logs(logs: Iterable[Path | str]) -> str:
    parts = []
    for path in logs:
        tail = log_tail(path)
        parts.append(f"\nlog {path}:\n{tail or ('(empty)' if Path(path).exists() else '(not written)')}")
    return "".join(parts)


def wait_until_ready(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    *,
    alive: Callable[[], bool] | None = None,
    logs: Iterable[Path | str] = (),
    last_seen: Callable[[], str] | None = None,
    interval: float = 0.5,
) -> T:
    """Poll ``check`` until it returns a truthy value, and return that value.

    ``what`` names the readiness signal ("a listener on 192.0.2.2:5432 in netns x"). ``alive`` tells
    whether the process being waited for still runs: once it exits the wait fails at once. An
    exception from ``check`` counts as "not yet" (a socket refused, an API server still starting)
    and is reported if the wait fails. ``logs`` are the files whose tails the error shows;
    ``last_seen`` describes the state when the wait gave up (pods, conditions).
    """
    started = time.monotonic()
    deadline = started + timeout
    problem = ""
    exited = False
    while True:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not ready yet"
            problem = f"{type(exc).__name__}: {exc}"
            value = None
        if value:
            return value
        if alive is not None and not alive():
            exited = True
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    seconds = time.monotonic() - started
    if exited:
        message = f"{what}: its process exited after {seconds:.0f}s, before it was ready"
    else:
        message = f"{what}: not ready after {seconds:.0f}s (limit {timeout:.0f}s)"
    if problem:
        message += f"; last probe: {problem}"
    if last_seen is not None:
        with contextlib.suppress(Exception):
            message += f"; last seen:\n{last_seen()}"
    raise StartupTimeout(message + describe_logs(logs))


def wait_until_gone(what: str, present: Callable[[], bool], timeout: float, *,
                    last_seen: Callable[[], str] | None = None, interval: float = 1.0) -> None:
    """Poll until ``present()`` is false (e.g. a namespace being deleted); the error names what remained."""
    wait_until_ready(what, lambda: not present(), timeout, last_seen=last_seen, interval=interval)
