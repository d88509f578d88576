"""Risk limits, kill switches and circuit breakers, checked before any send (docs/design.md invariant 5).

Pure logic, no I/O and no clocks: callers pass ``now`` and what the ledger knows (today's volume and
trade count for the vault, the breaker's recent outcomes). Money is :class:`~decimal.Decimal` USD,
never float. A refusal names the rule that refused, and the trade is then FAILED with RISK_LIMIT and
:attr:`RiskDecision.message` as its detail.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation, localcontext

from xorj.domain.trades import ReasonCode
from xorj.errors import InvalidInputError, XorjError

DEFAULT_MAX_TRADE_NOTIONAL_USD = Decimal(1000)
DEFAULT_MAX_DAILY_VOLUME_USD = Decimal(10000)
DEFAULT_MAX_DAILY_TRADES = 100
DEFAULT_MAX_POSITION_SHARE = Decimal("0.50")
DEFAULT_MAX_PRICE_IMPACT = Decimal("0.01")
# The circuit breaker's defaults (CircuitBreaker; spec.risk.circuitBreaker; the executor's XORJ_BREAKER_*)
DEFAULT_BREAKER_FAILURES_IN_WINDOW = 5
DEFAULT_BREAKER_WINDOW_SECONDS = 600
DEFAULT_BREAKER_FAILURES_IN_A_ROW = 3
DEFAULT_BREAKER_OPEN_SECONDS = 1800

_CENT = Decimal("0.01")


def to_decimal(name: str, value: object) -> Decimal:
    """``value`` as a finite Decimal. Floats are refused: a binary float is not an amount of money."""
    if isinstance(value, (bool, float)):
        raise InvalidInputError(
            f"{name}: must be a Decimal, an int or a decimal string, not {type(value).__name__} {value!r}"
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise InvalidInputError(f"{name}: not a decimal number: {value!r}") from None
    else:
        raise InvalidInputError(f"{name}: must be a Decimal, an int or a decimal string, got {value!r}")
    if not result.is_finite():
        raise InvalidInputError(f"{name}: must be a finite number, got {value!r}")
    return result


def _non_negative(name: str, value: object) -> Decimal:
    result = to_decimal(name, value)
    if result < 0:
        raise InvalidInputError(f"{name}: must be >= 0, got {result}")
    return result


def _usd(amount: Decimal) -> str:
    # A wide local context: quantize refuses results longer than the default 28 digits.
    with localcontext(prec=200):
        return f"{amount.quantize(_CENT)} USD"


def _pct(fraction: Decimal) -> str:
    with localcontext(prec=200):
        return f"{(fraction * 100).quantize(_CENT)}%"


class RiskRule(str, enum.Enum):
    """Every rule that can refuse a trade, in the order they are checked."""

    GLOBAL_KILL_SWITCH = "kill_switch.global"
    STRATEGY_PAUSED = "kill_switch.strategy_paused"
    VAULT_PAUSED = "kill_switch.vault_paused"
    CIRCUIT_BREAKER = "circuit_breaker"
    MAX_TRADE_NOTIONAL = "max_trade_notional"
    MAX_DAILY_TRADES = "max_daily_trades"
    MAX_DAILY_VOLUME = "max_daily_volume"
    MAX_POSITION_SHARE = "max_position_share"
    MAX_PRICE_IMPACT = "max_price_impact"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-strategy limits. Amounts accept Decimal, int or decimal strings (as in a CR spec)."""

    max_trade_notional_usd: Decimal = DEFAULT_MAX_TRADE_NOTIONAL_USD
    max_daily_volume_usd: Decimal = DEFAULT_MAX_DAILY_VOLUME_USD  # per vault, per UTC day
    max_daily_trades: int = DEFAULT_MAX_DAILY_TRADES  # per vault, per UTC day
    max_position_share: Decimal = DEFAULT_MAX_POSITION_SHARE  # of the vault's value, 0 < x <= 1
    max_price_impact: Decimal = DEFAULT_MAX_PRICE_IMPACT  # fraction of the quote, 0 < x <= 1

    def __post_init__(self) -> None:
        for name in ("max_trade_notional_usd", "max_daily_volume_usd"):
            value = to_decimal(f"risk.{name}", getattr(self, name))
            if value <= 0:
                raise InvalidInputError(f"risk.{name}: must be positive, got {value}")
            object.__setattr__(self, name, value)
        trades = self.max_daily_trades
        if isinstance(trades, bool) or not isinstance(trades, int) or trades <= 0:
            raise InvalidInputError(f"risk.max_daily_trades: must be a positive integer, got {trades!r}")
        for name in ("max_position_share", "max_price_impact"):
            value = to_decimal(f"risk.{name}", getattr(self, name))
            if not (0 < value <= 1):
                raise InvalidInputError(f"risk.{name}: must be a fraction in (0, 1], got {value}")
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Both switches stop every new send; trades already in flight are still followed to the end."""

    global_halt: bool = False
    strategy_paused: bool = False


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """What a vault has already traded today (UTC): counted by the ledger, passed in."""

    volume_usd: Decimal = Decimal(0)
    trade_count: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "volume_usd", _non_negative("usage.volume_usd", self.volume_usd))
        count = self.trade_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInputError(f"usage.trade_count: must be a non-negative integer, got {count!r}")


def utc_day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s UTC day: the start of the "daily" window of the limits."""
    if now.tzinfo is None:
        raise InvalidInputError(f"now: must be timezone-aware, got naive {now!r}")
    day = now.astimezone(UTC).date()
    return datetime.combine(day, time.min, tzinfo=UTC)


