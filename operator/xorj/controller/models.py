"""Pydantic models of the TradingStrategy, CopyTrade, Vault and TraderPool custom resources: the single source.

The CRD files in crds/ are generated from these models (``xorj crds``, :mod:`xorj.controller.crdgen`),
and the operator validates what it reads with the same models. Each cross-field rule is declared once
as a :class:`CelRule`: its CEL expression goes into the CRD (the API server refuses bad objects with the
rule's message), and its Python twin runs in the model validator (the operator refuses the same objects
with the same message). Field names are snake_case in Python and camelCase on the wire (aliases).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from solders.pubkey import Pubkey as SoldersPubkey

from xorj.domain import risk, scoring, slippage
from xorj.domain.scoring import Normalization
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
# A key inside a Secret, mounted as one file: Kubernetes' key charset, and no leading dot (no "." or
# "..", no hidden file).
SECRET_KEY_PATTERN = r"^[-_A-Za-z0-9][-._A-Za-z0-9]*$"
# A resource quantity as executors need it: a non-negative decimal with an optional SI or binary
# suffix ("100m", "0.5", "128Mi", "2Gi"). Stricter than Kubernetes' own grammar on purpose: no
# exponents, no signs.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
# Credentials in an endpoint URL: userinfo ("user:pass@") or a query parameter named like a key.
# They belong in a Secret (spec.endpoints.*ApiKeySecretRef), never in the CR.
URL_USERINFO_PATTERN = r"^[A-Za-z][-+.A-Za-z0-9]*://[^/?#]*@"
URL_TOKEN_QUERY_PATTERN = r"(?i)[?&][-_a-z]*(key|token|secret|password|auth)[-_a-z]*="



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


def _decodes_to_32_bytes(value: str) -> str:
    """CEL cannot decode base58, so the schema's pattern only bounds length and charset; the
    operator decodes the key (a 32..44 character string may still be 31 or 33 bytes)."""
    try:
        SoldersPubkey.from_string(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a public key: it must decode from base58 to exactly 32 bytes") from None
    return value


Pubkey = Annotated[
    str,
    StringConstraints(pattern=BASE58_PUBKEY_PATTERN, max_length=44),
    AfterValidator(_decodes_to_32_bytes),
]


def _pubkey(description: str) -> Any:
    return Field(description=description)


# --------------------------------------------------------------------------------------------------
# TradingStrategy


class TopNSelection(KubeModel):
    """Follow the best N traders by Trust Score, above a threshold."""

    count: int = Field(ge=1, le=100, description="How many traders to follow.")
    min_trust_score: float = Field(
        default=0.0, ge=0, le=100, description="Only traders scoring at least this (0..100)."
    )
    normalization: Normalization = Field(
        default=Normalization.FIXED,
        description="Trust Score normalisation: fixed or cohort (without pool; a pool ranks with its own).",
    )
    pool: str | None = Field(
        default=None, pattern=DNS_LABEL_PATTERN, max_length=253,
        description="TraderPool in this namespace whose ranking (its status.ranks) picks the traders. "
        "Without it: every wallet in the ledger's trader scores of this normalization.",
    )


class VaultRef(KubeModel):
    """The follower's wallet (immutable): public key, and the bound Secret holding its keypair."""

    # Immutable: trades are admitted for one vault; a strategy that changed its vault would hand the
    # old vault's trades to executors holding another key. Following another vault is a new strategy.

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self == oldSelf",
            message="spec.vault is immutable: create a new TradingStrategy to follow with another vault",
        ),
    )

    public_key: Pubkey = _pubkey("The vault's public key (base58, 32 bytes).")
    secret_name: str = Field(
        pattern=DNS_LABEL_PATTERN, max_length=253, description="Secret with the vault keypair."
    )
    secret_key: str = Field(
        default="keypair.json",
        pattern=SECRET_KEY_PATTERN,
        max_length=253,
        description="Key inside the Secret (a JSON keypair), mounted as a file of this name.",
    )


