"""Watcher settings, from the environment (prefix ``XORJ_``), validated with pydantic-settings.

Secrets (the ledger DSN, the webhook token, the price API key) are ``SecretStr``: shown as
``**********`` and never logged. The RPC URL may carry a provider's key in its query: it is never
logged either (the log redaction filter is installed by the command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xorj.domain.trader_history import DEFAULT_CASH_MINTS, SOL_MINT
from xorj.errors import InvalidInputError


class WatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XORJ_", extra="ignore", frozen=True, hide_input_in_errors=True)

    ledger_dsn: SecretStr
    rpc_url: str = Field(min_length=1, pattern=r"^https?://")
    price_api_url: str = Field(min_length=1, pattern=r"^https?://",
                               description="Jupiter price API v3 (or the local market's).")
    price_api_key: SecretStr | None = None
    commitment: Literal["confirmed", "finalized"] = "confirmed"
    watcher_http_host: str = "0.0.0.0"
    watcher_http_port: int = Field(default=8080, ge=0, le=65535)
    watcher_http_port_file: Path | None = None  # tests: where the bound port is written
    watcher_ws_url: str | None = Field(default=None, pattern=r"^wss?://")  # PubSub logsSubscribe; None: off
    watcher_webhook_token: SecretStr | None = None  # no webhook receiver without it
    watcher_webhook_path: str = Field(default="/webhook", pattern=r"^/[-_/a-zA-Z0-9]*$")
    watcher_webhook_workers: int = Field(default=4, ge=1, le=64)
    watcher_poll_interval_seconds: float = Field(default=1.0, gt=0, le=300)
    watcher_baseline_seconds: int = Field(default=120, ge=0, le=86_400)
    watcher_follow_refresh_seconds: float = Field(default=10.0, gt=0, le=3600)
    watcher_project_seconds: float = Field(default=5.0, gt=0, le=3600)
    watcher_namespaces: list[str] = Field(default_factory=list)  # empty: every namespace
    watcher_strategies_file: Path | None = None  # TradingStrategy/TraderPool YAML instead of the API server
    watcher_cash_mints: list[str] = Field(default_factory=lambda: sorted(DEFAULT_CASH_MINTS | {SOL_MINT}))
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("watcher_webhook_token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


def load_settings() -> WatcherSettings:
    try:
        return WatcherSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(f"XORJ_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(f"watcher settings: {problems}") from None
