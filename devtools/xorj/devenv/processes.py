"""Local processes of the development environment: liveness that sees through zombies, and stopping
with SIGTERM, a grace period, then SIGKILL.

This machine's init reaps orphans late, so an exited child can linger as a zombie: "the pid exists" is
not "the process runs".
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

import psutil
import tenacity


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" once it is gone or exiting)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def process_running(pid: int | None) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped.

    A multi-threaded process (every Go binary) that exits shows its leader as a zombie while its
    other threads are still being torn down (zombie with more than one thread): it is not gone yet.
    """
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE or process.num_threads() > 1
    except psutil.AccessDenied:
        return True
    except psutil.NoSuchProcess:
        return False


def processes_with(marker: str) -> list[int]:
    """The pids of the running processes whose command line contains ``marker``."""
    return [process.pid for process in psutil.process_iter() if marker in cmdline(process.pid)]


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
    if not wait_gone(is_running, grace, interval=poll, between=reap):
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGKILL)
        wait_gone(is_running, 5.0, interval=0.05, between=reap)


def wait_gone(running: Callable[[], bool], timeout: float, *, interval: float = 0.05,
              between: Callable[[], None] | None = None) -> bool:
    """Poll ``running`` until it is false (True) or ``timeout`` seconds pass (False); ``between`` runs
    before each pause (e.g. reaping a child, so that it stops being a zombie)."""
    still_running = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(bool), before_sleep=(lambda _: between()) if between else None,
        retry_error_callback=lambda _: True)
    return not still_running(running)
