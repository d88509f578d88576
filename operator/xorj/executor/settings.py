"""Executor settings, from the environment (prefix ``XORJ_``), validated with pydantic-settings.

Secrets: the ledger DSN (it may hold a password) and the swap-API key are ``SecretStr`` (shown as
``**********``); the vault keypair is never a setting, only the PATH of its file (a mounted Secret).

Where the vault keys are, exactly one of: ``vault_keypair_file`` (one vault's key in this process),
``vault_keys_dir`` (a directory of keypair files, one per vault, read again when it changes), or
``signer_socket`` (the signer boundary, ``xorj signer``, on a Unix socket: no key in this process).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xorj.chain.prices import price_api_url_for
from xorj.domain import risk
from xorj.domain.risk import (
    DEFAULT_MAX_DAILY_TRADES,
    DEFAULT_MAX_DAILY_VOLUME_USD,
    DEFAULT_MAX_POSITION_SHARE,
    DEFAULT_MAX_PRICE_IMPACT,
    DEFAULT_MAX_TRADE_NOTIONAL_USD,
    CircuitBreaker,
    RiskLimits,
)
from xorj.domain.slippage import (
    ABSOLUTE_CAP_BPS,
    DEFAULT_CAP_BPS,
    DEFAULT_INITIAL_BPS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_STEP_BPS,
    PROFILE_CAP_BPS,
    RiskProfile,
    SlippagePolicy,
)
from xorj.domain.valuation import DEFAULT_NOTIONAL_TOLERANCE
from xorj.errors import InvalidInputError

# mainnet USDC and USDT (kept here, not imported from the adapters, so settings load without them)
DEFAULT_CASH_MINTS = ("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BJEYNYB")

Commitment = Literal["processed", "confirmed", "finalized"]


def _default_executor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ExecutorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XORJ_", extra="ignore", frozen=True, hide_input_in_errors=True)

    # where
    ledger_dsn: SecretStr
    strategy: str = Field(min_length=1)
    rpc_url: str = Field(min_length=1)
    # A second RPC node (another provider) asked to confirm "not found" when rpc_url's status answer is
    # older than the finalized block proving expiry (a lagging backend): optional, issue 12.
    status_confirm_rpc_url: str | None = Field(default=None, min_length=1)
    swap_api_url: str = Field(min_length=1)
    swap_api_key: SecretStr | None = None
    # The RPC provider's API key (from a Secret, never the ConfigMap), added to rpc_url as a query
    # parameter: error texts carrying the URL are redacted (xorj.redaction) before they go anywhere.
    rpc_api_key: SecretStr | None = None
    rpc_api_key_parameter: str = Field(default="api-key", pattern=r"^[-_A-Za-z0-9]+$")
    vault_keypair_file: Path | None = None
    vault_pubkey: str | None = None  # when set, the keypair file must hold exactly this vault's key
    vault_keys_dir: Path | None = None
    vault_keys_check_seconds: float = Field(default=1.0, ge=0, le=300)  # how often the directory is looked at
    signer_socket: Path | None = None
    signer_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    executor_id: str = Field(default_factory=_default_executor_id, min_length=1)

    # work
    concurrency: int = Field(default=4, ge=1, le=256)
    lease_seconds: float = Field(default=30.0, ge=3.0, le=3600.0)
    # the claim loop also wakes on admissions (NOTIFY) and freed slots: this poll is the fallback
    claim_interval_seconds: float = Field(default=0.25, gt=0, le=60)
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)

    # chain
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    send_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    swap_api_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    poll_interval_seconds: float = Field(default=0.4, gt=0, le=30)
    rebroadcast_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    skip_preflight: bool = True
    preflight_commitment: Commitment = "confirmed"
    confirmation_commitment: Commitment = "confirmed"
    finalized_from_usd: Decimal | None = Field(default=None, gt=0)
    # caps on what a swap transaction may cost beyond the trade (xorj.chain.swap_check.SwapLimits)
    swap_max_compute_unit_limit: int = Field(default=1_400_000, ge=0, le=1_400_000)
    swap_max_compute_unit_price_micro_lamports: int = Field(default=1_000_000, ge=0)
    swap_max_priority_fee_lamports: int = Field(default=5_000_000, ge=0)

    # slippage policy (defaults: the domain's, which are the TradingStrategy's; a profile, when named,
    # sets the cap unless slippage_cap_bps does)
    slippage_profile: RiskProfile | None = None
    slippage_initial_bps: int = Field(default=DEFAULT_INITIAL_BPS, ge=1, le=ABSOLUTE_CAP_BPS)
    slippage_step_bps: int = Field(default=DEFAULT_STEP_BPS, ge=1, le=ABSOLUTE_CAP_BPS)
    slippage_cap_bps: int | None = Field(default=None, ge=1, le=ABSOLUTE_CAP_BPS)
    slippage_max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20)

    # risk limits (xorj.domain.risk; the same defaults as the TradingStrategy's spec.risk)
    max_trade_notional_usd: Decimal = Field(default=DEFAULT_MAX_TRADE_NOTIONAL_USD, gt=0)
    max_daily_volume_usd: Decimal = Field(default=DEFAULT_MAX_DAILY_VOLUME_USD, gt=0)
    max_daily_trades: int = Field(default=DEFAULT_MAX_DAILY_TRADES, ge=1)
    max_position_share: Decimal = Field(default=DEFAULT_MAX_POSITION_SHARE, gt=0, le=1)
    max_price_impact: Decimal = Field(default=DEFAULT_MAX_PRICE_IMPACT, gt=0, le=1)
    # Valuation (xorj.executor.adapters.ChainValuer): notional and vault value come from the chain's
    # balances and this price API (Jupiter price API v3; default: beside swap_api_url), never from
    # the CopyTrade. A vault's value counts native SOL, the trade's mints and valued_mints.
    price_api_url: str | None = Field(default=None, min_length=1)
    price_api_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    valued_mints: list[str] = Field(default_factory=list)
    cash_mints: list[str] = Field(default_factory=lambda: list(DEFAULT_CASH_MINTS))
    notional_tolerance: Decimal = Field(default=DEFAULT_NOTIONAL_TOLERANCE, ge=0, le=1)
    paused: bool = False
    global_halt: bool = False
    # a trade whose processing raised unexpectedly this many times is FAILED with POISON_TRADE
    poison_after_crashes: int = Field(default=3, ge=1, le=100)
    breaker_failures_in_window: int = Field(default=risk.DEFAULT_BREAKER_FAILURES_IN_WINDOW, ge=1)
    breaker_window_seconds: float = Field(default=risk.DEFAULT_BREAKER_WINDOW_SECONDS, gt=0)
    breaker_failures_in_a_row: int = Field(default=risk.DEFAULT_BREAKER_FAILURES_IN_A_ROW, ge=1)
    breaker_open_seconds: float = Field(default=risk.DEFAULT_BREAKER_OPEN_SECONDS, gt=0)

    # serving
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    http_port_file: Path | None = None  # where to write the bound port (useful with port 0)
    log_level: str = "INFO"

    # test-only: SIGKILL this process right after a step of the algorithm ("committed", "sent:3", ...)
    test_sigkill_after: str | None = None
    # test-only: raise an unexpected error after a step, every time (the poison-trade path)
    test_raise_after: str | None = None

    @field_validator("strategy", "executor_id")
    @classmethod
    def _no_space(cls, v: str) -> str:
        if v != v.strip():
            raise ValueError("must not have surrounding whitespace")
        return v

    @model_validator(mode="after")
    def _one_key_source(self) -> ExecutorSettings:
        given = [name for name in ("vault_keypair_file", "vault_keys_dir", "signer_socket")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of vault_keypair_file, vault_keys_dir, signer_socket must be set "
                             f"(set: {', '.join(given) or 'none'})")
        if self.vault_pubkey is not None and self.vault_keypair_file is None:
            raise ValueError("vault_pubkey checks vault_keypair_file, which is not set")
        return self

    @model_validator(mode="after")
    def _slippage_consistent(self) -> ExecutorSettings:
        cap = self.effective_slippage_cap_bps
        if self.slippage_initial_bps > cap:
            raise ValueError(f"slippage_initial_bps ({self.slippage_initial_bps}) must be <= the cap ({cap})")
        return self

    def rpc_url_with_key(self) -> str:
        """The RPC URL the executor calls: ``rpc_url`` plus the API key, when there is one."""
        return url_with_api_key(self.rpc_url, self.rpc_api_key, self.rpc_api_key_parameter)

    @property
    def effective_price_api_url(self) -> str:
        return self.price_api_url if self.price_api_url is not None else price_api_url_for(self.swap_api_url)

    @property
    def effective_slippage_cap_bps(self) -> int:
        if self.slippage_cap_bps is not None:
            return self.slippage_cap_bps
        return PROFILE_CAP_BPS[self.slippage_profile] if self.slippage_profile is not None else DEFAULT_CAP_BPS

    def slippage_policy(self) -> SlippagePolicy:
        return SlippagePolicy(initial_bps=self.slippage_initial_bps, step_bps=self.slippage_step_bps,
                              cap_bps=self.effective_slippage_cap_bps, max_attempts=self.slippage_max_attempts)

    def circuit_breaker(self) -> CircuitBreaker:
        return CircuitBreaker(failures_in_window=self.breaker_failures_in_window,
                              window=timedelta(seconds=self.breaker_window_seconds),
                              failures_in_a_row=self.breaker_failures_in_a_row,
                              open_for=timedelta(seconds=self.breaker_open_seconds))

    def risk_limits(self) -> RiskLimits:
        return RiskLimits(max_trade_notional_usd=self.max_trade_notional_usd,
                          max_daily_volume_usd=self.max_daily_volume_usd, max_daily_trades=self.max_daily_trades,
                          max_position_share=self.max_position_share, max_price_impact=self.max_price_impact)


def url_with_api_key(url: str, api_key: SecretStr | None, parameter: str) -> str:
    """``url`` with the provider's API key added as query parameter ``parameter`` (when there is one)."""
    if api_key is None:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.append((parameter, api_key.get_secret_value()))
    return urlunsplit(parts._replace(query=urlencode(query)))


