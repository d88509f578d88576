"""Operator settings from the environment, grouped by concern (in the manner of kopf's own
``OperatorSettings``): ``settings.executor``, ``settings.trading``, ``settings.timing``,
``settings.watching``, ``settings.reconciling``, ``settings.pools``, ``settings.peering`` and
``settings.serving``; the ledger's DSN and the API worker count sit at the top.

Every group reads its own variables, whose names are those the operator has always read
(XORJ_LEDGER_DSN and XORJ_OPERATOR_*, e.g. XORJ_OPERATOR_EXECUTOR_IMAGE for ``executor.image``):
the chart's values and existing deployments keep working. :meth:`OperatorSettings.environment_names`
lists them all. The CLI's options override them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from xorj.controller.tradingstrategy.desired import ExecutorDefaults

if TYPE_CHECKING:
    from xorj.reconciler.service import ReconcileSettings

_PREFIX = "XORJ_OPERATOR_"


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)


class ExecutorSettings(BaseSettings):
    """How the operator builds each strategy's executors (XORJ_OPERATOR_EXECUTOR_*). The executor image
    is the operator's choice, never a TradingStrategy's: executors hold vault keys."""

    model_config = _group(f"{_PREFIX}EXECUTOR_")

    image: str = Field(default="xorj-operator:latest", min_length=1, max_length=512,
                       description="The executors' container image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="The executors' image pull policy.")
    ledger_secret: str = Field(default="xorj-ledger", description=(
        "The Secret in each strategy's namespace executors read their ledger DSN from (the operator's "
        "own DSN never reaches a pod spec)."))
    ledger_secret_key: str = Field(default="dsn", description="The key of the DSN in that Secret.")
    ledger_logins: bool = Field(default=False, description=(
        "Make each watched namespace's own Postgres login and write its DSN into ``ledger_secret`` "
        "there (xorj.controller.ledger_logins); the chart turns this on. Off, the Secret is the user's."))
    ledger_dsn: SecretStr | None = Field(default=None, description=(
        "The DSN executors connect with, without credentials (default: the operator's own address and "
        "TLS settings); for executors that reach the ledger by another address than the operator."))
    metrics_port: int = Field(default=9102, description="The executors' /metrics port.")
    service_account: str | None = Field(default=None, description="The executors' ServiceAccount.")
    log_level: str = Field(default="INFO", description="The executors' log level.")
    node_selector: dict[str, str] = Field(default_factory=dict, description=(
        "The executors' nodeSelector; JSON in the environment, e.g. "
        "XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR='{\"xorj.dev/node\": \"real\"}'."))
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description=(
        "The executors' tolerations; a JSON list in the environment."))
    signer_sidecar: bool = Field(default=True, description=(
        "The signer boundary (docs/security.md): each executor pod gets an ``xorj signer`` sidecar that "
        "alone mounts the vault keys (the strategy's own and its Vaults'); the executor container mounts "
        "none and signs through the sidecar's Unix socket. The signer reads the ledger with the DSN in key "
        "``signer_ledger_secret_key`` of ``ledger_secret``: a signer-only login (migration 0014) that the "
        "operator makes with ``ledger_logins`` (without it, that key must be in the user's Secret). On by "
        "default, for one-vault strategies too; false is the opt-out to the executor's in-process keyring "
        "(the executor container then mounts the keys). The chart's executor.signerSidecar."))
    signer_ledger_secret_key: str = Field(default="signer-dsn", description=(
        "The key of the signer's ledger DSN in ``ledger_secret``."))

    def defaults(self) -> ExecutorDefaults:
        """What :mod:`xorj.controller.tradingstrategy.desired` builds every executor with."""
        return ExecutorDefaults(
            image=self.image,
            image_pull_policy=self.image_pull_policy,
            ledger_secret_name=self.ledger_secret,
            ledger_secret_key=self.ledger_secret_key,
            metrics_port=self.metrics_port,
            service_account=self.service_account,
            log_level=self.log_level,
            node_selector=tuple(sorted(self.node_selector.items())),
            tolerations=tuple(json.dumps(t, sort_keys=True) for t in self.tolerations),
            signer_sidecar=self.signer_sidecar,
            signer_ledger_secret_key=self.signer_ledger_secret_key,
        )


class TradingSettings(BaseSettings):
    """What the operator allows trading to do, cluster-wide (XORJ_OPERATOR_*)."""

    model_config = _group(_PREFIX)

    global_halt: bool = Field(default=False, description=(
        "The cluster-wide halt: enforced in the ledger at start and on every strategy resync "
        "(executors read it with each risk check and refuse every trade while it is on). The chart's "
        "operator.globalHalt."))
    global_halt_reason: str | None = Field(default=None, max_length=500,
                                           description="Why trading is halted (kept with the halt).")
    allow_insecure_endpoints: bool = Field(default=False, description=(
        "Development only: let strategies use http:// RPC and swap API endpoints (the local chain). "
        "Off: an http endpoint is refused with a condition, and no executor is built."))


class TimingSettings(BaseSettings):
    """How often the reconcilers look again (XORJ_OPERATOR_*). NOTIFY gives low latency; the resyncs
    bound how stale a status may get if a NOTIFY is lost."""

    model_config = _group(_PREFIX)

    copytrade_resync_seconds: float = Field(default=10.0, gt=0,
                                            description="A CopyTrade's status re-reads the ledger this often.")
    strategy_resync_seconds: float = Field(default=10.0, gt=0, description=(
        "A TradingStrategy is reconciled this often (kopf's timer: read once, at import)."))
    vault_recheck_seconds: float = Field(default=60.0, gt=0, description=(
        "Each Vault's Secret binding is checked again this often (kopf's timer: read once, at import), "
        "so a binding revoked on the Secret alone takes the vault out of the registry (no new trade, its "
        "PENDING trades cancelled) within this bound, with no change to the Vault and no restart. One "
        "kopf timer per strategy looks at all its Vaults: one metadata-only GET per distinct Secret per "
        "period."))
    strategy_drain_seconds: float = Field(default=300.0, ge=0, description=(
        "Deleting a strategy waits this long for its SUBMITTED trades to finish before letting go."))
    alert_delivery_seconds: float = Field(default=2.0, ge=0, description=(
        "The ledger's alert outbox is delivered (a Kubernetes Event each, and metrics) this often "
        "(xorj.controller.alerts); 0 turns the deliverer off (another replica or tool delivers them)."))


class WatchingSettings(BaseSettings):
    """kopf's watches and the liveness probe built on them (XORJ_OPERATOR_WATCH_*)."""

    model_config = _group(f"{_PREFIX}WATCH_")

    server_timeout: int = Field(default=300, gt=0, description="The API server ends each watch after this.")
    client_timeout: int = Field(default=330, gt=0, description="kopf's client-side bound on one watch.")
    inactivity_timeout: int = Field(default=600, gt=0,
                                    description="A watch silent for longer is restarted by kopf.")
    stale_seconds: float = Field(default=60.0, gt=0, description=(
        "The probe fails when the operator's own writes are not seen back on the watch within this."))


