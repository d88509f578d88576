"""A stand-in for a Deployment on the local chaos environment: keeps ``--replicas`` real
``xorj executor`` (or, with ``--command watcher``, ``xorj watcher``) processes running, replacing each
one that dies (as a ReplicaSet replaces a terminated pod), and records their pids and HTTP ports in
``--state-file`` for chaos actions to kill or call.

Settings come from this process's environment (``XORJ_*``); each replica gets its own name
(``<prefix>-<generation>``; an executor's ``XORJ_EXECUTOR_ID``), an HTTP port of its own (written to
``<log-dir>/<name>.port``) and a log under ``--log-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

RESTART_DELAY_SECONDS = 1.0  # a replacement pod also takes a moment to be scheduled and start
COMMANDS = ("executor", "watcher")


def replica_env(command: str, name: str, port_file: Path) -> dict[str, str]:
    """The settings that differ per replica of ``command``: its identity and a free HTTP port whose
    number it writes to ``port_file`` (each command names those settings its own way)."""
    if command == "executor":
        return {"XORJ_EXECUTOR_ID": name, "XORJ_HTTP_PORT": "0", "XORJ_HTTP_PORT_FILE": str(port_file)}
    if command == "watcher":
        return {"XORJ_WATCHER_HTTP_PORT": "0", "XORJ_WATCHER_HTTP_PORT_FILE": str(port_file)}
    raise ValueError(f"--command must be one of {', '.join(COMMANDS)}, got {command!r}")


def _overrides() -> dict[str, str]:
    """Settings changed while the pool runs (e.g. the kill switch), as a Deployment's new pod
    template would carry them: ``$XORJ_CHAOS_EXECUTOR_OVERRIDES`` is a JSON object of XORJ_* values."""
    path = os.environ.get("XORJ_CHAOS_EXECUTOR_OVERRIDES")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items() if str(k).startswith("XORJ_")}


class Pool:
    def __init__(self, replicas: int, state_file: Path, log_dir: Path, prefix: str,
                 prometheus_targets: Path | None = None, target_labels: dict[str, str] | None = None,
                 command: str = "executor") -> None:
        replica_env(command, prefix, log_dir)  # refuses an unknown command before anything starts
        self.command = command
        self.prometheus_targets = prometheus_targets
        self.target_labels = target_labels or {}
        self._targets_written: str | None = None
        self.replicas = replicas
        self.state_file = state_file
        self.log_dir = log_dir
        self.prefix = prefix
        self.generation = 0
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts = 0
        self.stopping = False

    def spawn(self) -> None:
        self.generation += 1
        name = f"{self.prefix}-{self.generation}"
        port_file = self.log_dir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        env = {**os.environ, **_overrides(), **replica_env(self.command, name, port_file)}
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.children[name] = subprocess.Popen(
                [sys.executable, "-c", "from xorj.cli import main; main()", self.command],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def write_state(self) -> None:
        live = {name: p.pid for name, p in self.children.items() if p.poll() is None}
        ports = {}
        for name in live:
            with contextlib.suppress(OSError, ValueError):
                ports[name] = int((self.log_dir / f"{name}.port").read_text().strip())
        # "executors": the name the executor actions have always read (kept for every command)
        state = {"pid": os.getpid(), "command": self.command, "replicas": self.replicas, "restarts": self.restarts,
                 "executors": live, "ports": ports}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)
        if self.prometheus_targets is not None:
            self._write_targets()

    def _write_targets(self) -> None:
        """The live replicas as a Prometheus file_sd target list (what the Kubernetes service discovery
        of the executors' ServiceMonitor finds in a cluster), rewritten when it changes."""
        groups = []
        for name, child in sorted(self.children.items()):
            port_file = self.log_dir / f"{name}.port"
            if child.poll() is None and port_file.is_file() and port_file.read_text().strip():
                groups.append({"targets": [f"127.0.0.1:{port_file.read_text().strip()}"],
                               "labels": {**self.target_labels, "pod": name, "endpoint": "metrics"}})
        text = json.dumps(groups, sort_keys=True)
        if text != self._targets_written:
            assert self.prometheus_targets is not None
            tmp = self.prometheus_targets.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(self.prometheus_targets)
            self._targets_written = text

    def run(self) -> None:
        while not self.stopping:
            for name, child in list(self.children.items()):
                if child.poll() is not None:
                    del self.children[name]
                    self.restarts += 1
            missing = self.replicas - len(self.children)
            if missing > 0 and self.restarts:
                time.sleep(RESTART_DELAY_SECONDS)
            for _ in range(max(0, missing)):
                self.spawn()
            self.write_state()
            time.sleep(0.2)
        self.stop_all()

    def stop_all(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        self.children.clear()
        self.write_state()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--command", choices=COMMANDS, default="executor", help="the xorj command each replica runs")
    parser.add_argument("--prefix", default=None, help="replica names' prefix (default: the command)")
    parser.add_argument("--prometheus-targets", type=Path, default=None,
                        help="also keep this Prometheus file_sd file listing the replicas' /metrics")
    parser.add_argument("--target-label", action="append", default=[], metavar="NAME=VALUE",
                        help="a label of every target in --prometheus-targets (repeatable)")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= 16:
        parser.error("--replicas must be between 1 and 16")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    labels = dict(item.split("=", 1) for item in args.target_label)
    pool = Pool(args.replicas, args.state_file, args.log_dir, args.prefix or args.command, args.prometheus_targets,
                labels, command=args.command)

    def on_signal(_signum: int, _frame: object) -> None:
        pool.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pool.run()


if __name__ == "__main__":
    main()
