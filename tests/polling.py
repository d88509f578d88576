"""One polling helper for every test that waits for a condition a real process or server reaches.

A test waits on a signal (a row, a phase, a metric), never on a fixed sleep; when the limit passes,
the failure names what was awaited, the last value seen and whatever ``describe`` adds (a pod
listing, an alert list), so a slow machine and a broken product read differently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.25,
             describe: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            detail = f"; {describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}{detail}")
        time.sleep(interval)
