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
