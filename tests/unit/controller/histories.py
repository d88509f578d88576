"""Lead traders' stored swaps as xorj.traders records them (ledger ``trader_swaps`` rows), made up for
the pool tests: round trips USDC -> BONK -> USDC, each sale realizing ``returns[i]`` of its cost."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from solders.signature import Signature

from xorj.domain.trader_history import USDC_MINT, ParsedSwap, SwapKind
from xorj.ledger.trader_swaps import StoredSwap

BONK = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
DAY = 86_400


def _signature(wallet: str, first: int, n: int) -> str:
    return str(Signature.from_bytes(hashlib.sha512(f"{wallet}/{first}/{n}".encode()).digest()))


def round_trips(wallet: str, returns: Sequence[float], *, first: int, last: int,
                stake_usd: int = 1_000) -> list[StoredSwap]:
    """A buy then a sell per return, spread evenly from unix time ``first`` to ``last``."""
    out: list[StoredSwap] = []
    step = (last - first) / max(len(returns) - 1, 1)
    for i, ret in enumerate(returns):
        at = int(first + i * step)
        proceeds = Decimal(stake_usd) * (1 + Decimal(str(ret)))
        for leg, (sold, sold_amount, bought, bought_amount, value, t) in enumerate((
                (USDC_MINT, stake_usd * 10**6, BONK, 10**9, Decimal(stake_usd), at),
                (BONK, 10**9, USDC_MINT, int(proceeds * 10**6), proceeds, at + 60))):
            swap = ParsedSwap(wallet=wallet, signature=_signature(wallet, first, 2 * i + leg), slot=1000 + t // 10,
                              block_time=t, kind=SwapKind.SWAP, sold_mint=sold, sold_amount=sold_amount,
                              sold_decimals=6 if sold == USDC_MINT else 5, bought_mint=bought,
                              bought_amount=bought_amount, bought_decimals=6 if bought == USDC_MINT else 5,
                              fee_lamports=5000)
            out.append(StoredSwap(swap, 0, value, datetime.fromtimestamp(t, UTC)))
    return out


def steady(n: int = 80) -> list[float]:
    return [0.02 if i % 3 else 0.005 for i in range(n)]


def reckless(n: int = 80) -> list[float]:
    return [0.3 if i % 2 else -0.25 for i in range(n)]


def losing(n: int = 80) -> list[float]:
    return [-0.01 if i % 3 else 0.004 for i in range(n)]
