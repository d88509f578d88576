"""Sizing a follower trade from the lead trade (examples and properties)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xorj.domain.sizing import SizingInput, SizingMethod, SizingPolicy, size_follower_trade
from xorj.errors import InvalidInputError

D = Decimal
SOL = dict(input_decimals=9, input_price_usd=D("150"))


def test_proportional_scales_by_vault_over_lead_portfolio() -> None:
    sized = size_follower_trade(
        SizingPolicy(),
        SizingInput(lead_amount_in=10 * 10**9, vault_value_usd=D("10000"), lead_portfolio_value_usd=D("100000"), **SOL),
    )
    assert not sized.skipped and sized.amount_in == 10**9 and sized.notional_usd == D("150.00")
    assert sized.reason.startswith("proportional")


def test_proportional_rounds_down_to_base_units() -> None:
    sized = size_follower_trade(
        SizingPolicy(min_notional_usd=D("0")),
        SizingInput(lead_amount_in=1_000_000_007, vault_value_usd=D("1"), lead_portfolio_value_usd=D("3"), **SOL),
    )
    assert sized.amount_in == 333_333_335  # floor(1_000_000_007 / 3) = 333_333_335.67 -> down


def test_fixed_notional_buys_the_same_usd_every_time() -> None:
    policy = SizingPolicy(SizingMethod.FIXED_NOTIONAL, fixed_notional_usd=D("25"))
    usdc = SizingInput(lead_amount_in=999, input_decimals=6, input_price_usd=D("1"), vault_value_usd=D("500"))
    assert size_follower_trade(policy, usdc).amount_in == 25_000_000
    sol = SizingInput(lead_amount_in=1, vault_value_usd=D("500"), **SOL)
    sized = size_follower_trade(policy, sol)
    assert sized.amount_in == 166_666_666 and sized.notional_usd == D("24.99")  # rounded down, never up


def test_fixed_fraction_is_a_share_of_the_vault() -> None:
    policy = SizingPolicy("fixed_fraction", fraction=D("0.02"))  # type: ignore[arg-type]
    sized = size_follower_trade(policy, SizingInput(lead_amount_in=1, vault_value_usd=D("7500"), **SOL))
    assert sized.amount_in == 10**9 and sized.notional_usd == D("150.00")


def test_the_vault_balance_caps_the_size() -> None:
    policy = SizingPolicy(SizingMethod.FIXED_NOTIONAL, fixed_notional_usd=D("300"))
    sized = size_follower_trade(policy, SizingInput(lead_amount_in=1, vault_value_usd=D("9000"), vault_input_balance=10**9, **SOL))
    assert sized.amount_in == 10**9 and "capped at the vault's balance" in sized.reason


def test_dust_is_skipped_with_the_reason() -> None:
    tiny = SizingInput(lead_amount_in=10**6, vault_value_usd=D("100"), lead_portfolio_value_usd=D("1000000"), **SOL)
    sized = size_follower_trade(SizingPolicy(), tiny)  # 100 lamports ~ 0.000015 USD
    assert sized.skipped and sized.amount_in == 0 and sized.notional_usd == 0
    assert sized.reason.startswith("below min_notional_usd: 0.00 USD < 1 USD")
    zero = SizingInput(lead_amount_in=1, vault_value_usd=D("1"), lead_portfolio_value_usd=D("10"), **SOL)
    assert size_follower_trade(SizingPolicy(), zero).reason.startswith("size rounds down to 0 base units")
    no_balance = SizingInput(lead_amount_in=10**9, vault_value_usd=D("100"), lead_portfolio_value_usd=D("100"),
                             vault_input_balance=0, **SOL)
    sized = size_follower_trade(SizingPolicy(), no_balance)
    assert sized.skipped and "capped at the vault's balance 0" in sized.reason


@pytest.mark.parametrize(
    ("policy_fields", "message"),
    [
        ({"mode": "martingale"}, "sizing.mode: must be one of proportional, fixed_notional, fixed_fraction"),
        ({"mode": SizingMethod.FIXED_NOTIONAL}, "sizing.fixed_notional_usd: required when mode is fixed_notional"),
        ({"mode": SizingMethod.FIXED_NOTIONAL, "fixed_notional_usd": D("-1")}, "sizing.fixed_notional_usd: must be positive"),
        ({"mode": SizingMethod.FIXED_FRACTION, "fraction": D("1.5")}, "sizing.fraction: must be in \\(0, 1\\]"),
        ({"mode": SizingMethod.FIXED_FRACTION}, "sizing.fraction: required when mode is fixed_fraction"),
        ({"fraction": D("0.1")}, "sizing.fraction: only used when mode is fixed_fraction"),
        ({"min_notional_usd": 0.5}, "sizing.min_notional_usd: must be a Decimal.*not float"),
    ],
)
def test_bad_policies_name_the_field(policy_fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SizingPolicy(**policy_fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lead_amount_in": 0}, "lead_amount_in: must be >= 1"),
        ({"input_decimals": 19}, "input_decimals: must be in 0..18"),
        ({"input_price_usd": D("0")}, "input_price_usd: must be positive"),
        ({"vault_value_usd": D("-1")}, "vault_value_usd: must be >= 0"),
        ({"vault_input_balance": -1}, "vault_input_balance: must be >= 0"),
    ],
)
def test_bad_inputs_name_the_field(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = dict(lead_amount_in=1, input_decimals=9, input_price_usd=D("1"), vault_value_usd=D("1"))
    with pytest.raises(InvalidInputError, match=message):
        SizingInput(**(base | fields))  # type: ignore[arg-type]


def test_proportional_needs_the_lead_portfolio_value() -> None:
    with pytest.raises(InvalidInputError, match="lead_portfolio_value_usd: required when sizing mode is proportional"):
        size_follower_trade(SizingPolicy(), SizingInput(lead_amount_in=1, vault_value_usd=D("1"), **SOL))


# --- properties ----------------------------------------------------------------------------------

money = st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2)


@settings(max_examples=500, deadline=None)
@given(
    lead=st.integers(min_value=1, max_value=10**15),
    decimals=st.integers(min_value=0, max_value=9),
    price=st.decimals(min_value=D("0.000001"), max_value=D("100000"), places=6),
    vault=money,
    lead_value=money,
    balance=st.none() | st.integers(min_value=0, max_value=10**15),
    minimum=st.decimals(min_value=D("0"), max_value=D("100"), places=2),
)
def test_proportional_size_is_the_floor_never_more(lead: int, decimals: int, price: Decimal, vault: Decimal,
                                                   lead_value: Decimal, balance: int | None, minimum: Decimal) -> None:
    sized = size_follower_trade(
        SizingPolicy(min_notional_usd=minimum),
        SizingInput(lead, decimals, price, vault, lead_value, balance),
    )
    exact = Fraction(lead) * Fraction(vault) / Fraction(lead_value)
    assert isinstance(sized.amount_in, int) and sized.amount_in >= 0
    assert sized.amount_in <= exact  # never rounded up
    if balance is not None:
        assert sized.amount_in <= balance
    if sized.skipped:
        assert sized.amount_in == 0 and sized.reason
    else:
        cap = min(exact, balance) if balance is not None else exact
        assert cap - 1 < sized.amount_in  # the floor, not less
        value = Fraction(sized.amount_in) * Fraction(price) / 10**decimals
        assert value >= Fraction(minimum)
        assert Fraction(sized.notional_usd) <= value < Fraction(sized.notional_usd) + Fraction(1, 100)


@settings(max_examples=300, deadline=None)
@given(notional=money, price=st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4),
       decimals=st.integers(min_value=0, max_value=9))
def test_fixed_notional_never_spends_more_than_the_notional(notional: Decimal, price: Decimal, decimals: int) -> None:
    sized = size_follower_trade(
        SizingPolicy(SizingMethod.FIXED_NOTIONAL, fixed_notional_usd=notional, min_notional_usd=D(0)),
        SizingInput(1, decimals, price, D("1")),
    )
    value = Fraction(sized.amount_in) * Fraction(price) / 10**decimals
    assert value <= Fraction(notional)
    # one more base unit would overspend
    assert Fraction(sized.amount_in + 1) * Fraction(price) / 10**decimals > Fraction(notional)
