"""Pydantic models of the TradingStrategy and CopyTrade custom resources: the single source.

The CRD files in crds/ are generated from these models (``xorj crds``, :mod:`xorj.controller.crdgen`),
and the operator validates what it reads with the same models. Each cross-field rule is declared once
as a :class:`CelRule`: its CEL expression goes into the CRD (the API server refuses bad objects with the
rule's message), and its Python twin runs in the model validator (the operator refuses the same objects
with the same message). Field names are snake_case in Python and camelCase on the wire (aliases).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from xorj.domain.trades import AttemptOutcome, TradeState

GROUP = "trading.xorj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "xorj"

# Base58 (Bitcoin alphabet: no 0, O, I, l). Solana public keys are 32 bytes (32..44 characters),
# transaction signatures 64 bytes (64..88 characters).
BASE58_PUBKEY_PATTERN = r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"
BASE58_SIGNATURE_PATTERN = r"^[1-9A-HJ-NP-Za-km-z]{64,88}$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
URL_PATTERN = r"^https?://[^\s]+$"

# The reference system's slippage defaults: 1% initial, absolute cap 5%, 3 attempts.
DEFAULT_INITIAL_BPS = 100
DEFAULT_STEP_BPS = 50
DEFAULT_CAP_BPS = 200
DEFAULT_ABSOLUTE_CAP_BPS = 500
DEFAULT_MAX_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class CelRule:
    """One validation rule, declared once and enforced twice (API server via CEL, operator via Python).

    ``check`` receives the model instance and returns True when the rule holds. Transition rules
    (those reading ``oldSelf``) have no Python twin: the operator never sees the old object.
    """

    rule: str
    message: str
    field_path: str | None = None
    check: Callable[[Any], bool] | None = None

    def to_openapi(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def _add_cel_rules(schema: dict[str, Any], model: type) -> None:
    rules: tuple[CelRule, ...] = getattr(model, "cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_openapi() for r in rules]


class KubeModel(BaseModel):
    """Base of every CR model: camelCase on the wire, unknown fields refused, CEL rules checked."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra=_add_cel_rules,
        use_enum_values=False,
    )
    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> KubeModel:
        for rule in self.cel_rules:
            if rule.check is not None and not rule.check(self):
                raise ValueError(rule.message)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON form the API server stores (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


Pubkey = Annotated[str, StringConstraints(pattern=BASE58_PUBKEY_PATTERN, max_length=44)]


def _pubkey(description: str) -> Any:
    return Field(pattern=BASE58_PUBKEY_PATTERN, max_length=44, description=description)


# --------------------------------------------------------------------------------------------------
# TradingStrategy


class Normalization(str, enum.Enum):
    FIXED = "fixed"
    COHORT = "cohort"


class TopNSelection(KubeModel):
    """Follow the best N traders by Trust Score, above a threshold."""

    count: int = Field(ge=1, le=100, description="How many traders to follow.")
    min_trust_score: float = Field(
        default=0.0, ge=0, le=100, description="Only traders scoring at least this (0..100)."
    )
    normalization: Normalization = Field(
        default=Normalization.FIXED, description="Trust Score normalisation: fixed or cohort."
    )


class VaultRef(KubeModel):
    """The follower's wallet: its public key, and the Secret holding its keypair (mounted as a file)."""

    public_key: str = _pubkey("The vault's public key (base58).")
    secret_name: str = Field(
        pattern=DNS_LABEL_PATTERN, max_length=253, description="Secret with the vault keypair."
    )
    secret_key: str = Field(
        default="keypair.json", max_length=253, description="Key inside the Secret (a JSON keypair)."
    )


class SizingMode(str, enum.Enum):
    FIXED = "fixed"
    PROPORTIONAL = "proportional"


class Sizing(KubeModel):
    """How large a mirrored trade is: a fixed amount, or a ratio of the lead trade."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.mode != 'fixed' || has(self.fixedAmount)",
            message="spec.sizing.fixedAmount is required when spec.sizing.mode is fixed",
            field_path=".fixedAmount",
            check=lambda s: s.mode != SizingMode.FIXED or s.fixed_amount is not None,
        ),
    )

    mode: SizingMode = Field(default=SizingMode.PROPORTIONAL, description="fixed or proportional.")
    fixed_amount: int | None = Field(
        default=None, gt=0, description="Input amount in base units (mode fixed); positive."
    )
    ratio: float = Field(
        default=1.0, gt=0, le=100, description="Multiple of the lead trade's input (mode proportional)."
    )


class RiskLimits(KubeModel):
    """Checked by the executor before any send; a refused trade is FAILED with RISK_LIMIT."""

    max_trade_notional_usd: float = Field(default=1000.0, gt=0, description="Per trade, in USD.")
    max_daily_volume_usd: float = Field(default=10000.0, gt=0, description="Per vault and day.")
    max_daily_trades: int = Field(default=100, gt=0, description="Per vault and day.")
    max_position_share: float = Field(
        default=0.5, gt=0, le=1, description="Largest share of the vault one position may take."
    )
    max_price_impact_bps: int = Field(default=100, gt=0, le=10000, description="1% = 100 bps.")


class SlippagePolicy(KubeModel):
    """Slippage starts at initialBps and rises by stepBps after each slippage failure, up to capBps."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.initialBps <= self.capBps",
            message="spec.slippage.initialBps must be <= spec.slippage.capBps",
            field_path=".initialBps",
            check=lambda s: s.initial_bps <= s.cap_bps,
        ),
        CelRule(
            rule="self.capBps <= self.absoluteCapBps",
            message="spec.slippage.capBps must be <= spec.slippage.absoluteCapBps",
            field_path=".capBps",
            check=lambda s: s.cap_bps <= s.absolute_cap_bps,
        ),
    )

    initial_bps: int = Field(default=DEFAULT_INITIAL_BPS, ge=1, le=DEFAULT_ABSOLUTE_CAP_BPS)
    step_bps: int = Field(default=DEFAULT_STEP_BPS, ge=1, le=DEFAULT_ABSOLUTE_CAP_BPS)
    cap_bps: int = Field(default=DEFAULT_CAP_BPS, ge=1, le=DEFAULT_ABSOLUTE_CAP_BPS)
    # 5% is the hard ceiling of the domain (xorj.domain.slippage): a policy may lower it, never raise it
    absolute_cap_bps: int = Field(default=DEFAULT_ABSOLUTE_CAP_BPS, ge=1, le=DEFAULT_ABSOLUTE_CAP_BPS)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=10)