class SizingMode(str, enum.Enum):
    FIXED = "fixed"
    PROPORTIONAL = "proportional"
    FIXED_USD = "fixedUsd"
    VAULT_PERCENT = "vaultPercent"



def _required_for_mode(mode: SizingMode, field: str, attribute: str) -> CelRule:
    """spec.sizing.FIELD is required when spec.sizing.mode is MODE."""
    return CelRule(
        rule=f"self.mode != '{mode.value}' || has(self.{field})",
        message=f"spec.sizing.{field} is required when spec.sizing.mode is {mode.value}",
        field_path=f".{field}",
        check=lambda s: s.mode != mode or getattr(s, attribute) is not None,
    )

class Sizing(KubeModel):
    """How large a mirrored trade is. A buy: fixed (base units), proportional (ratio x the lead's
    size), fixedUsd (USD), vaultPercent (% of the vault's USD value), then bounded by minUsd/maxUsd.
    A sell copies the share of its position the leader sold, bounded by maxUsd."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        _required_for_mode(SizingMode.FIXED, "fixedAmount", "fixed_amount"),
        _required_for_mode(SizingMode.FIXED_USD, "fixedUsd", "fixed_usd"),
        _required_for_mode(SizingMode.VAULT_PERCENT, "vaultPercent", "vault_percent"),
        CelRule(
            rule="!has(self.minUsd) || !has(self.maxUsd) || self.minUsd <= self.maxUsd",
            message="spec.sizing.minUsd must be <= spec.sizing.maxUsd",
            field_path=".minUsd",
            check=lambda s: s.min_usd is None or s.max_usd is None or s.min_usd <= s.max_usd,
        ),
    )

    mode: SizingMode = Field(default=SizingMode.PROPORTIONAL,
                             description="fixed, proportional, fixedUsd or vaultPercent.")
    fixed_amount: int | None = Field(
        default=None, gt=0, description="Input amount in base units (mode fixed); positive."
    )
    ratio: float = Field(
        default=1.0, gt=0, le=100, description="Multiple of the lead trade's size (mode proportional)."
    )
    fixed_usd: float | None = Field(default=None, gt=0, le=1e9, description="USD per trade (mode fixedUsd).")
    vault_percent: float | None = Field(
        default=None, gt=0, le=100, description="Percent of the vault's USD value per trade (mode vaultPercent)."
    )
    min_usd: float | None = Field(default=None, gt=0, le=1e9, description="A buy is raised to at least this (USD).")
    max_usd: float | None = Field(default=None, gt=0, le=1e9, description="Any trade is capped at this (USD).")


class SignalFilters(KubeModel):
    """Which lead swaps the watcher copies; a skipped one is recorded with its reason (ledger row,
    metric, Event), never dropped silently."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!has(self.allowMints) || !has(self.denyMints) || self.allowMints.all(m, !(m in self.denyMints))",
            message="spec.filters.allowMints and spec.filters.denyMints must not share a mint",
            field_path=".allowMints",
            check=lambda s: s.allow_mints is None or s.deny_mints is None
            or not set(s.allow_mints) & set(s.deny_mints),
        ),
    )

    min_notional_usd: float = Field(default=1.0, ge=0, le=1e9,
                                    description="Skip a follower trade worth less than this (USD).")
    allow_mints: list[Pubkey] | None = Field(
        default=None, min_length=1, max_length=100,
        description="Copy only swaps whose both mints are listed.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    deny_mints: list[Pubkey] | None = Field(
        default=None, min_length=1, max_length=100, description="Never copy a swap touching these mints.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    max_signal_age_seconds: int = Field(
        default=120, ge=1, le=86_400, description="Skip a lead swap whose block is older than this."
    )


