"""The vault keypair file: loaded, and its secret never shown in reprs or error messages."""

from __future__ import annotations

import json
import pickle

import pytest
from solders.keypair import Keypair

from xorj.chain.keys import load_vault_key
from xorj.errors import InvalidInputError


def test_loads_solana_cli_keypair_file(tmp_path):
    kp = Keypair()
    path = tmp_path / "vault.json"
    path.write_text(json.dumps(list(bytes(kp))))
    key = load_vault_key(path)
    assert key.pubkey == kp.pubkey()
    secret = bytes(kp)
    for text in (repr(key), str(key)):
        assert str(kp.pubkey()) in text
        assert str(list(secret[:8]))[1:-1] not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


@pytest.mark.parametrize("content, rule", [
    ("not json", "is not JSON"),
    ("[1, 2, 3]", "64 integers"),
    (json.dumps([300] * 64), "64 integers"),
])
def test_bad_files_name_the_field_and_the_rule(tmp_path, content, rule):
    path = tmp_path / "vault.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=rule) as info:
        load_vault_key(path)
    assert "vault_keypair_file" in str(info.value)


def test_mismatched_public_half_is_refused_without_echoing_bytes(tmp_path):
    kp = Keypair()
    raw = bytearray(bytes(kp))
    raw[40] ^= 0xFF  # public half no longer matches the secret half
    path = tmp_path / "vault.json"
    path.write_text(json.dumps(list(raw)))
    with pytest.raises(InvalidInputError) as info:
        load_vault_key(path)
    message = str(info.value)
    assert "valid ed25519 keypair" in message
    assert ", ".join(str(b) for b in raw[:6]) not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_vault_key(tmp_path / "nope.json")


def test_vault_pubkey_must_match_the_keypair(tmp_path):
    from xorj.chain.keys import check_vault_pubkey

    kp, other = Keypair(), Keypair()
    path = tmp_path / "vault.json"
    path.write_text(json.dumps(list(bytes(kp))))
    key = load_vault_key(path)
    check_vault_pubkey(key, str(kp.pubkey()))
    check_vault_pubkey(key, None)
    with pytest.raises(InvalidInputError, match="XORJ_VAULT_PUBKEY"):
        check_vault_pubkey(key, str(other.pubkey()))