class ReconcilingSettings(BaseSettings):
    """Continuous reconciliation with the chain (xorj.reconciler; XORJ_OPERATOR_RECONCILE_*): every
    ``interval_seconds``, walk each ledger vault's on-chain transactions and check CONFIRMED trades'
    finality through ``rpc_url``."""

    model_config = _group(f"{_PREFIX}RECONCILE_")

    rpc_url: SecretStr | None = Field(default=None, description=(
        "The RPC endpoint (the operator's own choice, never a tenant's; it may carry an API key: never "
        "logged). Unset: the periodic reconciler does not run (xorj_reconcile_enabled 0); `xorj "
        "reconcile` still can."))
    interval_seconds: float = Field(default=60.0, gt=0, description="One pass this often.")
    grace_seconds: float = Field(default=120.0, ge=0, description=(
        "A CONFIRMED trade's transaction may be short of finalized for this long..."))
    grace_slots: int = Field(default=150, ge=0, description="...and this many slots.")
    baseline_margin_seconds: float = Field(default=60.0, ge=0, description=(
        "A vault's history is judged from its first trade's admission less this margin."))
    rpc_timeout_seconds: float = Field(default=10.0, gt=0, description="The bound on one RPC call.")

    def service_settings(self) -> ReconcileSettings:
        """The reconciler service's own settings."""
        from xorj.domain.reconciliation import FinalityGrace
        from xorj.reconciler.service import ReconcileSettings

        return ReconcileSettings(grace=FinalityGrace(seconds=self.grace_seconds, slots=self.grace_slots),
                                 baseline_margin_seconds=self.baseline_margin_seconds)