# Money and shares are Decimals from the API server on: read from a JSON number (or a decimal string),
# never kept as a float. The CRD keeps ``type: number`` (existing manifests write numbers), and the
# API form (to_wire, the schema's default) stays a number.
_AS_JSON_NUMBER = PlainSerializer(float, return_type=float, when_used="json")
PositiveDecimal = Annotated[
    Decimal, Field(gt=0), _AS_JSON_NUMBER, WithJsonSchema({"exclusiveMinimum": 0, "type": "number"})
]
FractionDecimal = Annotated[
    Decimal, Field(gt=0, le=1), _AS_JSON_NUMBER,
    WithJsonSchema({"exclusiveMinimum": 0, "maximum": 1, "type": "number"}),
]


def _decimal_default(value: Decimal, description: str) -> Any:
    """A Decimal field's default, written into the CRD as the number it is (pydantic writes a string)."""
    return Field(default=value, description=description, json_schema_extra={"default": float(value)})


class CircuitBreakerSpec(KubeModel):
    """Refuses new trades (RISK_LIMIT) once failuresInARow fail in a row or failuresInWindow fail within windowSeconds; stays open openSeconds."""  # noqa: E501

    # spec.risk.circuitBreaker. Defaults are the domain's (xorj.domain.risk.CircuitBreaker).
    failures_in_a_row: int = Field(default=risk.DEFAULT_BREAKER_FAILURES_IN_A_ROW, ge=1, le=1000)
    failures_in_window: int = Field(default=risk.DEFAULT_BREAKER_FAILURES_IN_WINDOW, ge=1, le=100000)
    window_seconds: int = Field(default=risk.DEFAULT_BREAKER_WINDOW_SECONDS, ge=1, le=86400)
    open_seconds: int = Field(default=risk.DEFAULT_BREAKER_OPEN_SECONDS, ge=1, le=86400)

    def to_domain(self) -> risk.CircuitBreaker:
        return risk.CircuitBreaker(
            failures_in_window=self.failures_in_window, window=timedelta(seconds=self.window_seconds),
            failures_in_a_row=self.failures_in_a_row, open_for=timedelta(seconds=self.open_seconds),
        )


class RiskLimitsSpec(KubeModel):
    """Checked by the executor before any send; a refused trade is FAILED with RISK_LIMIT."""

    # spec.risk. Defaults are the domain's (xorj.domain.risk.RiskLimits); the bounds are checked by
    # the schema and again by to_domain().
    max_trade_notional_usd: PositiveDecimal = _decimal_default(risk.DEFAULT_MAX_TRADE_NOTIONAL_USD,
                                                               "Per trade, in USD.")
    max_daily_volume_usd: PositiveDecimal = _decimal_default(risk.DEFAULT_MAX_DAILY_VOLUME_USD, "Per vault and day.")
    max_daily_trades: int = Field(default=risk.DEFAULT_MAX_DAILY_TRADES, gt=0, description="Per vault and day.")
    max_position_share: FractionDecimal = _decimal_default(risk.DEFAULT_MAX_POSITION_SHARE,
                                                           "Largest share of the vault one position may take.")
    max_price_impact_bps: int = Field(
        default=int(risk.DEFAULT_MAX_PRICE_IMPACT * 10_000), gt=0, le=10000, description="1% = 100 bps."
    )
    circuit_breaker: CircuitBreakerSpec = Field(default_factory=CircuitBreakerSpec)

    def to_domain(self) -> risk.RiskLimits:
        return risk.RiskLimits(
            max_trade_notional_usd=self.max_trade_notional_usd,
            max_daily_volume_usd=self.max_daily_volume_usd,
            max_daily_trades=self.max_daily_trades,
            max_position_share=self.max_position_share,
            max_price_impact=Decimal(self.max_price_impact_bps) / 10_000,
        )


