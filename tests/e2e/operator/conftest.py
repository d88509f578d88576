"""Fixtures for the operator's end-to-end tests: CRDs installed on the real local cluster, a real
Postgres ledger per test, and ``xorj operator`` run as a real process (killable with SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.postgres import LEDGER_OWNER_PASSWORD
from tests.polling import wait_for
from xorj.controller import crdgen

REPO = Path(__file__).resolve().parents[3]
CRDS_DIR = REPO / "crds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kubectl:
    def __init__(self, cluster: Any, namespace: str):
        self.cluster = cluster
        self.namespace = namespace

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, input=input, check=check)

    def apply(self, obj: dict[str, Any] | str, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.run("apply", "-f", "-", input=text, check=check)

    def create(self, obj: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("create", "-f", "-", input=json.dumps(obj), check=check)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)

    def list(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        extra = ["-l", selector] if selector else []
        return json.loads(self.run("get", kind, *extra, "-o", "json").stdout)["items"]

    def events(self, name: str) -> list[dict[str, Any]]:
        items = json.loads(self.run("get", "events", "-o", "json").stdout)["items"]
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]


@pytest.fixture(scope="session")
def xorj_crds(k8s_cluster: Any) -> Any:
    """Our CRDs (as generated: the drift test guarantees the files equal the models) and kopf's
    peering CRDs, applied once per session and Established."""
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [f"{k.plural}.{crdgen.models.GROUP}" for k in crdgen.KINDS] + [
        "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev",
    ]
    k8s_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return k8s_cluster


@pytest.fixture
def kube(xorj_crds: Any, k8s_namespace: str) -> Kubectl:
    """kubectl in the test's namespace, which holds a vault Secret bound to the strategies the tests
    create (the operator builds no executor for a strategy whose Secret is not bound to it)."""
    from .manifests import BOUND_STRATEGIES, secret

    kubectl = Kubectl(xorj_crds, k8s_namespace)
    kubectl.apply(secret("vault-keypair", {"keypair.json": "[]"}, bound_to=BOUND_STRATEGIES))
    return kubectl


class OperatorProcess:
    """``xorj operator`` as a child process, serving one namespace, logging JSON to a file."""

    def __init__(self, *, namespace: str, dsn: str, log_path: Path, priority: int = 0,
                 standalone: bool = True, extra_env: dict[str, str] | None = None):
        self.namespace = namespace
        self.log_path = log_path
        self.health_port = free_port()
        self.metrics_port = free_port()
        env = dict(os.environ)
        env.update({
            "XORJ_LEDGER_DSN": dsn,
            "XORJ_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "XORJ_OPERATOR_HEALTH_PORT": str(self.health_port),
            "XORJ_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "XORJ_OPERATOR_PRIORITY": str(priority),
            "XORJ_OPERATOR_COPYTRADE_RESYNC_SECONDS": "5",
            "XORJ_OPERATOR_STRATEGY_RESYNC_SECONDS": "2",
            "XORJ_OPERATOR_STRATEGY_DRAIN_SECONDS": "30",
            "XORJ_OPERATOR_WATCH_SERVER_TIMEOUT": "60",
            # the explicit development setting: these tests' endpoints are the local chain's http ones
            "XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": "true",
        })
        env.update(extra_env or {})
        args = [sys.executable, "-c", "from xorj.cli import main; main()", "operator", "-n", namespace, "--log-format", "json"]
        if standalone:
            args.append("--standalone")
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 60) -> None:
        def started() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            return "operator started" in self.log_text()
        wait_for(started, timeout, "the operator to start")

    def metric(self, name: str, labels: str = "") -> float:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (not labels or labels in line) and not line.startswith("#"):
                head, value = line.rsplit(" ", 1)
                if head.split("{")[0] == name:
                    total += float(value)
        return total

    def healthz(self) -> int:
        import urllib.error
        import urllib.request

        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode


def release_finalizers(kube: Kubectl) -> None:
    """With no operator left, nothing would remove our finalizers and the namespace could never be
    deleted: strip them (the ledger is per test and goes too)."""
    for kind in ("copytrades", "tradingstrategies", "vaults"):
        for obj in kube.list(kind):
            if obj["metadata"].get("finalizers"):
                kube.run("patch", kind, obj["metadata"]["name"], "--type=merge",
                         "-p", '{"metadata":{"finalizers":null}}', check=False)


@pytest.fixture
def operators(tmp_path: Path, kube: Kubectl, ledger_dsn: str,
              ledger_owner_dsn: str) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators for the test's namespace; all are stopped (or killed) afterwards. They connect
    as the ledger's owner, the role the product gives the operator (not a superuser), over TLS."""
    started: list[OperatorProcess] = []

    def start(**kwargs: Any) -> OperatorProcess:
        op = OperatorProcess(namespace=kube.namespace, dsn=ledger_owner_dsn,
                             log_path=tmp_path / f"operator-{len(started)}.log", **kwargs)
        started.append(op)
        op.wait_started()
        return op

    yield start
    for op in started:
        op.stop()
    release_finalizers(kube)
    for op in started:
        text = op.log_text()
        assert "Traceback" not in text, f"operator log has a traceback:\n{text[-6000:]}"
        assert ledger_dsn not in text, "the ledger DSN (a secret) appeared in the operator's log"
        assert LEDGER_OWNER_PASSWORD not in text, "the ledger password appeared in the operator's log"