def load_settings(**overrides: object) -> ExecutorSettings:
    """Settings from the environment; a clear :class:`InvalidInputError` naming each bad field.
    Input values are not echoed (one of them may be a secret)."""
    try:
        return ExecutorSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"XORJ_{'.'.join(str(p) for p in err['loc']).upper() or '?'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInputError(f"executor settings: {problems}") from None


def _env_text(value: object) -> str:
    """A value as the executor's settings parse it back: booleans as true/false, Decimals as their
    exact text (never a float's repr), the rest as str."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def executor_variable(field: str) -> str:
    """The environment variable of :class:`ExecutorSettings` field ``field`` (``XORJ_`` + its name).
    The operator names every variable it renders through this, so a renamed or removed setting fails
    there, not in a running executor that silently ignores an unknown variable."""
    if field not in ExecutorSettings.model_fields:
        raise KeyError(f"{field}: not an executor setting (xorj.executor.settings.ExecutorSettings)")
    return f"{ExecutorSettings.model_config['env_prefix']}{field.upper()}"


def executor_environment(**values: object) -> dict[str, str]:
    """Environment variables that set the given :class:`ExecutorSettings` fields."""
    return {executor_variable(field): _env_text(value) for field, value in values.items()}


def policy_environment(policy: SlippagePolicy, limits: RiskLimits,
                       breaker: CircuitBreaker = CircuitBreaker()) -> dict[str, str]:
    """The variables from which :meth:`ExecutorSettings.slippage_policy`,
    :meth:`ExecutorSettings.risk_limits` and :meth:`ExecutorSettings.circuit_breaker` build back
    exactly ``policy``, ``limits`` and ``breaker``."""
    return executor_environment(
        slippage_initial_bps=policy.initial_bps, slippage_step_bps=policy.step_bps,
        slippage_cap_bps=policy.cap_bps, slippage_max_attempts=policy.max_attempts,
        max_trade_notional_usd=limits.max_trade_notional_usd, max_daily_volume_usd=limits.max_daily_volume_usd,
        max_daily_trades=limits.max_daily_trades, max_position_share=limits.max_position_share,
        max_price_impact=limits.max_price_impact,
        breaker_failures_in_window=breaker.failures_in_window,
        breaker_window_seconds=breaker.window.total_seconds(),
        breaker_failures_in_a_row=breaker.failures_in_a_row,
        breaker_open_seconds=breaker.open_for.total_seconds())