def daily_usage(trades: Iterable[tuple[datetime, Decimal]], now: datetime) -> DailyUsage:
    """Today's usage from (time, notional USD) of the vault's counted trades (times in today's UTC
    day and not after ``now``)."""
    start = utc_day_start(now)
    volume = Decimal(0)
    count = 0
    for at, notional in trades:
        if at.tzinfo is None:
            raise InvalidInputError(f"trade time: must be timezone-aware, got naive {at!r}")
        if start <= at <= now:
            volume += _non_negative("trade notional_usd", notional)
            count += 1
    return DailyUsage(volume, count)


@dataclass(frozen=True, slots=True)
class TradeRisk:
    """The facts about one proposed follower trade that the limits are checked against.

    ``output_position_usd`` is what the vault already holds of the output token; ``None`` when the
    output is the vault's cash asset (e.g. USDC), which is no position and has no share limit.
    ``price_impact`` is the quote's price impact as a fraction (0.012 = 1.2 %).
    """

    notional_usd: Decimal
    vault_value_usd: Decimal
    price_impact: Decimal = Decimal(0)
    output_position_usd: Decimal | None = Decimal(0)

    def __post_init__(self) -> None:
        notional = to_decimal("trade.notional_usd", self.notional_usd)
        if notional <= 0:
            raise InvalidInputError(f"trade.notional_usd: must be positive, got {notional}")
        object.__setattr__(self, "notional_usd", notional)
        object.__setattr__(self, "vault_value_usd", _non_negative("vault_value_usd", self.vault_value_usd))
        # Quotes report impact with either sign depending on direction; its size is what is limited.
        object.__setattr__(self, "price_impact", abs(to_decimal("price_impact", self.price_impact)))
        if self.output_position_usd is not None:
            object.__setattr__(
                self, "output_position_usd", _non_negative("output_position_usd", self.output_position_usd)
            )


@dataclass(frozen=True, slots=True)
class RiskDecision:
    allowed: bool
    rule: RiskRule | None
    message: str

    @property
    def reason(self) -> ReasonCode | None:
        """RISK_LIMIT for a refusal (the ledger's reason), None when allowed."""
        return None if self.allowed else ReasonCode.RISK_LIMIT


ALLOWED = RiskDecision(True, None, "within all risk limits")


def _refuse(rule: RiskRule, text: str) -> RiskDecision:
    return RiskDecision(False, rule, f"{rule.value}: {text}")


def globally_halted(why: str | None = None) -> RiskDecision:
    """The refusal of every trade while the cluster-wide halt is on."""
    return _refuse(RiskRule.GLOBAL_KILL_SWITCH, "all trading is halted" + (f" ({why})" if why else ""))