class ExecutorSpec(KubeModel):
    """The executor Deployment: one process per pod, claiming this strategy's trades."""

    replicas: int = Field(default=1, ge=0, le=50)
    image: str = Field(default="xorj-operator:latest", min_length=1, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    concurrency: int = Field(default=4, ge=1, le=256, description="Trades in flight per executor.")
    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"},
        description="Container resource requests (quantities as strings).",
    )
    limits: dict[str, str] = Field(
        default_factory=lambda: {"memory": "256Mi"},
        description="Container resource limits (quantities as strings).",
    )


class Endpoints(KubeModel):
    rpc_url: str = Field(pattern=URL_PATTERN, max_length=2048, description="Solana JSON-RPC URL.")
    swap_api_url: str = Field(
        pattern=URL_PATTERN, max_length=2048, description="Jupiter-compatible swap API base URL."
    )


class TradingStrategySpec(KubeModel):
    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.traders) != has(self.topN)",
            message="set exactly one of spec.traders (explicit wallets) or spec.topN "
            "(the best N by Trust Score)",
            check=lambda s: (s.traders is not None) != (s.top_n is not None),
        ),
    )

    traders: list[Pubkey] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Explicit lead-trader wallets (base58); exclusive with topN.",
    )
    top_n: TopNSelection | None = Field(default=None, alias="topN")
    vault: VaultRef
    sizing: Sizing = Field(default_factory=Sizing)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    slippage: SlippagePolicy = Field(default_factory=SlippagePolicy)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    endpoints: Endpoints
    paused: bool = Field(default=False, description="Kill switch: scale executors to zero.")