class SlippageSpec(KubeModel):
    """Slippage starts at initialBps and rises by stepBps after each slippage failure, up to capBps."""

    # spec.slippage. Defaults are the domain's (xorj.domain.slippage.SlippagePolicy).

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

    initial_bps: int = Field(default=slippage.DEFAULT_INITIAL_BPS, ge=1, le=slippage.ABSOLUTE_CAP_BPS)
    step_bps: int = Field(default=slippage.DEFAULT_STEP_BPS, ge=1, le=slippage.ABSOLUTE_CAP_BPS)
    cap_bps: int = Field(default=slippage.DEFAULT_CAP_BPS, ge=1, le=slippage.ABSOLUTE_CAP_BPS)
    # 5% is the hard ceiling of the domain (xorj.domain.slippage): a policy may lower it, never raise it
    absolute_cap_bps: int = Field(default=slippage.ABSOLUTE_CAP_BPS, ge=1, le=slippage.ABSOLUTE_CAP_BPS)
    max_attempts: int = Field(default=slippage.DEFAULT_MAX_ATTEMPTS, ge=1, le=10)

    def to_domain(self) -> slippage.SlippagePolicy:
        return slippage.SlippagePolicy(initial_bps=self.initial_bps, step_bps=self.step_bps, cap_bps=self.cap_bps,
                                       max_attempts=self.max_attempts, absolute_cap_bps=self.absolute_cap_bps)


Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]

_IMAGE_FROM_OPERATOR = (
    "the executor image comes from the operator's settings (chart value executor.image), "
    "not from a TradingStrategy"
)


class ExecutorSpec(KubeModel):
    """The executor Deployment (its image comes from the operator's settings)."""

    # The image is NOT chosen here: whoever may create a TradingStrategy would otherwise choose the
    # code that holds the vault key. image/imagePullPolicy stay in the schema only so that the API
    # server refuses them with a clear message (an unknown field would be pruned silently); the
    # operator ignores a value stored before this rule existed (desired.py never reads them).

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(rule="!has(self.image)", message=f"spec.executor.image is not allowed: {_IMAGE_FROM_OPERATOR}",
                field_path=".image"),
        CelRule(rule="!has(self.imagePullPolicy)",
                message=f"spec.executor.imagePullPolicy is not allowed: {_IMAGE_FROM_OPERATOR}",
                field_path=".imagePullPolicy"),
    )

    replicas: int = Field(default=1, ge=0, le=50)
    image: str | None = Field(default=None, max_length=512, description=f"Refused: {_IMAGE_FROM_OPERATOR}.")
    image_pull_policy: str | None = Field(default=None, max_length=32, description="Refused (see image).")
    concurrency: int = Field(default=4, ge=1, le=256, description="Trades in flight per executor.")
    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"},
        max_length=8,
        description="Container resource requests (quantities such as 100m, 0.5, 128Mi).",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=lambda: {"memory": "256Mi"},
        max_length=8,
        description="Container resource limits (quantities such as 500m, 1, 256Mi).",
    )


class SecretKeyRef(KubeModel):
    """A key of a bound Secret in this namespace, given to executors as an environment variable."""

    # Never copied into the ConfigMap, status or an Event. The binding is required as for the vault:
    # otherwise a strategy could send any Secret of its namespace to an endpoint of its choosing.

    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=253, description="Secret name.")
    key: str = Field(pattern=SECRET_KEY_PATTERN, max_length=253, description="Key inside the Secret.")


class RpcApiKeyRef(SecretKeyRef):
    query_parameter: str = Field(
        default="api-key",
        pattern=r"^[-_A-Za-z0-9]+$",
        max_length=64,
        description="The executor adds the key to the RPC URL as this query parameter.",
    )


def _url_rules(field: str, camel: str, ref: str) -> tuple[CelRule, ...]:

    return (
        CelRule(
            rule=f"!self.{camel}.matches('{URL_USERINFO_PATTERN}')",
            message=f"spec.endpoints.{camel} must not carry credentials (user:password@): "
            f"give them as spec.endpoints.{ref}",
            field_path=f".{camel}",
            check=lambda s: re.search(URL_USERINFO_PATTERN, getattr(s, field)) is None,
        ),
        CelRule(
            rule=f"!self.{camel}.matches('{URL_TOKEN_QUERY_PATTERN}')",
            message=f"spec.endpoints.{camel} must not carry an API key or token in its query: "
            f"give it as spec.endpoints.{ref}",
            field_path=f".{camel}",
            check=lambda s: re.search(URL_TOKEN_QUERY_PATTERN, getattr(s, field)) is None,
        ),
    )


