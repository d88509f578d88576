"""Executor settings from XORJ_* variables: validation names the field, secrets are never echoed."""

from __future__ import annotations

import pytest

from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode
from xorj.errors import InvalidInputError
from xorj.executor.service import SigkillHook
from xorj.executor.settings import load_settings

BASE = {
    "XORJ_LEDGER_DSN": "postgresql://xorj:hunter2-secret@127.0.0.1:5432/ledger",
    "XORJ_STRATEGY": "alpha",
    "XORJ_RPC_URL": "http://127.0.0.1:8899",
    "XORJ_SWAP_API_URL": "http://127.0.0.1:8080",
    "XORJ_VAULT_KEYPAIR_FILE": "/var/run/secrets/vault/keypair.json",
}


@pytest.fixture
def env(monkeypatch):
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_reads_environment_with_defaults(env):
    env.setenv("XORJ_CONCURRENCY", "8")
    env.setenv("XORJ_USD_PRICES", '{"So11111111111111111111111111111111111111112": "0.00000015"}')
    settings = load_settings()
    assert settings.strategy == "alpha" and settings.concurrency == 8
    assert settings.effective_slippage_cap_bps == 200  # the domain's default, which the CRD renders too
    env.setenv("XORJ_SLIPPAGE_PROFILE", "moderate")  # a named profile still sets its own cap
    assert load_settings().effective_slippage_cap_bps == 100
    assert settings.skip_preflight is True and settings.confirmation_commitment == "confirmed"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.ledger_dsn.get_secret_value() == BASE["XORJ_LEDGER_DSN"]


@pytest.mark.parametrize("name, value, field", [
    ("XORJ_CONCURRENCY", "0", "XORJ_CONCURRENCY"),
    ("XORJ_LEASE_SECONDS", "1", "XORJ_LEASE_SECONDS"),
    ("XORJ_SLIPPAGE_CAP_BPS", "900", "XORJ_SLIPPAGE_CAP_BPS"),  # above the absolute 5% cap
    ("XORJ_CONFIRMATION_COMMITMENT", "sometime", "XORJ_CONFIRMATION_COMMITMENT"),
])
def test_bad_values_name_the_field(env, name, value, field):
    env.setenv(name, value)
    with pytest.raises(InvalidInputError, match=field):
        load_settings()


def test_initial_above_cap_is_refused(env):
    env.setenv("XORJ_SLIPPAGE_INITIAL_BPS", "300")
    env.setenv("XORJ_SLIPPAGE_CAP_BPS", "200")
    with pytest.raises(InvalidInputError, match="slippage_initial_bps"):
        load_settings()


def test_errors_never_echo_secret_input(env):
    env.setenv("XORJ_SWAP_API_KEY", "sk-very-secret")
    env.setenv("XORJ_CONCURRENCY", "not-a-number-hunter2")
    with pytest.raises(InvalidInputError) as info:
        load_settings()
    assert "hunter2" not in str(info.value) and "sk-very-secret" not in str(info.value)


def test_sigkill_hook_spec_is_validated():
    with pytest.raises(InvalidInputError, match="XORJ_TEST_SIGKILL_AFTER"):
        SigkillHook("teleported")
    hook = SigkillHook("committed:3")
    assert (hook.step, hook.nth) == ("committed", 3)
    hook("sent")  # other steps do nothing
    assert hook.seen == 0


def _resolved(outcome: AttemptOutcome, reason: ReasonCode, detail: str,
              send_failure: ReasonCode | None = None) -> Attempt:
    return Attempt(trade_id=1, attempt_no=1, signature="sig", raw_tx=b"x", last_valid_block_height=8,
                   slippage_bps=100, outcome=outcome, reason=reason, send_failure=send_failure, detail=detail)


def test_expired_attempt_is_judged_by_why_the_rpc_refused_it():
    assert _resolved(AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, "never accepted (3 send(s) failed)",
                     ReasonCode.RPC_TIMEOUT).decisive_reason is ReasonCode.RPC_TIMEOUT
    assert _resolved(AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                     "unseen after expiry: finalized height 9 > last valid 8").decisive_reason is ReasonCode.BLOCKHASH_EXPIRED
    assert _resolved(AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED,
                     "RPC_TIMEOUT: whatever").decisive_reason is ReasonCode.SLIPPAGE_EXCEEDED
    # the detail is text for people: a reason code written into it decides nothing
    assert _resolved(AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                     "RPC_TIMEOUT: never accepted (3 send(s) failed)").decisive_reason is ReasonCode.BLOCKHASH_EXPIRED
    # a send failure that does not decide retries (a refusal of ours) leaves the expiry in charge
    assert _resolved(AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, "never accepted",
                     ReasonCode.SWAP_REJECTED).decisive_reason is ReasonCode.BLOCKHASH_EXPIRED


def test_keys_come_from_exactly_one_place(env):
    env.setenv("XORJ_SIGNER_SOCKET", "/run/xorj-signer/signer.sock")
    with pytest.raises(InvalidInputError, match="exactly one of vault_keypair_file, vault_keys_dir, signer_socket") as info:
        load_settings()
    assert "set: vault_keypair_file, signer_socket" in str(info.value)
    env.delenv("XORJ_VAULT_KEYPAIR_FILE")
    settings = load_settings()  # the signer boundary: no key in the executor
    assert settings.vault_keypair_file is None and str(settings.signer_socket) == "/run/xorj-signer/signer.sock"
    env.delenv("XORJ_SIGNER_SOCKET")
    with pytest.raises(InvalidInputError, match=r"\(set: none\)"):
        load_settings()
    env.setenv("XORJ_VAULT_KEYS_DIR", "/var/run/secrets/vaults")
    assert str(load_settings().vault_keys_dir) == "/var/run/secrets/vaults"
    env.setenv("XORJ_VAULT_PUBKEY", "Vau1t111")
    with pytest.raises(InvalidInputError, match="vault_pubkey checks vault_keypair_file"):
        load_settings()