# The pure risk check of one trade with everything but its vault's usage today already bound.
RiskCheck = Callable[[DailyUsage], RiskDecision]


@dataclass(frozen=True, eq=False)
class DailyShare:
    """A trade's share of its vault's daily limits, still to be decided and counted: what is left of
    its risk check once every rule that needs no ledger passed. The ledger gives ``decide`` the
    vault's usage today and, if it allows the trade, counts it at ``notional_usd``, in the
    transaction that records the attempt it allows (so an allowed trade costs one ledger transaction
    before its send, and the halt is read as late as it can be). Compared by identity: each carries
    its own check."""

    notional_usd: Decimal
    decide: RiskCheck


class RiskRefusedError(XorjError):
    """The ledger refused a trade's daily share (``decision``, a refusal): nothing was recorded."""

    def __init__(self, decision: RiskDecision) -> None:
        super().__init__(decision.message)
        self.decision = decision


# ---------------------------------------------------------------------------------------------------
# One vault's own limits (a Vault object's spec.limits): only ever tighter than the strategy's
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VaultLimits:
    """Per-vault overrides of a strategy's limits; None keeps the strategy's. They are checked IN
    ADDITION to the strategy's limits (:func:`check_vault`), so an override can only tighten: a
    looser value is harmless, and the operator says so on the Vault (:func:`looser_than`)."""

    max_trade_notional_usd: Decimal | None = None
    max_daily_volume_usd: Decimal | None = None
    max_daily_trades: int | None = None
    paused: bool = False
    removed: bool = False

    def __post_init__(self) -> None:
        for name in ("max_trade_notional_usd", "max_daily_volume_usd"):
            raw = getattr(self, name)
            if raw is not None:
                value = to_decimal(f"vault.{name}", raw)
                if value <= 0:
                    raise InvalidInputError(f"vault.{name}: must be positive, got {value}")
                object.__setattr__(self, name, value)
        trades = self.max_daily_trades
        if trades is not None and (isinstance(trades, bool) or not isinstance(trades, int) or trades <= 0):
            raise InvalidInputError(f"vault.max_daily_trades: must be a positive integer, got {trades!r}")

    def looser_than(self, strategy: RiskLimits) -> list[str]:
        """The overrides that do not tighten ``strategy`` (camelCase field names, for the Vault's
        status): they have no effect, since the strategy's own limit is checked as well."""
        looser = []
        if self.max_trade_notional_usd is not None and self.max_trade_notional_usd > strategy.max_trade_notional_usd:
            looser.append("maxTradeNotionalUsd")
        if self.max_daily_volume_usd is not None and self.max_daily_volume_usd > strategy.max_daily_volume_usd:
            looser.append("maxDailyVolumeUsd")
        if self.max_daily_trades is not None and self.max_daily_trades > strategy.max_daily_trades:
            looser.append("maxDailyTrades")
        return looser


def check_vault(limits: VaultLimits, notional_usd: Decimal, usage: DailyUsage) -> RiskDecision:
    """The vault's own rules, after the strategy's allowed the trade: paused or removed vaults send
    nothing new; the overrides refuse with the same rules as the strategy's limits, naming the vault."""
    if limits.paused or limits.removed:
        return _refuse(RiskRule.VAULT_PAUSED, "the vault is " + ("removed" if limits.removed else "paused"))
    notional = to_decimal("trade.notional_usd", notional_usd)
    if limits.max_trade_notional_usd is not None and notional > limits.max_trade_notional_usd:
        return _refuse(RiskRule.MAX_TRADE_NOTIONAL,
                       f"{_usd(notional)} > the vault's limit {_usd(limits.max_trade_notional_usd)}")
    if limits.max_daily_trades is not None and usage.trade_count + 1 > limits.max_daily_trades:
        return _refuse(RiskRule.MAX_DAILY_TRADES,
                       f"{usage.trade_count + 1} trades today > the vault's limit {limits.max_daily_trades}")
    volume_after = usage.volume_usd + notional
    if limits.max_daily_volume_usd is not None and volume_after > limits.max_daily_volume_usd:
        return _refuse(RiskRule.MAX_DAILY_VOLUME,
                       f"{_usd(volume_after)} today ({_usd(usage.volume_usd)} + {_usd(notional)}) "
                       f"> the vault's limit {_usd(limits.max_daily_volume_usd)}")
    return ALLOWED