class Endpoints(KubeModel):
    """Where executors send requests (https; credentials only by Secret reference)."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = _url_rules("rpc_url", "rpcUrl", "rpcApiKeySecretRef") + _url_rules(
        "swap_api_url", "swapApiUrl", "swapApiKeySecretRef"
    )

    rpc_url: str = Field(pattern=URL_PATTERN, max_length=2048, description="Solana JSON-RPC URL.")
    swap_api_url: str = Field(
        pattern=URL_PATTERN, max_length=2048, description="Jupiter-compatible swap API base URL."
    )
    rpc_api_key_secret_ref: RpcApiKeyRef | None = Field(
        default=None, description="RPC API key from a Secret, added to the RPC URL as a query parameter."
    )
    swap_api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Swap API key from a Secret, sent as the x-api-key header."
    )


class TradingStrategySpec(KubeModel):
    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.traders) != has(self.topN)",
            message="set exactly one of spec.traders (explicit wallets) or spec.topN "
            "(the best N by Trust Score)",
            check=lambda s: (s.traders is not None) != (s.top_n is not None),
        ),
        CelRule(
            rule="!has(self.executor) || !has(self.executor.replicas) || self.executor.replicas > 0"
            " || (has(self.paused) && self.paused)",
            message="spec.executor.replicas may be 0 only with spec.paused: true "
            "(to stop executors, pause the strategy)",
            field_path=".executor.replicas",
            check=lambda s: s.executor.replicas > 0 or s.paused,
        ),
    )

    traders: list[Pubkey] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Explicit lead-trader wallets (base58), each at most once; exclusive with topN.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    top_n: TopNSelection | None = Field(default=None, alias="topN")
    vault: VaultRef
    sizing: Sizing = Field(default_factory=Sizing)
    filters: SignalFilters = Field(default_factory=SignalFilters)
    risk: RiskLimitsSpec = Field(default_factory=RiskLimitsSpec)
    slippage: SlippageSpec = Field(default_factory=SlippageSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    endpoints: Endpoints
    paused: bool = Field(default=False, description="Kill switch: scale executors to zero.")

    @field_validator("traders")
    @classmethod
    def _traders_unique(cls, traders: list[str] | None) -> list[str] | None:
        if traders is not None:
            seen: set[str] = set()
            for wallet in traders:
                if wallet in seen:
                    raise ValueError(f"spec.traders is a set: {wallet} is listed twice")
                seen.add(wallet)
        return traders

    def referenced_secrets(self) -> dict[str, str]:
        """Every Secret the executors would read, name -> what it is for (each must be bound)."""
        out = {self.vault.secret_name: "vault keypair (spec.vault.secretName)"}
        if self.endpoints.rpc_api_key_secret_ref is not None:
            out.setdefault(self.endpoints.rpc_api_key_secret_ref.name,
                           "RPC API key (spec.endpoints.rpcApiKeySecretRef)")
        if self.endpoints.swap_api_key_secret_ref is not None:
            out.setdefault(self.endpoints.swap_api_key_secret_ref.name,
                           "swap API key (spec.endpoints.swapApiKeySecretRef)")
        return out


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
    vault_count: int = Field(default=1, description="Active vaults a lead swap fans out to (spec.vault and Vaults).")
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
    lead_trader: Pubkey = _pubkey("The lead trader's wallet (base58).")
    lead_signature: str = Field(
        pattern=BASE58_SIGNATURE_PATTERN,
        max_length=88,
        description="The lead trade's transaction signature (base58); the idempotency key.",
    )
    input_mint: Pubkey = _pubkey("Mint sold (base58).")
    output_mint: Pubkey = _pubkey("Mint bought (base58).")
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
        description="Delete this CopyTrade this long after it is terminal (status.finishedAt; for a many-vault "
        "CopyTrade, when the last of its vaults' trades finished). The ledger keeps the trades.",
    )


class AttemptStatus(KubeModel):
    number: int
    signature: str | None = None
    slippage_bps: int | None = None
    outcome: AttemptOutcome
    reason: str | None = None
    created_at: datetime | None = None


class VaultTradeCounts(KubeModel):
    """A many-vault CopyTrade's trades (one per vault) per state; the per-vault detail is in the ledger."""

    total: int = 0
    pending: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0
    summary: str = Field(default="", description="confirmed/total, for kubectl get.")


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
    vaults: VaultTradeCounts | None = Field(
        default=None, description="Set when the strategy fans out to more than one vault: its trades per state. "
        "phase is then the aggregate (docs/design.md \"Vaults\").")


