"""What a trade and a vault are worth in USD, from chain balances and a price source's prices.

Pure logic, no I/O: the executor reads balances and mint decimals from the chain and prices from the
price source, then asks here. Exact Decimal arithmetic (no float). Valuation fails closed: a trade
whose input (or non-cash output) has no usable price cannot be valued, and the risk gate refuses it;
a vault holding whose mint has no price counts as worth 0 (understating the vault only makes the
position-share limit stricter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from xorj.domain.risk import to_decimal
from xorj.errors import InvalidInputError

LAMPORTS_DECIMALS = 9
DEFAULT_NOTIONAL_TOLERANCE = Decimal("0.05")  # 5 %: a stated notional further off is recorded


def usd_value(amount: int, decimals: int, usd_price: Decimal) -> Decimal:
    """``amount`` base units (10^-decimals of a token) at ``usd_price`` USD per whole token, exactly."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidInputError(f"amount: must be a non-negative integer of base units, got {amount!r}")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 18:
        raise InvalidInputError(f"decimals: must be an integer in 0..18, got {decimals!r}")
    price = to_decimal("usd_price", usd_price)
    if price <= 0:
        raise InvalidInputError(f"usd_price: must be positive, got {price}")
    with localcontext(prec=80):  # base units up to 2^64 times any sane price stay exact
        return Decimal(amount).scaleb(-decimals) * price


@dataclass(frozen=True, slots=True)
class MintBalance:
    """What the vault holds of one mint: base units, the mint's decimals (from the chain) and its USD
    price per whole token (None when the price source has none)."""

    mint: str
    amount: int
    decimals: int
    usd_price: Decimal | None


@dataclass(frozen=True, slots=True)
class Valuation:
    notional_usd: Decimal  # the trade's input amount at the input's price
    vault_value_usd: Decimal  # native SOL + every priced token balance
    output_position_usd: Decimal | None  # None when the output is a cash mint (no position limit)
    unpriced_holdings: tuple[str, ...] = ()  # mints held but valued at 0 for want of a price


class ValuationError(InvalidInputError):
    """The trade cannot be valued (e.g. no price for its input): refuse it, never guess."""


def value_trade(
    *,
    amount: int,
    input_mint: MintBalance,
    output_mint: MintBalance,
    vault_lamports: int,
    sol_usd_price: Decimal | None,
    holdings: Iterable[MintBalance],
    cash_mints: Iterable[str] = (),
) -> Valuation:
    """Value the trade (``amount`` base units of ``input_mint``) and the vault it trades from.

    ``holdings`` are the vault's token balances (input and output mints included or not: they are
    merged by mint). Native SOL counts at ``sol_usd_price`` (none: 0).
    """
    if input_mint.usd_price is None:
        raise ValuationError(f"no USD price for the input mint {input_mint.mint}: the trade cannot be valued")
    cash = set(cash_mints)
    if output_mint.mint not in cash and output_mint.usd_price is None:
        raise ValuationError(f"no USD price for the output mint {output_mint.mint}: its position cannot be valued")
    notional = usd_value(amount, input_mint.decimals, input_mint.usd_price)
    by_mint: dict[str, MintBalance] = {h.mint: h for h in holdings}
    by_mint[input_mint.mint] = input_mint
    by_mint[output_mint.mint] = output_mint
    total = Decimal(0)
    unpriced = []
    if sol_usd_price is not None:
        total += usd_value(vault_lamports, LAMPORTS_DECIMALS, sol_usd_price)
    elif vault_lamports:
        unpriced.append("native SOL")
    for holding in by_mint.values():
        if holding.usd_price is None:
            if holding.amount:
                unpriced.append(holding.mint)
            continue
        total += usd_value(holding.amount, holding.decimals, holding.usd_price)
    position = None
    if output_mint.mint not in cash:
        assert output_mint.usd_price is not None
        position = usd_value(output_mint.amount, output_mint.decimals, output_mint.usd_price)
    return Valuation(notional, total, position, tuple(sorted(unpriced)))


def notional_disagreement(stated: Decimal | None, computed: Decimal,
                          tolerance: Decimal = DEFAULT_NOTIONAL_TOLERANCE) -> str | None:
    """A sentence when a stated notional (the CopyTrade's) is off the computed one by more than
    ``tolerance`` (a fraction of the computed value, at least one cent); None when they agree or
    nothing was stated. The computed notional is the one every limit uses either way."""
    if stated is None:
        return None
    stated = to_decimal("stated notional_usd", stated)
    allowed = max(abs(computed) * to_decimal("tolerance", tolerance), Decimal("0.01"))
    if abs(stated - computed) <= allowed:
        return None
    return (f"stated notional {stated:.6g} USD differs from the computed {computed:.6g} USD by more than "
            f"{to_decimal('tolerance', tolerance) * 100:.4g}%; the computed one is used")


def prices_needed(input_mint: str, output_mint: str, valued_mints: Iterable[str], sol_mint: str) -> list[str]:
    """Every mint a valuation needs a price for, each once, in a stable order."""
    return sorted({input_mint, output_mint, sol_mint, *valued_mints})


def decimals_agree(chain: Mapping[str, int], stated: Mapping[str, int | None]) -> list[str]:
    """Mints whose decimals, as the price source states them, differ from the chain's."""
    return sorted(m for m, d in stated.items() if d is not None and m in chain and chain[m] != d)


__all__ = [
    "DEFAULT_NOTIONAL_TOLERANCE",
    "LAMPORTS_DECIMALS",
    "MintBalance",
    "Valuation",
    "ValuationError",
    "decimals_agree",
    "notional_disagreement",
    "prices_needed",
    "usd_value",
    "value_trade",
]
