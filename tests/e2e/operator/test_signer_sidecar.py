"""The signer boundary wired into the executor pods (operator setting
XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR), on the real API server: the Deployment the operator applies
holds an ``xorj signer`` sidecar that alone mounts the vault Secret, a shared emptyDir for the socket,
and an executor container with neither the key volume nor a key path in its ConfigMap."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from tests.polling import wait_for
from xorj.controller.tradingstrategy.desired import (
    EXECUTOR_CONTAINER,
    SIGNER_CONTAINER,
    SIGNER_SOCKET,
    VAULT_MOUNT_DIR,
)

from .conftest import Kubectl
from .manifests import secret, strategy, vault

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def test_executor_pods_get_a_signer_sidecar_holding_the_only_key_mount(kube: Kubectl, operators) -> None:
    operators(extra_env={"XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR": "true"})
    kube.apply(strategy("alpha"))
    dep = wait_for(lambda: kube.get("deployment", "alpha-executor"), 60, "the executor Deployment")
    pod = dep["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {EXECUTOR_CONTAINER, SIGNER_CONTAINER}
    mounts = {name: {m["name"] for m in c.get("volumeMounts", [])} for name, c in containers.items()}
    assert "vault" in mounts[SIGNER_CONTAINER] and "vault" not in mounts[EXECUTOR_CONTAINER]
    assert "signer-socket" in mounts[SIGNER_CONTAINER] & mounts[EXECUTOR_CONTAINER]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["signer-socket"] and "secret" in volumes["vault"]
    assert containers[SIGNER_CONTAINER]["command"] == ["xorj", "signer"]
    config = kube.get("configmap", "alpha-executor-config")["data"]
    assert config["XORJ_SIGNER_SOCKET"] == SIGNER_SOCKET and "XORJ_VAULT_KEYPAIR_FILE" not in config


def test_with_vaults_the_signer_alone_mounts_the_keys_directory(kube: Kubectl, operators) -> None:
    """A strategy with a Vault: the signer sidecar (the key holder) gets the projected keys directory
    with the Vault's Secret, and reads it as XORJ_SIGNER_KEYS_DIR; the executor still mounts no key."""
    key = str(Keypair().pubkey())
    kube.apply(secret("alpha-keyring", {f"{key}.json": "[]"}, bound_to=("alpha",)))
    operators(extra_env={"XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR": "true"})
    kube.apply(strategy("alpha"))
    kube.apply(vault("v1", "alpha", key, secret_name="alpha-keyring", secretKey=f"{key}.json"))

    def projected():
        dep = kube.get("deployment", "alpha-executor") or {}
        pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
        volume = next((v for v in pod.get("volumes", []) if v["name"] == "vault"), {})
        return pod if "projected" in volume else None
    pod = wait_for(projected, 60, "the keys directory projected")
    containers = {c["name"]: c for c in pod["containers"]}
    mounts = {name: {m["name"] for m in c.get("volumeMounts", [])} for name, c in containers.items()}
    assert "vault" in mounts[SIGNER_CONTAINER] and "vault" not in mounts[EXECUTOR_CONTAINER]
    volume = next(v for v in pod["volumes"] if v["name"] == "vault")
    assert {"secret": {"name": "alpha-keyring"}} in volume["projected"]["sources"]
    env = {e["name"]: e.get("value") for e in containers[SIGNER_CONTAINER]["env"]}
    assert env["XORJ_SIGNER_KEYS_DIR"] == VAULT_MOUNT_DIR and "XORJ_SIGNER_KEYPAIR_FILE" not in env
