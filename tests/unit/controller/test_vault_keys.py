"""A strategy's Vault keys in its executor pods: a projected keys directory of the strategy's own key and
the Secrets its Vaults name (each mounted whole), built by the pure :mod:`desired` builder."""

from __future__ import annotations

import pytest

from xorj.controller.models import TradingStrategySpec
from xorj.controller.tradingstrategy import desired

from .factories import strategy_spec

OWNER = desired.Owner(name="alpha", uid="1234-uid")
SIDECAR = desired.ExecutorDefaults()  # the default: the signer sidecar holds the keys
KEYRING = desired.ExecutorDefaults(signer_sidecar=False)  # the opt-out: the executor's in-process keyring


def _spec() -> TradingStrategySpec:
    return TradingStrategySpec.model_validate(strategy_spec())


def _children(refs: list[desired.VaultKeyRef], defaults: desired.ExecutorDefaults = KEYRING) -> dict[str, dict]:
    spec = _spec()
    keys = desired.key_sources(spec, refs)
    return {c["kind"]: c for c in desired.children(OWNER, "ns1", spec, defaults, keys)}


def _pod(kids: dict[str, dict]) -> dict:
    return kids["Deployment"]["spec"]["template"]["spec"]


def _vault_volume(kids: dict[str, dict]) -> dict:
    return next(v for v in _pod(kids)["volumes"] if v["name"] == "vault")


KEYRING_A = desired.VaultKeyRef("alpha-keyring", "A1.json", "v1")
KEYRING_B = desired.VaultKeyRef("alpha-keyring", "B2.json", "v2")


def test_a_strategy_without_vaults_keeps_todays_pod() -> None:
    spec = _spec()
    assert desired.key_sources(spec, []) is None
    assert desired.children(OWNER, "ns1", spec, KEYRING, None) == desired.children(OWNER, "ns1", spec, KEYRING)
    volume = _vault_volume(_children([]))
    assert volume["secret"]["items"] == [{"key": "keypair.json", "path": "keypair.json"}]


def test_two_vaults_in_one_secret_are_one_whole_secret_source_next_to_the_strategys_own_key() -> None:
    kids = _children([KEYRING_A, KEYRING_B])
    volume = _vault_volume(kids)
    assert volume["projected"] == {"defaultMode": 0o440, "sources": [
        {"secret": {"name": "vault-keypair", "items": [{"key": "keypair.json", "path": "keypair.json"}]}},
        {"secret": {"name": "alpha-keyring"}},  # whole: a new key in it needs no pod spec change
    ]}
    data = kids["ConfigMap"]["data"]
    assert data["XORJ_VAULT_KEYS_DIR"] == desired.VAULT_MOUNT_DIR
    assert "XORJ_VAULT_KEYPAIR_FILE" not in data and "XORJ_VAULT_PUBKEY" not in data


def test_a_third_vault_in_the_same_secret_changes_nothing_and_one_in_a_new_secret_adds_one_source() -> None:
    two = _children([KEYRING_A, KEYRING_B])
    same_secret = _children([KEYRING_A, KEYRING_B, desired.VaultKeyRef("alpha-keyring", "C3.json", "v3")])
    assert same_secret == two
    new_secret = _children([KEYRING_A, KEYRING_B, desired.VaultKeyRef("alpha-keyring-2", "C3.json", "v3")])
    sources = _vault_volume(new_secret)["projected"]["sources"]
    assert sources[1:] == [{"secret": {"name": "alpha-keyring"}}, {"secret": {"name": "alpha-keyring-2"}}]
    assert len(sources) == len(_vault_volume(two)["projected"]["sources"]) + 1


def test_the_strategys_own_secret_named_by_a_vault_is_mounted_once_whole() -> None:
    volume = _vault_volume(_children([desired.VaultKeyRef("vault-keypair", "B2.json", "v2")]))
    assert volume["projected"]["sources"] == [{"secret": {"name": "vault-keypair"}}]


@pytest.mark.parametrize("refs, secrets", [
    ([KEYRING_A, desired.VaultKeyRef("other-keyring", "A1.json", "v9")], ("alpha-keyring", "other-keyring")),
    ([desired.VaultKeyRef("other-keyring", "keypair.json", "v9")], ("vault-keypair", "other-keyring")),
])
def test_one_file_name_from_two_secrets_is_refused_naming_both(refs, secrets) -> None:
    with pytest.raises(desired.KeyCollision) as caught:
        desired.key_sources(_spec(), refs)
    message = str(caught.value)
    assert all(repr(name) in message for name in secrets) and "v9" in message