class ConditionStatus(str, enum.Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(KubeModel):
    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class FollowedTrader(KubeModel):
    wallet: str
    trust_score: float | None = None
    status: str | None = Field(default=None, description="Eligibility status from scoring.")


class TradeCounts(KubeModel):
    pending: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0

    def summary(self) -> str:
        return f"{self.pending}/{self.submitted}/{self.confirmed}/{self.failed}"


class TradingStrategyStatus(KubeModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    executors: str = Field(default="0/0", description="ready/desired, for kubectl get.")
    followed_traders: list[FollowedTrader] = Field(default_factory=list)
    followed_trader_count: int = 0
    trades: TradeCounts = Field(default_factory=TradeCounts)
    trades_summary: str = Field(default="0/0/0/0", description="pending/submitted/confirmed/failed.")
    config_hash: str | None = None


class TradingStrategy(KubeModel):
    api_version: Literal["trading.xorj.io/v1alpha1"] = API_VERSION
    kind: Literal["TradingStrategy"] = "TradingStrategy"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TradingStrategySpec
    status: TradingStrategyStatus | None = None


# --------------------------------------------------------------------------------------------------
# CopyTrade


class CopyTradeSpec(KubeModel):
    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self == oldSelf",
            message="spec is immutable: a CopyTrade cannot change once created (create a new one)",
        ),
        CelRule(
            rule="self.amount > 0",
            message="spec.amount must be positive",
            field_path=".amount",
            check=lambda s: s.amount > 0,
        ),
        CelRule(
            rule="self.inputMint != self.outputMint",
            message="spec.outputMint must differ from spec.inputMint",
            field_path=".outputMint",
            check=lambda s: s.input_mint != s.output_mint,
        ),
    )

    strategy: str = Field(
        pattern=DNS_LABEL_PATTERN, max_length=253, description="TradingStrategy in this namespace."
    )
    lead_trader: str = _pubkey("The lead trader's wallet (base58).")
    lead_signature: str = Field(
        pattern=BASE58_SIGNATURE_PATTERN,
        max_length=88,
        description="The lead trade's transaction signature (base58); the idempotency key.",
    )
    input_mint: str = _pubkey("Mint sold (base58).")
    output_mint: str = _pubkey("Mint bought (base58).")
    amount: int = Field(
        gt=0,
        description="The lead trade's input amount in base units; positive. The follower's amount is "
        "sized from it by the strategy's spec.sizing.",
    )
    max_slippage_bps: int | None = Field(
        default=None, gt=0, le=10000, description="Upper bound on slippage for this trade."
    )
    notional_usd: float | None = Field(
        default=None,
        gt=0,
        description="USD value of the lead trade as the watcher saw it: informational. Executors "
        "compute every trade's notional from the chain and the price API; a stated value off by more "
        "than the tolerance raises an alert and is not used.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Delete this CopyTrade this long after it is terminal (the ledger keeps it).",
    )


class AttemptStatus(KubeModel):
    number: int
    signature: str | None = None
    slippage_bps: int | None = None
    outcome: AttemptOutcome
    reason: str | None = None
    created_at: datetime | None = None


class CopyTradeStatus(KubeModel):
    phase: TradeState | None = None
    trade_id: str | None = None
    admission: Literal["Admitted", "Duplicate"] | None = Field(
        default=None, description="Admitted: this CopyTrade made the trade; Duplicate: it existed."
    )
    admission_message: str | None = None
    attempts: list[AttemptStatus] = Field(default_factory=list)
    attempt_count: int = 0
    final_signature: str | None = None
    error_reason: str | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class CopyTrade(KubeModel):
    api_version: Literal["trading.xorj.io/v1alpha1"] = API_VERSION
    kind: Literal["CopyTrade"] = "CopyTrade"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: CopyTradeSpec
    status: CopyTradeStatus | None = None
