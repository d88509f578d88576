from __future__ import annotations

import subprocess
import sys
import time

from xorj.devenv.processes import process_running, terminate

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def test_an_exited_unreaped_child_is_not_running():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process_running(child.pid):
        time.sleep(0.05)
    assert not process_running(child.pid)  # a zombie until waited for
    child.wait()
    assert not process_running(None)


LEADER_EXITS_FIRST = ("import ctypes, threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); "
                      "ctypes.CDLL(None).pthread_exit(None)")


def test_a_zombie_leader_with_live_threads_is_still_running():
    """What an exiting Go binary looks like for a moment: its leader thread a zombie, other threads
    still there. It has not exited, and must not be taken for gone."""
    from pathlib import Path

    child = subprocess.Popen([sys.executable, "-c", LEADER_EXITS_FIRST])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the leader thread never became a zombie")
        assert process_running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not process_running(child.pid)


def test_terminate_stops_a_process_that_exits_on_sigterm():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    started = time.monotonic()
    terminate(child.pid, grace=10, group=True)
    # terminate reaps its own children, so Popen may no longer see the exit status: ask /proc
    assert not process_running(child.pid) and time.monotonic() - started < 5


def test_terminate_kills_a_process_that_ignores_sigterm_after_the_grace_period():
    child = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    started = time.monotonic()
    terminate(child.pid, grace=0.5)
    assert not process_running(child.pid)  # it ignores SIGTERM: only the SIGKILL can have ended it
    assert time.monotonic() - started >= 0.5
