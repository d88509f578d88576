"""Running the pinned helm binary against charts/xorj-operator, and reading what it renders."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.toolchain import toolchain_binary

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "xorj-operator"
KUBE_VERSION = "1.34.0"
MONITORING_API = "monitoring.coreos.com/v1"


def helm_binary() -> str:
    return toolchain_binary("helm")


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.stdout) if d]


def _set_args(values: Mapping[str, Any] | None, sets: Iterable[str]) -> list[str]:
    args: list[str] = []
    for item in sets:
        args += ["--set", item]
    for key, value in (values or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def helm(*args: str, timeout: float = 120, env: Mapping[str, str] | None = None) -> HelmResult:
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([helm_binary(), *args], capture_output=True, text=True,
                            timeout=timeout, env=full_env)
    return HelmResult(result.returncode, result.stdout, result.stderr)


# `helm template` has no cluster to read a generated ledger password back from, so the chart needs
# one given (see templates/ledger-secret.yaml); renders that test something else pass this one.
TEST_LEDGER_PASSWORD = "rendered-for-tests"
# Nor can it keep a generated TLS certificate for the bundled Postgres (templates/postgresql.yaml):
# renders name a Secret holding one, as a GitOps install would (e.g. cert-manager's).
TEST_LEDGER_TLS_SECRET = "ledger-tls"
# Executors' egress has no open default either (see templates/_netpol.tpl): test renders name
# documentation addresses (RFC 5737) unless a test sets its own.
TEST_ENDPOINT_SETS = ("networkPolicy.rpc.cidrs={192.0.2.10/32}", "networkPolicy.swapApi.cidrs={192.0.2.20/32}")


def template(*sets: str, values: Mapping[str, Any] | None = None, namespace: str = "xorj",
             release: str = "xorj", extra: Iterable[str] = (), ledger_password: str | None = TEST_LEDGER_PASSWORD,
             endpoints: Iterable[str] = TEST_ENDPOINT_SETS, ledger_tls: str | None = TEST_LEDGER_TLS_SECRET) -> HelmResult:
    password = ["--set-string", f"postgresql.password={ledger_password}"] if ledger_password is not None else []
    if ledger_tls is not None:
        password += ["--set-string", f"postgresql.tls.existingSecret={ledger_tls}"]
    return helm("template", release, str(CHART), "--namespace", namespace,
                "--kube-version", KUBE_VERSION, "--api-versions", MONITORING_API,
                *password, *_set_args(None, endpoints), *_set_args(values, sets), *extra)


def render(*sets: str, values: Mapping[str, Any] | None = None, namespace: str = "xorj",
           release: str = "xorj") -> list[dict[str, Any]]:
    result = template(*sets, values=values, namespace=namespace, release=release)
    assert result.returncode == 0, result.stderr
    return result.documents()


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d.get("kind") == kind]


def named(documents: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict:
    found = [d for d in of_kind(documents, kind) if d["metadata"]["name"] == name
             and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"expected one {kind} {name} in {namespace}, found {len(found)}"
    return found[0]


def pod_templates(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every workload that makes pods."""
    out = []
    for d in documents:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
        elif d.get("kind") == "Pod":
            out.append((f"Pod/{d['metadata']['name']}", d["spec"]))
    return out
