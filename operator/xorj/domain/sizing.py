"""Sizing a follower trade from the lead trade it copies.

Pure logic, no I/O. Three modes:

- ``proportional``: the lead's amount scaled by vault value / lead portfolio value (a vault worth a
  tenth of the lead's portfolio trades a tenth of the lead's size);
- ``fixed_notional``: the same USD amount every trade;
- ``fixed_fraction``: a fixed share of the vault's value every trade.

Amounts are integer base units (10^-decimals of a token) and always rounded DOWN: a follower never
spends a base unit more than the rule allows, nor more than the vault holds. A size whose value is
below ``min_notional_usd`` is skipped (dust is not worth a fee), with the reason said.
Arithmetic is exact (fractions): no float, no rounding before the final floor.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from xorj.domain.risk import to_decimal
from xorj.errors import InvalidInputError

DEFAULT_MIN_NOTIONAL_USD = Decimal(1)
MAX_TOKEN_DECIMALS = 18  # SPL tokens use 0..9; 18 leaves room for bridged assets


class SizingMethod(str, enum.Enum):
    PROPORTIONAL = "proportional"
    FIXED_NOTIONAL = "fixed_notional"
    FIXED_FRACTION = "fixed_fraction"


def _int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name}: must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise InvalidInputError(f"{name}: must be {bound}, got {value}")
    return value


def _positive(name: str, value: object) -> Decimal:
    result = to_decimal(name, value)
    if result <= 0:
        raise InvalidInputError(f"{name}: must be positive, got {result}")
    return result


@dataclass(frozen=True, slots=True)
class SizingPolicy:
    mode: SizingMethod = SizingMethod.PROPORTIONAL
    fixed_notional_usd: Decimal | None = None  # required by fixed_notional
    fraction: Decimal | None = None  # required by fixed_fraction: share of the vault value, (0, 1]
    min_notional_usd: Decimal = DEFAULT_MIN_NOTIONAL_USD

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", SizingMethod(self.mode))
        except ValueError:
            names = ", ".join(m.value for m in SizingMethod)
            raise InvalidInputError(f"sizing.mode: must be one of {names}, got {self.mode!r}") from None
        minimum = to_decimal("sizing.min_notional_usd", self.min_notional_usd)
        if minimum < 0:
            raise InvalidInputError(f"sizing.min_notional_usd: must be >= 0, got {minimum}")
        object.__setattr__(self, "min_notional_usd", minimum)
        if self.mode is SizingMethod.FIXED_NOTIONAL:
            if self.fixed_notional_usd is None:
                raise InvalidInputError("sizing.fixed_notional_usd: required when mode is fixed_notional")
            object.__setattr__(
                self, "fixed_notional_usd", _positive("sizing.fixed_notional_usd", self.fixed_notional_usd)
            )
        elif self.fixed_notional_usd is not None:
            raise InvalidInputError(f"sizing.fixed_notional_usd: only used when mode is fixed_notional, not {self.mode.value}")
        if self.mode is SizingMethod.FIXED_FRACTION:
            if self.fraction is None:
                raise InvalidInputError("sizing.fraction: required when mode is fixed_fraction")
            fraction = to_decimal("sizing.fraction", self.fraction)
            if not (0 < fraction <= 1):
                raise InvalidInputError(f"sizing.fraction: must be in (0, 1], got {fraction}")
            object.__setattr__(self, "fraction", fraction)
        elif self.fraction is not None:
            raise InvalidInputError(f"sizing.fraction: only used when mode is fixed_fraction, not {self.mode.value}")


@dataclass(frozen=True, slots=True)
class SizingInput:
    """The lead trade and the follower vault, as the watcher knows them when it sizes.

    ``input_price_usd`` is the USD price of one whole input token. ``lead_portfolio_value_usd`` is
    needed by proportional sizing only. ``vault_input_balance`` (base units), when known, caps the size.
    """

    lead_amount_in: int
    input_decimals: int
    input_price_usd: Decimal
    vault_value_usd: Decimal
    lead_portfolio_value_usd: Decimal | None = None
    vault_input_balance: int | None = None

    def __post_init__(self) -> None:
        _int("lead_amount_in", self.lead_amount_in, minimum=1)
        _int("input_decimals", self.input_decimals, minimum=0, maximum=MAX_TOKEN_DECIMALS)
        object.__setattr__(self, "input_price_usd", _positive("input_price_usd", self.input_price_usd))
        vault = to_decimal("vault_value_usd", self.vault_value_usd)
        if vault < 0:
            raise InvalidInputError(f"vault_value_usd: must be >= 0, got {vault}")
        object.__setattr__(self, "vault_value_usd", vault)
        if self.lead_portfolio_value_usd is not None:
            object.__setattr__(
                self,
                "lead_portfolio_value_usd",
                _positive("lead_portfolio_value_usd", self.lead_portfolio_value_usd),
            )
        if self.vault_input_balance is not None:
            _int("vault_input_balance", self.vault_input_balance, minimum=0)


@dataclass(frozen=True, slots=True)
class SizedTrade:
    """The follower's size: ``amount_in`` base units worth ``notional_usd`` (rounded down to the
    cent), or ``skipped`` with ``amount_in == 0`` and ``reason`` saying why."""

    amount_in: int
    notional_usd: Decimal
    skipped: bool
    reason: str


def _value_usd(amount: int, price: Decimal, decimals: int) -> Fraction:
    return Fraction(amount) * Fraction(price) / Fraction(10**decimals)


def _cents_down(value: Fraction) -> Decimal:
    return Decimal(math.floor(value * 100)).scaleb(-2)


def size_follower_trade(policy: SizingPolicy, lead: SizingInput) -> SizedTrade:
    """Size the follower's trade for ``lead`` under ``policy`` (see the module doc)."""
    scale = 10**lead.input_decimals
    price = Fraction(lead.input_price_usd)
    if policy.mode is SizingMethod.PROPORTIONAL:
        if lead.lead_portfolio_value_usd is None:
            raise InvalidInputError("lead_portfolio_value_usd: required when sizing mode is proportional")
        ratio = Fraction(lead.vault_value_usd) / Fraction(lead.lead_portfolio_value_usd)
        exact = Fraction(lead.lead_amount_in) * ratio
        shown = Decimal(ratio.numerator) / Decimal(ratio.denominator)  # for the message only
        how = f"proportional: lead {lead.lead_amount_in} x vault/lead value ratio {shown:.6g}"
    elif policy.mode is SizingMethod.FIXED_NOTIONAL:
        assert policy.fixed_notional_usd is not None
        exact = Fraction(policy.fixed_notional_usd) * scale / price
        how = f"fixed notional {policy.fixed_notional_usd} USD"
    else:
        assert policy.fraction is not None
        exact = Fraction(policy.fraction) * Fraction(lead.vault_value_usd) * scale / price
        how = f"fixed fraction {policy.fraction} of vault value {lead.vault_value_usd} USD"
    amount = math.floor(exact)
    if lead.vault_input_balance is not None and amount > lead.vault_input_balance:
        amount = lead.vault_input_balance
        how += f", capped at the vault's balance {lead.vault_input_balance}"
    value = _value_usd(amount, lead.input_price_usd, lead.input_decimals)
    notional = _cents_down(value)
    if amount == 0:
        return SizedTrade(0, Decimal(0), True, f"size rounds down to 0 base units ({how})")
    if value < Fraction(policy.min_notional_usd):
        return SizedTrade(
            0,
            Decimal(0),
            True,
            f"below min_notional_usd: {notional} USD < {policy.min_notional_usd} USD ({how})",
        )
    return SizedTrade(amount, notional, False, how)


__all__ = [
    "DEFAULT_MIN_NOTIONAL_USD",
    "SizedTrade",
    "SizingInput",
    "SizingMethod",
    "SizingPolicy",
    "follower_amount",
    "size_follower_trade",
]


def follower_amount(lead_amount: int, *, fixed_amount: int | None = None, ratio: Decimal | None = None) -> int:
    """The follower's input amount (base units) under a TradingStrategy's ``spec.sizing``: exactly
    ``fixed_amount`` (mode fixed), else the lead's amount times ``ratio`` rounded down (mode
    proportional; ratio 1 copies the lead's size). 0 means the size rounds away: nothing to trade."""
    _int("lead_amount", lead_amount, minimum=1)
    if fixed_amount is not None:
        if ratio is not None:
            raise InvalidInputError("sizing: give fixed_amount or ratio, not both")
        return _int("sizing.fixed_amount", fixed_amount, minimum=1)
    factor = _positive("sizing.ratio", Decimal(1) if ratio is None else ratio)
    return math.floor(Fraction(lead_amount) * Fraction(factor))
