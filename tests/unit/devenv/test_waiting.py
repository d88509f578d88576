"""The one start-up wait of the development environment (xorj.devenv.waiting): it ends on the readiness
signal, fails at once when the process waited for exits, and says what it waited for, how long, what
it last saw and the tail of the log."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from xorj.devenv.waiting import StartupTimeout, wait_until_gone, wait_until_ready
from xorj.errors import EnvironmentSetupError


def test_returns_the_first_ready_value_and_treats_a_failing_probe_as_not_yet() -> None:
    calls: list[int] = []

    def probe() -> str | None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("nothing listens yet")
        return "ready"

    assert wait_until_ready("a listener", probe, 10, interval=0.01) == "ready"
    assert len(calls) == 3


def test_the_limit_error_names_the_signal_the_time_the_last_probe_what_it_saw_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))

    def probe() -> bool:
        raise ConnectionRefusedError("refused on 192.0.2.2:5432")

    started = time.monotonic()
    with pytest.raises(StartupTimeout) as caught:
        wait_until_ready("a listener on 192.0.2.2:5432 in netns xorj-node", probe, 0.3, interval=0.05,
                         logs=[log, tmp_path / "never.log"], last_seen=lambda: "no socket in LISTEN")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert isinstance(caught.value, EnvironmentSetupError)  # the CLI turns it into one clear line
    assert message.startswith("a listener on 192.0.2.2:5432 in netns xorj-node: not ready after 0s (limit 0s)")
    assert "ConnectionRefusedError: refused on 192.0.2.2:5432" in message
    assert "last seen:\nno socket in LISTEN" in message
    assert f"log {log}:" in message and "line 99" in message and "line 80" in message
    assert "line 79" not in message, "only the tail of the log"
    assert f"log {tmp_path / 'never.log'}:\n(not written)" in message


def test_a_process_that_exits_fails_the_wait_at_once_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", "import sys; print('bind: address in use'); sys.exit(3)"],
                                   stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    with pytest.raises(StartupTimeout) as caught:
        wait_until_ready("the daemon's /healthz", lambda: False, 120, alive=lambda: process.poll() is None,
                         logs=[log], interval=0.05)
    assert time.monotonic() - started < 30, "an exited process is not waited for until the limit"
    message = str(caught.value)
    assert "the daemon's /healthz: its process exited after" in message
    assert "bind: address in use" in message


def test_a_ready_signal_counts_even_if_the_process_has_just_exited() -> None:
    """A one-shot process that wrote its ready file and exited is ready, not failed."""
    assert wait_until_ready("a file", lambda: "written", 5, alive=lambda: False) == "written"


def test_waiting_until_something_is_gone() -> None:
    remaining = ["pod/a", "pod/b"]

    def present() -> bool:
        if remaining:
            remaining.pop()
        return bool(remaining)

    wait_until_gone("the pods of namespace x", present, 5, interval=0.01)
    with pytest.raises(StartupTimeout, match=r"namespace x to be deleted: not ready after .*last seen:\nTerminating"):
        wait_until_gone("namespace x to be deleted", lambda: True, 0.1, interval=0.02, last_seen=lambda: "Terminating")
