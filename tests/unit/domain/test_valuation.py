"""Valuing a trade and its vault from chain balances and prices (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from xorj.domain.sizing import follower_amount
from xorj.domain.valuation import (
    MintBalance,
    ValuationError,
    decimals_agree,
    notional_disagreement,
    usd_value,
    value_trade,
)
from xorj.errors import InvalidInputError

USDC = MintBalance("usdc", 100_000 * 10**6, 6, Decimal(1))
SOL = MintBalance("sol", 2 * 10**9, 9, Decimal(150))


def test_usd_value_is_exact() -> None:
    assert usd_value(1, 6, Decimal("1")) == Decimal("0.000001")
    assert usd_value(2**64 - 1, 0, Decimal("1e6")) == Decimal(2**64 - 1) * 10**6
    with pytest.raises(InvalidInputError):
        usd_value(1, 6, Decimal(0))


def test_trade_and_vault_value() -> None:
    valuation = value_trade(amount=2_000 * 10**6, input_mint=USDC, output_mint=SOL, vault_lamports=10 * 10**9,
                            sol_usd_price=Decimal(150), holdings=[])
    assert valuation.notional_usd == Decimal(2000)
    assert valuation.vault_value_usd == Decimal(100_000) + Decimal(300) + Decimal(1500)
    assert valuation.output_position_usd == Decimal(300)


def test_cash_output_has_no_position_and_unpriced_holdings_count_zero() -> None:
    junk = MintBalance("junk", 10**12, 6, None)
    valuation = value_trade(amount=10**9, input_mint=SOL, output_mint=USDC, vault_lamports=5,
                            sol_usd_price=None, holdings=[junk], cash_mints=["usdc"])
    assert valuation.output_position_usd is None
    assert valuation.vault_value_usd == Decimal(100_000) + Decimal(300)
    assert valuation.unpriced_holdings == ("junk", "native SOL")


def test_no_price_for_the_input_or_a_non_cash_output_refuses() -> None:
    with pytest.raises(ValuationError, match="input"):
        value_trade(amount=1, input_mint=MintBalance("x", 1, 6, None), output_mint=SOL, vault_lamports=0,
                    sol_usd_price=None, holdings=[])
    with pytest.raises(ValuationError, match="output"):
        value_trade(amount=1, input_mint=USDC, output_mint=MintBalance("y", 0, 6, None), vault_lamports=0,
                    sol_usd_price=None, holdings=[])


def test_a_stated_notional_far_off_is_reported() -> None:
    assert notional_disagreement(None, Decimal(2000)) is None
    assert notional_disagreement(Decimal(2010), Decimal(2000)) is None
    assert "1e-300" in notional_disagreement(Decimal("1e-300"), Decimal(2000))
    assert notional_disagreement(Decimal(10**6), Decimal(2)) is not None


def test_decimals_disagreement() -> None:
    assert decimals_agree({"a": 6, "b": 9}, {"a": 6, "b": None}) == []
    assert decimals_agree({"a": 6}, {"a": 9}) == ["a"]


def test_follower_amount() -> None:
    assert follower_amount(1_000) == 1_000
    assert follower_amount(1_001, ratio=Decimal("0.5")) == 500
    assert follower_amount(7, fixed_amount=42) == 42
    with pytest.raises(InvalidInputError):
        follower_amount(0)
