from __future__ import annotations

import json

import pytest

from xorj.chaos.target import resolve
from xorj.errors import InvalidInputError


def test_missing_ledger_names_the_variable(monkeypatch):
    monkeypatch.delenv("XORJ_CHAOS_ENV", raising=False)
    monkeypatch.delenv("XORJ_CHAOS_LEDGER_DSN", raising=False)
    with pytest.raises(InvalidInputError, match="XORJ_CHAOS_LEDGER_DSN"):
        resolve({})


def test_env_file_then_variables_then_configuration(tmp_path, monkeypatch):
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"target": {"ledger_dsn": "postgresql://a/b", "strategy": "s1", "vault": "v1"}}))
    monkeypatch.setenv("XORJ_CHAOS_STRATEGY", "s2")
    target = resolve({"xorj_env": str(env), "vault": "v3", "run_id": "r"})
    assert (target.ledger_dsn, target.strategy, target.vault, target.run_id) == ("postgresql://a/b", "s2", "v3", "r")
    with pytest.raises(InvalidInputError, match="namespace is not configured"):
        target.require("namespace")


def test_unreadable_env_file_is_named(tmp_path):
    with pytest.raises(InvalidInputError, match="XORJ_CHAOS_ENV"):
        resolve({"xorj_env": str(tmp_path / "missing.json")})