class CopyTrade(KubeModel):
    api_version: Literal["trading.xorj.io/v1alpha1"] = API_VERSION
    kind: Literal["CopyTrade"] = "CopyTrade"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: CopyTradeSpec
    status: CopyTradeStatus | None = None


# --------------------------------------------------------------------------------------------------
# Vault: one more follower vault of a TradingStrategy (besides its own spec.vault)


# A positive money amount for an optional override: a Decimal read from a JSON number, as above.
OptionalPositiveDecimal = Annotated[
    Decimal | None, Field(default=None, gt=0, le=Decimal(10) ** 12), _AS_JSON_NUMBER,
    WithJsonSchema({"exclusiveMinimum": 0, "maximum": 1e12, "type": "number"}),
]


class VaultLimitsSpec(KubeModel):
    """Overrides of the strategy's spec.risk for this vault. Checked in addition to the strategy's
    limits, so they only ever tighten them (a looser value has no effect; the Vault's Ready condition
    says so)."""

    max_trade_notional_usd: OptionalPositiveDecimal = Field(default=None, description="Per trade, in USD.")
    max_daily_volume_usd: OptionalPositiveDecimal = Field(default=None, description="Per UTC day, in USD.")
    max_daily_trades: int | None = Field(default=None, gt=0, le=1_000_000, description="Per UTC day.")

    def to_domain(self, *, paused: bool) -> risk.VaultLimits:
        return risk.VaultLimits(max_trade_notional_usd=self.max_trade_notional_usd,
                                max_daily_volume_usd=self.max_daily_volume_usd,
                                max_daily_trades=self.max_daily_trades, paused=paused)


class VaultSpec(KubeModel):
    """A follower vault of a TradingStrategy in this namespace: its key, the bound Secret holding the
    keypair, its own limits and a pause switch."""

    # strategy and publicKey are immutable for the reason spec.vault is: trades are admitted for a
    # (strategy, vault) pair, and changing either would hand them to another key or another strategy.
    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(rule="self.strategy == oldSelf.strategy",
                message="spec.strategy is immutable: create a new Vault to follow another strategy",
                field_path=".strategy"),
        CelRule(rule="self.publicKey == oldSelf.publicKey",
                message="spec.publicKey is immutable: create a new Vault for another key",
                field_path=".publicKey"),
    )

    strategy: str = Field(pattern=DNS_LABEL_PATTERN, max_length=253,
                          description="TradingStrategy in this namespace that this vault follows (immutable).")
    public_key: Pubkey = _pubkey("The vault's public key (base58, 32 bytes; immutable).")
    secret_name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=253,
                             description="Secret with the vault keypair, bound to the strategy like spec.vault's.")
    secret_key: str = Field(default="keypair.json", pattern=SECRET_KEY_PATTERN, max_length=253,
                            description="Key inside the Secret (a JSON keypair).")
    limits: VaultLimitsSpec = Field(default_factory=VaultLimitsSpec)
    paused: bool = Field(default=False,
                         description="No new trades for this vault (its pending ones are refused by the risk gate).")