def test_the_executor_and_the_signer_read_the_keys_directory(monkeypatch) -> None:
    """Contract with the executor's and the signer's settings: the rendered variables select the keys
    directory (the keyring re-reads it when the kubelet updates a Secret)."""
    from xorj.executor.settings import load_settings
    from xorj.signer.settings import load_signer_settings

    kids = _children([KEYRING_A])
    for key, value in kids["ConfigMap"]["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    settings = load_settings()
    assert str(settings.vault_keys_dir) == desired.VAULT_MOUNT_DIR and settings.vault_keypair_file is None

    kids = _children([KEYRING_A], SIDECAR)
    signer = next(c for c in _pod(kids)["containers"] if c["name"] == desired.SIGNER_CONTAINER)
    executor = next(c for c in _pod(kids)["containers"] if c["name"] == desired.EXECUTOR_CONTAINER)
    assert "vault" not in {m["name"] for m in executor["volumeMounts"]}  # the key holder is the signer
    assert "projected" in _vault_volume(kids)
    for entry in signer["env"]:
        if "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    monkeypatch.setenv("XORJ_SIGNER_LEDGER_DSN", "postgresql://s@127.0.0.1/x")
    signer_settings = load_signer_settings()
    assert str(signer_settings.keys_dir) == desired.VAULT_MOUNT_DIR and signer_settings.keypair_file is None


def _mounts(container: dict) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("refs", [[], [KEYRING_A], [KEYRING_A, KEYRING_B, desired.VaultKeyRef("other", "C3.json", "v3")]],
                         ids=["one vault", "one Vault", "Vaults in two Secrets"])
def test_by_default_no_key_is_in_the_executor_container_only_in_the_signers(refs) -> None:
    """The operator's default pod (no setting given): the executor container mounts no key volume and
    nothing under the keys directory, and its settings name no key; the signer container alone mounts
    the keys, read-only. A one-vault strategy gets the same boundary."""
    kids = _children(refs, desired.ExecutorDefaults())
    containers = {c["name"]: c for c in _pod(kids)["containers"]}
    assert set(containers) == {desired.EXECUTOR_CONTAINER, desired.SIGNER_CONTAINER}
    executor, signer = _mounts(containers[desired.EXECUTOR_CONTAINER]), _mounts(containers[desired.SIGNER_CONTAINER])
    key_volumes = {"vault"}
    assert not key_volumes & set(executor)
    assert not any(path.startswith(desired.VAULT_MOUNT_DIR) for path in executor.values())
    assert signer["vault"] == desired.VAULT_MOUNT_DIR
    assert next(m for m in containers[desired.SIGNER_CONTAINER]["volumeMounts"] if m["name"] == "vault")["readOnly"]
    data = kids["ConfigMap"]["data"]
    assert not {"XORJ_VAULT_KEYS_DIR", "XORJ_VAULT_KEYPAIR_FILE", "XORJ_VAULT_PUBKEY"} & set(data)
    assert data["XORJ_SIGNER_SOCKET"] == desired.SIGNER_SOCKET
    executor_env = {e["name"] for e in containers[desired.EXECUTOR_CONTAINER]["env"]}
    assert not any(name.startswith("XORJ_SIGNER_") or "VAULT" in name for name in executor_env)
    signer_env = {e["name"]: e.get("value") for e in containers[desired.SIGNER_CONTAINER]["env"]}
    key_setting = "XORJ_SIGNER_KEYS_DIR" if refs else "XORJ_SIGNER_KEYPAIR_FILE"
    assert signer_env[key_setting].startswith(desired.VAULT_MOUNT_DIR)


def test_the_keyring_opt_out_puts_the_keys_in_the_executor_container_and_runs_no_signer() -> None:
    kids = _children([KEYRING_A], KEYRING)
    (executor,) = _pod(kids)["containers"]
    assert executor["name"] == desired.EXECUTOR_CONTAINER
    assert _mounts(executor)["vault"] == desired.VAULT_MOUNT_DIR
    assert "signer-socket" not in {v["name"] for v in _pod(kids)["volumes"]}
