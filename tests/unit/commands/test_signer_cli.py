"""``xorj signer --check-config``: settings and keys validated without serving; a bad key file or a
missing setting is a clear error naming the variable, never a key's bytes."""

from __future__ import annotations

import json

from click.testing import CliRunner
from solders.keypair import Keypair

from xorj.cli import cli as main


def _env(tmp_path, **extra: str) -> dict[str, str]:
    return {"XORJ_SIGNER_SOCKET": str(tmp_path / "s.sock"), "XORJ_SIGNER_LEDGER_DSN": "postgresql://s:hunter2@h/db",
            "XORJ_SIGNER_RPC_URL": "http://127.0.0.1:8899", **extra}


def test_check_config_names_the_vaults_held(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    held = [Keypair(), Keypair()]
    for i, kp in enumerate(held):
        (keys / f"v{i}.json").write_text(json.dumps(list(bytes(kp))))
    result = CliRunner().invoke(main, ["signer", "--check-config"], env=_env(tmp_path, XORJ_SIGNER_KEYS_DIR=str(keys)))
    assert result.exit_code == 0, result.output
    assert "the keys of 2 vaults" in result.output and all(str(kp.pubkey()) in result.output for kp in held)


def test_bad_key_file_and_missing_source_are_named(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    secret = list(bytes(Keypair()))
    (keys / "broken.json").write_text(json.dumps(secret[:40]))
    result = CliRunner().invoke(main, ["signer", "--check-config"], env=_env(tmp_path, XORJ_SIGNER_KEYS_DIR=str(keys)))
    assert result.exit_code != 0
    assert "XORJ_SIGNER_KEYS_DIR" in result.output and "broken.json" in result.output
    assert str(secret[:8])[1:-1] not in result.output
    result = CliRunner().invoke(main, ["signer", "--check-config"], env=_env(tmp_path))
    assert result.exit_code != 0 and "exactly one of keypair_file, keys_dir" in result.output
    assert "hunter2" not in result.output
