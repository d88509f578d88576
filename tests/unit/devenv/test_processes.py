from __future__ import annotations

import subprocess
import sys
import time
import uuid

import psutil

from xorj.devenv.processes import cmdline, process_running, processes_with, terminate, wait_gone

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
    child = subprocess.Popen([sys.executable, "-c", LEADER_EXITS_FIRST])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE:
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


def test_processes_are_found_by_their_command_line_until_they_exit():
    marker = f"xorj-test-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and marker not in cmdline(child.pid):
            time.sleep(0.05)  # until the forked child has exec'd python with its arguments
        assert cmdline(child.pid).endswith(f"time.sleep(60) {marker}")
        assert processes_with(marker) == [child.pid]
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process_running(child.pid):
        time.sleep(0.05)
    assert cmdline(child.pid) == "" and processes_with(marker) == []  # an unreaped zombie shows no command
    child.wait()
    assert cmdline(child.pid) == ""


def test_wait_gone_polls_until_the_process_is_gone_and_runs_between_polls():
    polls: list[float] = []
    between: list[int] = []
    started = time.monotonic()
    assert wait_gone(lambda: polls.append(time.monotonic()) or len(polls) < 4, 10, interval=0.01,
                     between=lambda: between.append(len(polls)))
    assert len(polls) == 4 and between == [1, 2, 3] and time.monotonic() - started < 5


def test_wait_gone_gives_up_after_its_timeout():
    started = time.monotonic()
    assert not wait_gone(lambda: True, 0.3, interval=0.05)
    assert 0.3 <= time.monotonic() - started < 3
