"""The development pod runtime builds a process's environment and files the way a kubelet would."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest

from xorj.devenv.pod_runtime import PodRuntime, PodSpecError, materialize_volumes, pod_environment


class FakeResolver:
    """Stands in for the API reads (ConfigMaps, Secrets) a pod refers to."""

    def __init__(self, config_maps=None, secrets=None):
        self.config_maps = config_maps or {}
        self.secrets = secrets or {}

    def config_map(self, namespace, name):
        return self.config_maps[(namespace, name)]

    def secret(self, namespace, name):
        return self.secrets[(namespace, name)]


def executor_pod(**container_extra):
    from xorj.controller.models import TradingStrategySpec
    from xorj.controller.tradingstrategy import desired

    spec = TradingStrategySpec.model_validate({
        "traders": ["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"],
        "vault": {"publicKey": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "secretName": "vault"},
        "endpoints": {"rpcUrl": "http://127.0.0.1:8899", "swapApiUrl": "http://127.0.0.1:8080"},
    })
    deployment = desired.deployment(desired.Owner("demo", "u1"), "xorj", spec,
                                    # the runtime runs a pod's first container: the in-process keyring
                                    desired.ExecutorDefaults(signer_sidecar=False))
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_spec["nodeName"] = "kwok-node-0"
    pod_spec["containers"][0].update(container_extra)
    return {"metadata": {"name": "demo-executor-abc", "namespace": "xorj", "uid": "0123456789abcdef",
                         "labels": deployment["spec"]["template"]["metadata"]["labels"]},
            "spec": pod_spec, "status": {"phase": "Running"}}


def test_environment_and_vault_file_of_an_operator_made_executor_pod(tmp_path: Path) -> None:
    pod = executor_pod()
    config = {"XORJ_STRATEGY": "demo", "XORJ_VAULT_KEYPAIR_PATH": "/var/run/xorj/vault/keypair.json"}
    resolver = FakeResolver({("xorj", "demo-executor-config"): config},
                            {("xorj", "xorj-ledger"): {"dsn": b"postgresql://x@127.0.0.1/l"},
                             ("xorj", "vault"): {"keypair.json": b"[1,2,3]"}})
    mounts = materialize_volumes(pod, resolver, tmp_path)
    env = pod_environment(pod, resolver, mounts)
    assert env["XORJ_STRATEGY"] == "demo"
    assert env["XORJ_LEDGER_DSN"] == "postgresql://x@127.0.0.1/l"
    assert env["XORJ_EXECUTOR_ID"] == "demo-executor-abc"
    keypair = Path(env["XORJ_VAULT_KEYPAIR_PATH"])
    assert keypair == tmp_path / "volumes" / "vault" / "keypair.json"
    assert keypair.read_bytes() == b"[1,2,3]"
    assert stat.S_IMODE(keypair.stat().st_mode) == 0o600


def test_a_missing_secret_key_is_named_without_values(tmp_path: Path) -> None:
    pod = executor_pod()
    resolver = FakeResolver({("xorj", "demo-executor-config"): {}},
                            {("xorj", "xorj-ledger"): {"other": b"s3cret"}, ("xorj", "vault"): {"keypair.json": b"x"}})
    with pytest.raises(PodSpecError) as caught:
        pod_environment(pod, resolver, {})
    assert "xorj-ledger" in str(caught.value) and "dsn" in str(caught.value)
    assert "s3cret" not in str(caught.value)


class FakeCore:
    """Only what PodRuntime.reconcile touches when given the pod list directly."""


def test_terminating_a_pod_terminates_its_process(tmp_path: Path, monkeypatch) -> None:
    """A pod's process starts with the pod, is restarted if it dies, and gets SIGTERM when the pod
    goes away (here the pod's command is a small Python sleeper instead of `xorj executor`)."""
    pod = executor_pod(command=[sys.executable, "-c", "import time; time.sleep(600)"])
    resolver = FakeResolver({("xorj", "demo-executor-config"): {}},
                            {("xorj", "xorj-ledger"): {"dsn": b"d"}, ("xorj", "vault"): {"keypair.json": b"k"}})
    runtime = PodRuntime(FakeCore(), tmp_path)
    runtime.resolver = resolver
    runtime.reconcile([pod])
    (entry,) = runtime.pods.values()
    first = entry.process
    assert first.poll() is None
    first.kill()
    first.wait()
    runtime.reconcile([pod])  # notices the exit, schedules a restart after a back-off
    assert entry.process is None and entry.restarts == 1
    monkeypatch.setattr(time, "monotonic", lambda: entry.next_start + 0.1)
    runtime.reconcile([pod])
    assert entry.process is not first and entry.process.poll() is None and entry.restarts == 1
    second = entry.process
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    runtime.reconcile([pod])
    assert second.wait(timeout=10) == -15
    assert not runtime.pods
    assert (tmp_path / "pods.json").read_text().strip() == "{}"


def test_the_ledger_ca_is_written_and_the_dsn_points_at_it_and_an_absent_ca_is_no_error(tmp_path: Path) -> None:
    """The executor mounts its ledger Secret's ca.crt (optional) and its DSN names the mounted file."""
    pod = executor_pod()
    dsn = b"host=127.0.0.1 user=x sslmode=verify-full sslrootcert=/var/run/xorj/ledger/ca.crt"
    resolver = FakeResolver({("xorj", "demo-executor-config"): {}},
                            {("xorj", "xorj-ledger"): {"dsn": dsn, "ca.crt": b"CA"},
                             ("xorj", "vault"): {"keypair.json": b"k"}})
    mounts = materialize_volumes(pod, resolver, tmp_path / "with")
    env = pod_environment(pod, resolver, mounts)
    ca = tmp_path / "with" / "volumes" / "ledger-ca" / "ca.crt"
    assert env["XORJ_LEDGER_DSN"] == f"host=127.0.0.1 user=x sslmode=verify-full sslrootcert={ca}"
    assert ca.read_bytes() == b"CA"
    resolver.secrets[("xorj", "xorj-ledger")] = {"dsn": b"host=127.0.0.1 user=x"}
    mounts = materialize_volumes(pod, resolver, tmp_path / "without")
    assert not (tmp_path / "without" / "volumes" / "ledger-ca" / "ca.crt").exists()
    assert pod_environment(pod, resolver, mounts)["XORJ_LEDGER_DSN"] == "host=127.0.0.1 user=x"
