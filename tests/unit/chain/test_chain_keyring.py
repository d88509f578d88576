"""The signer's keyring: one keypair file (today's XORJ_VAULT_KEYPAIR_FILE) or a directory of them,
one per vault, read again when the directory changes (a mounted Secret's update, which swaps the
``..data`` link), so adding or removing a vault restarts nothing. Keys never show in reprs or errors."""

from __future__ import annotations

import json
import os

import pytest
from solders.keypair import Keypair

from xorj.chain.keyring import Keyring
from xorj.errors import InvalidInputError


def _write(path, kp: Keypair) -> None:
    path.write_text(json.dumps(list(bytes(kp))))


def _secret_dir(root, version: str, keys: dict[str, Keypair]):
    """A directory laid out as the kubelet lays a Secret volume: files are links through ``..data``
    to a timestamped directory, and an update swaps ``..data``."""
    data = root / f"..{version}"
    data.mkdir()
    for name, kp in keys.items():
        _write(data / name, kp)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(data.name)
    os.replace(tmp_link, root / "..data")
    for name in keys:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


def test_one_file_holds_one_vault(tmp_path):
    kp = Keypair()
    _write(tmp_path / "vault.json", kp)
    keyring = Keyring.from_file(tmp_path / "vault.json")
    assert keyring.vaults == {str(kp.pubkey())}
    assert keyring.get(str(kp.pubkey())).pubkey == kp.pubkey()
    assert keyring.get(str(Keypair().pubkey())) is None
    assert str(kp.pubkey()) in repr(keyring) and str(list(bytes(kp))[:8])[1:-1] not in repr(keyring)


def test_directory_is_read_again_when_the_secret_changes(tmp_path):
    a, b, c = Keypair(), Keypair(), Keypair()
    _secret_dir(tmp_path, "v1", {"a.json": a, "b.json": b})
    keyring = Keyring.from_directory(tmp_path, check_interval=0)
    assert keyring.vaults == {str(a.pubkey()), str(b.pubkey())}
    assert keyring.get(str(c.pubkey())) is None

    # the Secret is updated: b removed, c added (the kubelet swaps ..data, then fixes the links)
    _secret_dir(tmp_path, "v2", {"a.json": a, "c.json": c})
    (tmp_path / "b.json").unlink()
    assert keyring.get(str(c.pubkey())).pubkey == c.pubkey()
    assert keyring.get(str(b.pubkey())) is None
    assert keyring.vaults == {str(a.pubkey()), str(c.pubkey())}


def test_directory_is_not_read_again_before_the_interval(tmp_path):
    a, b = Keypair(), Keypair()
    _write(tmp_path / "a.json", a)
    keyring = Keyring.from_directory(tmp_path, check_interval=3600)
    _write(tmp_path / "b.json", b)
    assert keyring.refresh() is False and keyring.get(str(b.pubkey())) is None
    assert keyring.refresh(force=True) is True and keyring.get(str(b.pubkey())) is not None


def test_bad_file_at_start_names_the_field_and_the_file(tmp_path):
    _write(tmp_path / "good.json", Keypair())
    secret = list(bytes(Keypair()))
    (tmp_path / "bad.json").write_text(json.dumps(secret[:63]))
    with pytest.raises(InvalidInputError) as info:
        Keyring.from_directory(tmp_path, field="XORJ_SIGNER_KEYS_DIR")
    message = str(info.value)
    assert "XORJ_SIGNER_KEYS_DIR" in message and "bad.json" in message and "64 integers" in message
    assert str(secret[:8])[1:-1] not in message


def test_bad_file_after_an_update_is_skipped_and_the_others_keep_signing(tmp_path, caplog):
    a = Keypair()
    _write(tmp_path / "a.json", a)
    keyring = Keyring.from_directory(tmp_path, check_interval=0)
    secret = list(bytes(Keypair()))
    (tmp_path / "bad.json").write_text(json.dumps(secret[:63]))
    assert keyring.get(str(a.pubkey())) is not None
    assert keyring.vaults == {str(a.pubkey())}
    problems = [getattr(r, "problem", "") for r in caplog.records]
    assert any("bad.json" in p and "64 integers" in p for p in problems), problems
    assert all(str(secret[:8])[1:-1] not in p for p in problems)


def test_not_a_directory_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="vault_keys_dir: .* is not a directory"):
        Keyring.from_directory(tmp_path / "missing")