# ---------------------------------------------------------------------------------------------------
# Circuit breaker
# ---------------------------------------------------------------------------------------------------


class BreakerState(str, enum.Enum):
    CLOSED = "CLOSED"  # trades flow
    OPEN = "OPEN"  # every new trade is refused until the cool-down ends
    HALF_OPEN = "HALF_OPEN"  # cool-down over: the next outcome closes (success) or reopens (failure)


# Failures the breaker does not count: the system refused the trade itself (a risk limit, a cancel), so
# counting them would let an open breaker keep itself open.
UNCOUNTED_FAILURES = frozenset({ReasonCode.RISK_LIMIT, ReasonCode.CANCELLED})


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One counted outcome. Count sends that failed for the system's reasons (RPC, on-chain, ledger);
    never risk refusals, or an open breaker would keep itself open."""

    at: datetime
    success: bool


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    state: BreakerState
    opened_at: datetime | None = None  # when the current (or last) opening happened
    reopens_at: datetime | None = None  # when an OPEN breaker turns HALF_OPEN
    trip: str | None = None  # why it opened, e.g. "3 failures in a row"

    @property
    def allows_trades(self) -> bool:
        return self.state is not BreakerState.OPEN


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Opens on ``failures_in_window`` failures within ``window`` or ``failures_in_a_row`` consecutive
    failures; stays open for ``open_for``; then half-open until the next outcome: a success closes it
    (counts start afresh), a failure opens it again. A pure value: :meth:`status` replays events."""

    failures_in_window: int = DEFAULT_BREAKER_FAILURES_IN_WINDOW
    window: timedelta = timedelta(seconds=DEFAULT_BREAKER_WINDOW_SECONDS)
    failures_in_a_row: int = DEFAULT_BREAKER_FAILURES_IN_A_ROW
    open_for: timedelta = timedelta(seconds=DEFAULT_BREAKER_OPEN_SECONDS)

    def __post_init__(self) -> None:
        for name in ("failures_in_window", "failures_in_a_row"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInputError(f"breaker.{name}: must be a positive integer, got {value!r}")
        for name in ("window", "open_for"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise InvalidInputError(f"breaker.{name}: must be a positive duration, got {value!r}")

    def status(self, events: Iterable[BreakerEvent | tuple[datetime, bool]], now: datetime) -> BreakerStatus:
        """The breaker's state at ``now`` from its outcomes; events after ``now`` are not yet seen.

        Events are replayed in time order (ties keep their given order). Outcomes that arrive while
        the breaker is OPEN (in-flight trades finishing) change nothing.
        """
        if now.tzinfo is None:
            raise InvalidInputError(f"now: must be timezone-aware, got naive {now!r}")
        normalised: list[BreakerEvent] = []
        for event in events:
            if not isinstance(event, BreakerEvent):
                at, success = event
                event = BreakerEvent(at, bool(success))
            if event.at.tzinfo is None:
                raise InvalidInputError(f"breaker event at: must be timezone-aware, got naive {event.at!r}")
            if event.at <= now:
                normalised.append(event)
        normalised.sort(key=lambda e: e.at)

        state = BreakerState.CLOSED
        opened_at: datetime | None = None
        trip: str | None = None
        in_a_row = 0
        recent_failures: list[datetime] = []  # since the breaker last closed

        def open_at(at: datetime, why: str) -> None:
            nonlocal state, opened_at, trip, in_a_row, recent_failures
            state, opened_at, trip = BreakerState.OPEN, at, why
            in_a_row, recent_failures = 0, []

        for event in normalised:
            if state is BreakerState.OPEN:
                assert opened_at is not None
                if event.at < opened_at + self.open_for:
                    continue
                state = BreakerState.HALF_OPEN
            if state is BreakerState.HALF_OPEN:
                if event.success:
                    state, in_a_row, recent_failures = BreakerState.CLOSED, 0, []
                else:
                    open_at(event.at, "failure while half-open")
                continue
            # CLOSED
            if event.success:
                in_a_row = 0
                continue
            in_a_row += 1
            recent_failures = [t for t in recent_failures if t > event.at - self.window]
            recent_failures.append(event.at)
            if in_a_row >= self.failures_in_a_row:
                open_at(event.at, f"{in_a_row} failures in a row")
            elif len(recent_failures) >= self.failures_in_window:
                open_at(event.at, f"{len(recent_failures)} failures within {_duration(self.window)}")

        if state is BreakerState.OPEN:
            assert opened_at is not None
            reopens_at = opened_at + self.open_for
            if now >= reopens_at:
                return BreakerStatus(BreakerState.HALF_OPEN, opened_at, None, trip)
            return BreakerStatus(BreakerState.OPEN, opened_at, reopens_at, trip)
        if state is BreakerState.HALF_OPEN:
            return BreakerStatus(BreakerState.HALF_OPEN, opened_at, None, trip)
        return BreakerStatus(BreakerState.CLOSED, opened_at, None, trip)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# ---------------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------------


def check_trade(
    limits: RiskLimits,
    trade: TradeRisk,
    usage: DailyUsage = DailyUsage(),
    *,
    kill_switch: KillSwitch = KillSwitch(),
    breaker: BreakerStatus | None = None,
) -> RiskDecision:
    """Allow the trade or refuse it with the first rule it breaks (order: :class:`RiskRule`)."""
    if kill_switch.global_halt:
        return globally_halted()
    if kill_switch.strategy_paused:
        return _refuse(RiskRule.STRATEGY_PAUSED, "the strategy is paused")
    if breaker is not None and not breaker.allows_trades:
        until = f" until {breaker.reopens_at.isoformat()}" if breaker.reopens_at else ""
        return _refuse(RiskRule.CIRCUIT_BREAKER, f"open ({breaker.trip}){until}")

    notional = trade.notional_usd
    if notional > limits.max_trade_notional_usd:
        return _refuse(
            RiskRule.MAX_TRADE_NOTIONAL, f"{_usd(notional)} > limit {_usd(limits.max_trade_notional_usd)}"
        )
    if usage.trade_count + 1 > limits.max_daily_trades:
        return _refuse(
            RiskRule.MAX_DAILY_TRADES,
            f"{usage.trade_count + 1} trades today > limit {limits.max_daily_trades}",
        )
    volume_after = usage.volume_usd + notional
    if volume_after > limits.max_daily_volume_usd:
        return _refuse(
            RiskRule.MAX_DAILY_VOLUME,
            f"{_usd(volume_after)} today ({_usd(usage.volume_usd)} + {_usd(notional)}) "
            f"> limit {_usd(limits.max_daily_volume_usd)}",
        )
    if trade.output_position_usd is not None:
        position_after = trade.output_position_usd + notional
        if trade.vault_value_usd <= 0:
            return _refuse(RiskRule.MAX_POSITION_SHARE, "vault value is 0 USD: no position fits")
        share = position_after / trade.vault_value_usd
        if share > limits.max_position_share:
            return _refuse(
                RiskRule.MAX_POSITION_SHARE,
                f"{_pct(share)} of the vault ({_usd(position_after)} of {_usd(trade.vault_value_usd)}) "
                f"> limit {_pct(limits.max_position_share)}",
            )
    if trade.price_impact > limits.max_price_impact:
        return _refuse(
            RiskRule.MAX_PRICE_IMPACT, f"{_pct(trade.price_impact)} > limit {_pct(limits.max_price_impact)}"
        )
    return ALLOWED


__all__ = [
    "ALLOWED",
    "BreakerEvent",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreaker",
    "DailyUsage",
    "KillSwitch",
    "RiskDecision",
    "RiskLimits",
    "RiskRule",
    "TradeRisk",
    "VaultLimits",
    "check_trade",
    "check_vault",
    "daily_usage",
    "globally_halted",
    "to_decimal",
    "utc_day_start",
]
