"""Operator settings from the environment: XORJ_LEDGER_DSN and XORJ_OPERATOR_* (e.g.
XORJ_OPERATOR_PRIORITY); the CLI's options override them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from xorj.controller.tradingstrategy.desired import ExecutorDefaults

if TYPE_CHECKING:
    from xorj.reconciler.service import ReconcileSettings


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XORJ_OPERATOR_", extra="ignore", populate_by_name=True)

    ledger_dsn: SecretStr = Field(
        validation_alias="XORJ_LEDGER_DSN", description="Postgres DSN of the ledger (never logged)."
    )
    # Executors read the DSN from this Secret (the operator's own DSN never reaches a pod spec).
    executor_ledger_secret: str = "xorj-ledger"
    executor_ledger_secret_key: str = "dsn"
    # Make each watched namespace's own Postgres login and write its DSN into executor_ledger_secret
    # there (xorj.controller.ledger_logins); the chart turns this on. Off, the Secret is the user's.
    executor_ledger_logins: bool = False
    # The DSN executors connect with, without credentials (default: the operator's own address and TLS
    # settings); for executors that reach the ledger by another address than the operator.
    executor_ledger_dsn: SecretStr | None = None
    # The executor image is the operator's choice, never a TradingStrategy's: executors hold vault keys.
    executor_image: str = Field(default="xorj-operator:latest", min_length=1, max_length=512)
    executor_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    # Development only: let strategies use http:// RPC and swap API endpoints (the local chain).
    # Off: an http endpoint is refused with a condition, and no executor is built.
    allow_insecure_endpoints: bool = False
    executor_metrics_port: int = 9102
    executor_service_account: str | None = None
    executor_log_level: str = "INFO"
    # JSON in the environment, e.g. XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR='{"xorj.dev/node": "real"}'
    executor_node_selector: dict[str, str] = Field(default_factory=dict)
    executor_tolerations: list[dict[str, Any]] = Field(default_factory=list)

    # Cluster-wide halt: enforced in the ledger at start and on every strategy resync (executors read
    # it with each risk check and refuse every trade while it is on). The chart's operator.globalHalt.
    global_halt: bool = False
    global_halt_reason: str | None = Field(default=None, max_length=500)

    # Resync: NOTIFY gives low latency; these bound how stale a status may get if a NOTIFY is lost.
    copytrade_resync_seconds: float = Field(default=10.0, gt=0)
    strategy_resync_seconds: float = Field(default=10.0, gt=0)
    # Deleting a strategy waits this long for its SUBMITTED trades to finish before letting go.
    strategy_drain_seconds: float = Field(default=300.0, ge=0)

    # Watches: the API server ends each watch after server_timeout; a watch silent for longer than
    # inactivity_timeout is restarted by kopf; the probe fails when our own writes are not seen back
    # on the watch within watch_stale_seconds.
    watch_server_timeout: int = Field(default=300, gt=0)
    watch_client_timeout: int = Field(default=330, gt=0)
    watch_inactivity_timeout: int = Field(default=600, gt=0)
    watch_stale_seconds: float = Field(default=60.0, gt=0)

    # Continuous reconciliation with the chain (xorj.reconciler): every reconcile_interval_seconds, walk
    # each ledger vault's on-chain transactions and check CONFIRMED trades' finality, through this RPC
    # endpoint (the operator's own choice, never a tenant's; it may carry an API key: never logged).
    # Unset: the periodic reconciler does not run (xorj_reconcile_enabled 0); `xorj reconcile` still can.
    reconcile_rpc_url: SecretStr | None = None
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    # A CONFIRMED trade's transaction may be short of finalized for this long / this many slots.
    reconcile_grace_seconds: float = Field(default=120.0, ge=0)
    reconcile_grace_slots: int = Field(default=150, ge=0)
    # A vault's history is judged from its first trade's admission less this margin.
    reconcile_baseline_margin_seconds: float = Field(default=60.0, ge=0)
    reconcile_rpc_timeout_seconds: float = Field(default=10.0, gt=0)

    # TraderPools: every pool is ranked from the ledger's stored swaps this often (XORJ_OPERATOR_POOL_SCORE_SECONDS,
    # read once at import by the kopf timer), and when its spec changes. Cash mints open no position in
    # the FIFO book (empty: mainnet USDC and USDT; the local market's stablecoin on the local chain).
    pool_score_seconds: float = Field(default=60.0, gt=0)
    trader_cash_mints: list[str] = Field(default_factory=list)

    health_host: str = "0.0.0.0"
    health_port: int = 8080
    metrics_port: int = 9101
    peering_name: str = "xorj-operator"
    # how long a silent peer is still considered alive (kopf's default is 60 s)
    peering_lifetime: int = Field(default=60, ge=5)
    priority: int = 0
    standalone: bool = False
    api_workers: int = Field(default=16, ge=1, description="Threads for Kubernetes and ledger calls.")

    def executor_defaults(self) -> ExecutorDefaults:
        return ExecutorDefaults(
            image=self.executor_image,
            image_pull_policy=self.executor_image_pull_policy,
            ledger_secret_name=self.executor_ledger_secret,
            ledger_secret_key=self.executor_ledger_secret_key,
            metrics_port=self.executor_metrics_port,
            service_account=self.executor_service_account,
            log_level=self.executor_log_level,
            node_selector=tuple(sorted(self.executor_node_selector.items())),
            tolerations=tuple(json.dumps(t, sort_keys=True) for t in self.executor_tolerations),
        )

    def reconcile_settings(self) -> ReconcileSettings:
        from xorj.domain.reconciliation import FinalityGrace
        from xorj.reconciler.service import ReconcileSettings

        return ReconcileSettings(grace=FinalityGrace(seconds=self.reconcile_grace_seconds,
                                                     slots=self.reconcile_grace_slots),
                                 baseline_margin_seconds=self.reconcile_baseline_margin_seconds)
