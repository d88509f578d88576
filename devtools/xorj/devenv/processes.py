"""Local processes of the development environment: liveness that sees through zombies, and stopping
with SIGTERM, a grace period, then SIGKILL.

This machine's init reaps orphans late, so an exited child can linger as a zombie: "the pid exists" is
not "the process runs".
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" once it is gone or exiting)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_running(pid: int | None) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped.

    A multi-threaded process (every Go binary) that exits shows its leader as a zombie while its
    other threads are still being torn down ("Z" with Threads > 1): it is not gone yet.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError, ValueError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            status = Path(f"/proc/{pid}/status").read_text()
            threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
            return threads > 1
    return True


def terminate(
    pid: int | None,
    *,
    grace: float,
    group: bool = False,
    running: Callable[[], bool] | None = None,
    poll: float = 0.1,
) -> None:
    """SIGTERM ``pid`` (its whole process group with ``group``, for processes started in their own
    session), wait up to ``grace`` seconds, then SIGKILL, and wait briefly for it to go.

    ``running`` overrides the liveness check, e.g. to also require that the pid is still ours.
    """
    if not pid:
        return
    is_running = running or (lambda: process_running(pid))
    if not is_running():
        return
    send = os.killpg if group else os.kill

    def reap() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    with contextlib.suppress(ProcessLookupError):
        send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and is_running():
        reap()
        time.sleep(poll)
    if is_running():
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and is_running():
            reap()
            time.sleep(0.05)