class VaultStatus(KubeModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Vault(KubeModel):
    api_version: Literal["trading.xorj.io/v1alpha1"] = API_VERSION
    kind: Literal["Vault"] = "Vault"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: VaultSpec
    status: VaultStatus | None = None


# --------------------------------------------------------------------------------------------------
# TraderPool


class WindowEnd(str, enum.Enum):
    """Where the scoring window ends."""

    # Now: a trader who went quiet ages out of the window. LatestTrade: the window ends at the pool's
    # newest stored trade (the Trust Score's own default), so a backdated or paused history still scores.
    NOW = "Now"
    LATEST_TRADE = "LatestTrade"


class ScoringWindow(KubeModel):
    """The Trust Score's rolling window: days long, ending at endsAt."""

    days: int = Field(default=scoring.WINDOW_DAYS, ge=1, le=365,
                      description="Window length in days (the Trust Score's is 90).")
    ends_at: WindowEnd = Field(default=WindowEnd.NOW, description="Now or LatestTrade (the pool's newest trade).")


class WalletConfigMapSelector(KubeModel):
    """ConfigMaps in the pool's namespace, chosen by labels, each listing wallets under one key."""

    match_labels: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(
        min_length=1, max_length=16, description="Labels every selected ConfigMap carries (at least one)."
    )
    key: str = Field(
        default="wallets", pattern=SECRET_KEY_PATTERN, max_length=253,
        description="Key inside each ConfigMap: base58 wallets, one per line or separated by spaces/commas.",
    )


class TraderPoolSpec(KubeModel):
    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.wallets) != has(self.walletConfigMaps)",
            message="set exactly one of spec.wallets (listed wallets) or spec.walletConfigMaps "
            "(ConfigMaps selected by label)",
            check=lambda s: (s.wallets is not None) != (s.wallet_config_maps is not None),
        ),
    )

    wallets: list[Pubkey] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Candidate lead-trader wallets (base58), each at most once; exclusive with walletConfigMaps.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    wallet_config_maps: WalletConfigMapSelector | None = Field(
        default=None, description="ConfigMaps listing the candidates (for pools too large for the spec)."
    )
    window: ScoringWindow = Field(default_factory=ScoringWindow)
    normalization: Normalization = Field(
        default=Normalization.FIXED, description="Trust Score normalisation: fixed or cohort (across the pool)."
    )
    ranks_shown: int = Field(default=10, ge=1, le=100, description="How many top ranks the status lists.")

    @field_validator("wallets")
    @classmethod
    def _wallets_unique(cls, wallets: list[str] | None) -> list[str] | None:
        if wallets is not None:
            seen: set[str] = set()
            for wallet in wallets:
                if wallet in seen:
                    raise ValueError(f"spec.wallets is a set: {wallet} is listed twice")
                seen.add(wallet)
        return wallets


class RankedTrader(KubeModel):
    rank: int = Field(ge=1)
    wallet: str
    score: float = Field(description="Trust Score, 0..100.")
    status: str = Field(description="ELIGIBLE or why not (INSUFFICIENT_HISTORY, ...).")


class TraderPoolStatus(KubeModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    candidates: int = Field(default=0, description="Wallets in the pool.")
    eligible: int = Field(default=0, description="Candidates eligible for the Trust Score.")
    ineligible: int = Field(default=0, description="Candidates not eligible (any reason).")
    ranks: list[RankedTrader] = Field(default_factory=list, description="The best ranks, best first.")
    top_trader: str | None = Field(default=None, description="Rank 1, for kubectl get.")
    top_score: float | None = Field(default=None, description="Rank 1's score, for kubectl get.")
    window_start: datetime | None = None
    window_end: datetime | None = None
    last_scored: datetime | None = None


class TraderPool(KubeModel):
    api_version: Literal["trading.xorj.io/v1alpha1"] = API_VERSION
    kind: Literal["TraderPool"] = "TraderPool"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TraderPoolSpec
    status: TraderPoolStatus | None = None
