"""The signer's settings, from the environment (prefix ``XORJ_SIGNER_``), validated with
pydantic-settings. The keys are never settings, only the PATH of a keypair file or of a directory of
them (a mounted Secret); the ledger DSN is a ``SecretStr``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xorj.chain.swap_check import SwapLimits
from xorj.domain.slippage import ABSOLUTE_CAP_BPS
from xorj.errors import InvalidInputError
from xorj.executor.settings import url_with_api_key


class SignerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XORJ_SIGNER_", extra="ignore", frozen=True,
                                      hide_input_in_errors=True)

    socket: Path  # the Unix socket served (the executor's XORJ_SIGNER_SOCKET)
    # The ledger, read to check each request's trade. Ideally a login that may only read trades and
    # attempts (docs/security.md); the signer writes nothing.
    ledger_dsn: SecretStr
    rpc_url: str = Field(min_length=1)  # the signer's own RPC: validity and simulation, re-run here
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    rpc_api_key: SecretStr | None = None  # added to rpc_url as a query parameter (as the executor does)
    rpc_api_key_parameter: str = Field(default="api-key", pattern=r"^[-_A-Za-z0-9]+$")
    keypair_file: Path | None = None  # one vault's key
    keys_dir: Path | None = None  # one keypair file per vault, read again when it changes
    keys_check_seconds: float = Field(default=1.0, ge=0, le=300)
    # limits on what one caller may ask
    max_body_bytes: int = Field(default=64 * 1024, ge=4 * 1024, le=1024 * 1024)
    max_in_flight: int = Field(default=64, ge=1, le=4096)  # beyond: refused as busy (HTTP 429)
    # the most slippage a quote may carry, whatever the trade allows
    slippage_cap_bps: int = Field(default=ABSOLUTE_CAP_BPS, ge=1, le=ABSOLUTE_CAP_BPS)
    swap_max_compute_unit_limit: int = Field(default=1_400_000, ge=0, le=1_400_000)
    swap_max_compute_unit_price_micro_lamports: int = Field(default=1_000_000, ge=0)
    swap_max_priority_fee_lamports: int = Field(default=5_000_000, ge=0)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _one_key_source(self) -> SignerSettings:
        if (self.keypair_file is None) == (self.keys_dir is None):
            raise ValueError("exactly one of keypair_file, keys_dir must be set")
        return self

    def rpc_url_with_key(self) -> str:
        return url_with_api_key(self.rpc_url, self.rpc_api_key, self.rpc_api_key_parameter)

    def swap_limits(self) -> SwapLimits:
        return SwapLimits(max_compute_unit_limit=self.swap_max_compute_unit_limit,
                          max_compute_unit_price_micro_lamports=self.swap_max_compute_unit_price_micro_lamports,
                          max_priority_fee_lamports=self.swap_max_priority_fee_lamports)


def load_signer_settings(**overrides: object) -> SignerSettings:
    """Settings from the environment; a clear :class:`InvalidInputError` naming each bad field, its
    input never echoed."""
    try:
        return SignerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"XORJ_SIGNER_{'.'.join(str(p) for p in err['loc']).upper() or '?'}: {err['msg']}"
            for err in exc.errors())
        raise InvalidInputError(f"signer settings: {problems}") from None
