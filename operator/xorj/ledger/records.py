"""Typed values the ledger takes and returns besides the trade model itself (trades and attempts are
:class:`xorj.domain.trades.Trade` and :class:`~xorj.domain.trades.Attempt`, built from rows as is).
Plain frozen dataclasses: no I/O, no SQL.

Amounts are integers in the mint's base units (u64 fits: the columns are numeric(20,0)); notional
values are USD as :class:`~decimal.Decimal`. Timestamps are timezone-aware UTC datetimes taken from the
database clock, so every executor agrees on lease expiry whatever its own clock says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, TypeVar

from xorj.domain.trades import IdempotencyKey, ReasonCode, TradeState

_E = TypeVar("_E", bound=enum.Enum)


def _coerce(kind: type[_E], value: object) -> _E | None:
    """``value`` as the enum ``kind`` (a text column arrives as its value), None kept: records are built
    from rows as is (psycopg's class_row), and their enum fields are text in the database."""
    return None if value is None or isinstance(value, kind) else kind(value)


# The admission fields repeat the first fields of domain.trades.Trade on purpose: the intent is what a
# trade is admitted from, the Trade what the ledger holds. pylint's similarity check skips this class.
# pylint: disable=duplicate-code
@dataclass(frozen=True)
class TradeIntent:
    """A lead trader's swap, sized for one follower vault: what :meth:`Ledger.admit_trade` stores."""

    strategy: str
    vault: str
    lead_signature: str
    lead_trader: str
    input_mint: str
    output_mint: str
    amount: int  # input amount in base units; the ledger enforces > 0
    max_slippage_bps: int | None = None  # the CopyTrade's slippage bound, if it set one
    notional_usd: Decimal | None = None  # USD value at admission, for risk limits (daily volume)
    copytrade: str | None = None  # "namespace/name" of the CopyTrade resource mirroring this trade

    @property
    def key(self) -> IdempotencyKey:
        return IdempotencyKey(self.strategy, self.vault, self.lead_signature)
# pylint: enable=duplicate-code


@dataclass(frozen=True)
class AdmitResult:
    """Outcome of :meth:`Ledger.admit_trade`. ``created`` is False for a replay, which changed nothing."""

    trade_id: int
    created: bool
    existing_state: TradeState | None  # the state the trade already had, for a replay; None if created

    def describe(self) -> str:
        if self.created:
            return f"trade {self.trade_id} admitted (PENDING)"
        state = self.existing_state.value if self.existing_state else "?"
        return f"replay of trade {self.trade_id}: already admitted, state {state}; nothing changed"


@dataclass(frozen=True)
class TradingHalt:
    """The cluster-wide halt as the ledger holds it: while ``halted``, every executor refuses every
    trade (RISK_LIMIT kill_switch.global)."""

    halted: bool
    reason: str | None
    set_by: str | None
    set_at: datetime


class VaultActivity(NamedTuple):
    """A vault's trades counted against its daily limits since a time: approved by the risk gate (and
    not failed before any send) or sent. What daily volume / count risk limits compare against."""

    volume_usd: Decimal  # the notional each was approved at, else notional_usd (none counts as 0)
    trade_count: int


@dataclass(frozen=True)
class TradeEvent:
    """One row of the audit trail: a state change (from_state is None for admission)."""

    event_id: int
    trade_id: int
    from_state: TradeState | None
    to_state: TradeState
    reason: ReasonCode | None
    detail: str | None
    actor: str | None
    attempt_signature: str | None
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "from_state", _coerce(TradeState, self.from_state))
        object.__setattr__(self, "to_state", _coerce(TradeState, self.to_state))
        object.__setattr__(self, "reason", _coerce(ReasonCode, self.reason))


class AlertSeverity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class NewAlert:
    """An alert to put in the outbox (kind e.g. RPC_FAILURE, LEDGER_UNAVAILABLE, ONCHAIN_FAILURE,
    BREAKER_OPEN)."""

    kind: str
    severity: AlertSeverity
    message: str
    strategy: str | None = None
    trade_id: int | None = None


@dataclass(frozen=True)
class Alert:
    alert_id: int
    kind: str
    severity: AlertSeverity
    message: str
    strategy: str | None
    trade_id: int | None
    created_at: datetime
    delivered_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", _coerce(AlertSeverity, self.severity))


@dataclass(frozen=True)
class StoredTraderScore:
    """The latest Trust Score of one trader as the ledger stores it (one row per wallet; a recompute
    replaces it). Not :class:`xorj.domain.scoring.TraderScore`, the result of one scoring run."""

    wallet: str
    score: float  # 0..100, one decimal
    status: str  # ELIGIBLE or an ineligibility status (INSUFFICIENT_HISTORY, ...)
    rank: int | None = None
    sharpe: float | None = None
    roi_pct: float | None = None
    max_drawdown_pct: float | None = None
    trades: int | None = None
    normalization: str | None = None  # "fixed" or "cohort"
    computed_at: datetime | None = None  # None when writing: the database clock fills it


@dataclass(frozen=True)
class TradeNotification:
    """Payload of a NOTIFY on the ledger's trades channel: sent when a trade is admitted or changes state."""

    trade_id: int
    strategy: str
    state: TradeState