class PoolSettings(BaseSettings):
    """TraderPool scoring (XORJ_OPERATOR_POOL_*, XORJ_OPERATOR_TRADER_CASH_MINTS)."""

    model_config = _group(f"{_PREFIX}POOL_")

    score_seconds: float = Field(default=60.0, gt=0, description=(
        "Every pool is ranked from the ledger's stored swaps this often (kopf's timer: read once, at "
        "import), and when its spec changes."))
    swaps_check_seconds: float = Field(default=5.0, gt=0, description=(
        "How often each pool checks whether its candidates recorded new swaps since it was last "
        "scored (one read of their history cursors), and is rescored if they did: a stream of swaps "
        "rescores a pool at most once per check (kopf's timer: read once, at import)."))
    cash_mints: list[str] = Field(default_factory=list, validation_alias=f"{_PREFIX}TRADER_CASH_MINTS",
                                  description=(
        "Mints that open no position in the FIFO book (empty: mainnet USDC and USDT; the local "
        "market's stablecoin on the local chain). A JSON list in the environment."))


class PeeringSettings(BaseSettings):
    """kopf's peering between operator replicas (XORJ_OPERATOR_PEERING_*, _PRIORITY, _STANDALONE)."""

    model_config = _group(f"{_PREFIX}PEERING_")

    name: str = Field(default="xorj-operator", description="The peering object's name.")
    lifetime: int = Field(default=60, ge=5, description=(
        "How long a silent peer is still considered alive (kopf's default is 60 s)."))
    priority: int = Field(default=0, validation_alias=f"{_PREFIX}PRIORITY", description=(
        "The highest alive operator acts, the others wait; give replicas different priorities."))
    standalone: bool = Field(default=False, validation_alias=f"{_PREFIX}STANDALONE",
                             description="No peering (one operator only).")


class ServingSettings(BaseSettings):
    """The operator's own HTTP endpoints (XORJ_OPERATOR_*)."""

    model_config = _group(_PREFIX)

    health_host: str = Field(default="0.0.0.0", description="The address /healthz and /metrics listen on.")
    health_port: int = Field(default=8080, description="The port of /healthz (fails when watches go stale).")
    metrics_port: int = Field(default=9101, description="The port of /metrics.")
    memory_profile_frames: int = Field(default=0, ge=0, le=64, description=(
        "Opt-in, for benchmarks and leak hunts: above 0, trace allocations (tracemalloc, this many frames "
        "each) from start-up and serve the largest holders as JSON at /debug/memory on the metrics port. "
        "Tracing costs CPU and memory of its own; 0 (the default) traces nothing and serves no such page."))


class OperatorSettings(BaseSettings):
    """All the operator's settings: the ledger, then one group per concern."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)

    ledger_dsn: SecretStr = Field(
        validation_alias="XORJ_LEDGER_DSN", description="Postgres DSN of the ledger (never logged)."
    )
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    trading: TradingSettings = Field(default_factory=TradingSettings)
    timing: TimingSettings = Field(default_factory=TimingSettings)
    watching: WatchingSettings = Field(default_factory=WatchingSettings)
    reconciling: ReconcilingSettings = Field(default_factory=ReconcilingSettings)
    pools: PoolSettings = Field(default_factory=PoolSettings)
    peering: PeeringSettings = Field(default_factory=PeeringSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @classmethod
    def environment_names(cls) -> set[str]:
        """Every environment variable the operator's settings read."""
        return set(_environment_names(cls))


def _environment_names(model: type[BaseSettings]) -> Iterator[str]:
    prefix = model.model_config.get("env_prefix", "")
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            yield from _environment_names(field.annotation)
        elif isinstance(field.validation_alias, str):
            yield field.validation_alias
        else:
            yield f"{prefix}{name}".upper()
