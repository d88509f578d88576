"""Long-running processes of the node, recorded by pid file so ``down`` stops exactly those."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from xorj.devenv.processes import cmdline, process_running, terminate

__all__ = ["cmdline", "start", "recorded", "alive", "running", "stop", "stop_pid"]


def start(name: str, command: list[str], pids_dir: Path, logs_dir: Path,
          env: dict[str, str] | None = None) -> int:
    """Start ``command`` detached from our session, logging to ``logs_dir/name.log``."""
    pids_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    with open(logs_dir / f"{name}.log", "ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, close_fds=True,
        )
    (pids_dir / f"{name}.pid").write_text(f"{process.pid}\n")
    return process.pid


def recorded(name: str, pids_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((pids_dir / f"{name}.pid").read_text().strip())
    return None


def alive(name: str, pids_dir: Path, marker: str) -> bool:
    """Running, and still the process we started (its command line carries ``marker``)."""
    pid = recorded(name, pids_dir)
    return pid is not None and process_running(pid) and marker in cmdline(pid)


def running(name: str, pids_dir: Path) -> bool:
    """The recorded process is running (not exited, not a zombie), whatever its command line reads.

    For waiting on a process just started: until the forked child has exec'd its program, its command
    line is still its parent's, so :func:`alive` (which checks the command line) reads "not ours" for
    a moment; on a busy machine that moment is long enough to fail a start-up that was fine.
    """
    return process_running(recorded(name, pids_dir))


def stop_pid(pid: int, grace: float = 10.0) -> None:
    terminate(pid, grace=grace)


def stop(name: str, pids_dir: Path, marker: str, grace: float = 10.0) -> None:
    pid = recorded(name, pids_dir)
    if pid is not None and marker in cmdline(pid):
        stop_pid(pid, grace)
    with contextlib.suppress(FileNotFoundError):
        (pids_dir / f"{name}.pid").unlink()
