"""A lead trader's swaps from the chain, and the realized profit of each. Pure, typed, no I/O.

Two steps, both deterministic functions of what the chain recorded:

1. :func:`parse_swap` reads ONE landed transaction (:class:`LandedTransaction`, built from a
   ``getTransaction`` answer by :func:`landed_from_rpc_json`) and says what it did to ``wallet``:

   * a failed transaction (``meta.err`` set) is :attr:`SwapKind.FAILED`: it moved nothing but the fee;
   * otherwise the wallet's balance change per mint is the sum, over the token accounts whose
     ``owner`` is the wallet in ``meta.preTokenBalances``/``postTokenBalances``, of post - pre (an
     account missing on one side counts 0 there: created or closed in the transaction);
   * SOL is native lamports and wrapped SOL together: the lamport change of the wallet's own account,
     plus the lamport change of every token account it owns (a WSOL account's lamports ARE its
     balance plus rent; rent moved into or out of the wallet's token accounts is still the wallet's),
     plus the fee when the wallet paid it (the fee is added back: it is a cost of sending, not a leg);
     WSOL's token amount is therefore not counted a second time;
   * exactly one mint down and one up is a swap between them (SOL then only carried overhead:
     tips, and is kept in ``sol_overhead_lamports``); one token mint moving one way and SOL the other
     is a swap with SOL as a leg;
   * anything else is :attr:`SwapKind.NOT_A_SWAP` with the reason, never a guess: a transaction the
     wallet did not sign (an airdrop, someone else's transfer), no change, one side only (a transfer),
     more than two mints moving (a liquidity operation, a multi-leg transaction).

2. :func:`realize_fifo` walks a wallet's priced swaps oldest first and keeps, per (wallet, mint), a
   FIFO queue of lots (amount, USD cost). A swap's USD value ``value_usd`` is both the proceeds of
   what it sold and the cost of what it bought. Selling matches the oldest lots first; the part of a
   sale no lot covers (bought before the history starts, or received by transfer) has no known cost
   and realizes nothing. Each sale that matched lots yields one :class:`RealizedTrade` row:
   ``profit_usd = proceeds of the matched part - its cost`` and ``volume_usd = its cost`` (the capital
   that was at risk in the closed trade, the quantity the Trust Score's ROI and drawdown floor are
   about). USD-stable "cash" mints (:data:`DEFAULT_CASH_MINTS`) are not positions: buying them opens
   nothing and spending them realizes nothing (their cost is their value). Rows whose cost is below
   :data:`MIN_ROW_VOLUME_USD` are left out (the Trust Score refuses smaller volumes).

Amounts are integers in the mint's base units (lamports for SOL); USD is :class:`~decimal.Decimal`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from xorj.errors import InvalidInputError

SOL_MINT = "So11111111111111111111111111111111111111112"  # WSOL's mint; native SOL is reported under it
SOL_DECIMALS = 9
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USDT_MINT = "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"
DEFAULT_CASH_MINTS = frozenset({USDC_MINT, USDT_MINT})
MIN_ROW_VOLUME_USD = Decimal("0.000001")


class SwapKind(str, enum.Enum):
    SWAP = "SWAP"
    NOT_A_SWAP = "NOT_A_SWAP"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class TokenBalance:
    """One ``preTokenBalances``/``postTokenBalances`` entry."""

    account_index: int
    mint: str
    owner: str | None  # absent in answers about very old transactions: then nobody's
    amount: int
    decimals: int


@dataclass(frozen=True, slots=True)
class LandedTransaction:
    """What the parser needs of one ``getTransaction`` answer. ``account_keys`` are the message's
    static keys followed by the addresses loaded from lookup tables (writable, then readonly): the
    order ``accountIndex`` and the balance arrays refer to."""

    signature: str
    slot: int
    block_time: int | None
    err: Any
    fee: int
    account_keys: tuple[str, ...]
    signer_count: int
    pre_balances: tuple[int, ...]
    post_balances: tuple[int, ...]
    pre_token_balances: tuple[TokenBalance, ...]
    post_token_balances: tuple[TokenBalance, ...]

    def __post_init__(self) -> None:
        n = len(self.account_keys)
        if len(self.pre_balances) != n or len(self.post_balances) != n:
            raise InvalidInputError(f"transaction {self.signature}: meta.preBalances/postBalances must have one "
                                    f"entry per account key ({n}), got {len(self.pre_balances)}/"
                                    f"{len(self.post_balances)}")
        if not 1 <= self.signer_count <= n:
            raise InvalidInputError(f"transaction {self.signature}: header.numRequiredSignatures must be 1..{n}, "
                                    f"got {self.signer_count}")
        if self.fee < 0:
            raise InvalidInputError(f"transaction {self.signature}: meta.fee must be >= 0, got {self.fee}")
        for entry in (*self.pre_token_balances, *self.post_token_balances):
            if not 0 <= entry.account_index < n:
                raise InvalidInputError(f"transaction {self.signature}: token balance accountIndex "
                                        f"{entry.account_index} is outside the {n} account keys")
            if entry.amount < 0:
                raise InvalidInputError(f"transaction {self.signature}: token amount must be >= 0, got {entry.amount}")


@dataclass(frozen=True, slots=True)
class ParsedSwap:
    """What one transaction did for ``wallet``. For a SWAP, the wallet gave ``sold_amount`` of
    ``sold_mint`` and got ``bought_amount`` of ``bought_mint`` (both > 0); otherwise ``reason``."""

    wallet: str
    signature: str
    slot: int
    block_time: int | None
    kind: SwapKind
    reason: str | None = None
    sold_mint: str | None = None
    sold_amount: int = 0
    sold_decimals: int = 0
    bought_mint: str | None = None
    bought_amount: int = 0
    bought_decimals: int = 0
    sol_overhead_lamports: int = 0  # SOL moved besides the legs (tips), fee excluded; < 0 spent
    fee_lamports: int = 0


def _token_balance(entry: Mapping[str, Any], where: str) -> TokenBalance:
    try:
        ui = entry["uiTokenAmount"]
        return TokenBalance(account_index=int(entry["accountIndex"]), mint=str(entry["mint"]),
                            owner=None if entry.get("owner") in (None, "") else str(entry["owner"]),
                            amount=int(ui["amount"]), decimals=int(ui["decimals"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: token balance entry is malformed ({type(exc).__name__}: {exc})") from None


def _pubkey_text(key: Any) -> str:
    # "json" encoding lists keys as strings; "jsonParsed" as objects with a pubkey
    return str(key["pubkey"]) if isinstance(key, Mapping) else str(key)


def landed_from_rpc_json(result: Mapping[str, Any]) -> LandedTransaction:
    """A :class:`LandedTransaction` from the ``result`` of ``getTransaction`` in ``json`` or
    ``jsonParsed`` encoding (with ``maxSupportedTransactionVersion: 0``)."""
    try:
        meta = result["meta"]
        tx = result["transaction"]
        message = tx["message"]
        signature = str(tx["signatures"][0])
    except (KeyError, TypeError, IndexError) as exc:
        raise InvalidInputError(f"getTransaction result: missing field ({exc})") from None
    if meta is None:
        raise InvalidInputError(f"transaction {signature}: meta is missing (the node has no status for it)")
    static = [_pubkey_text(k) for k in message["accountKeys"]]
    loaded = meta.get("loadedAddresses") or {}
    keys = static
    parsed_keys = bool(static) and isinstance(message["accountKeys"][0], Mapping)
    if not parsed_keys:  # jsonParsed already lists the loaded keys after the static ones
        keys = static + [str(k) for k in loaded.get("writable", [])] + [str(k) for k in loaded.get("readonly", [])]
    if parsed_keys:
        signer_count = sum(1 for k in message["accountKeys"] if k.get("signer"))
    else:
        signer_count = int(message["header"]["numRequiredSignatures"])
    where = f"transaction {signature}"
    return LandedTransaction(
        signature=signature, slot=int(result["slot"]),
        block_time=None if result.get("blockTime") is None else int(result["blockTime"]),
        err=meta.get("err"), fee=int(meta["fee"]), account_keys=tuple(keys), signer_count=signer_count,
        pre_balances=tuple(int(b) for b in meta["preBalances"]),
        post_balances=tuple(int(b) for b in meta["postBalances"]),
        pre_token_balances=tuple(_token_balance(e, where) for e in meta.get("preTokenBalances") or []),
        post_token_balances=tuple(_token_balance(e, where) for e in meta.get("postTokenBalances") or []),
    )


def balance_changes(tx: LandedTransaction, wallet: str) -> tuple[dict[str, int], dict[str, int], int]:
    """(change per non-SOL mint, decimals per mint, SOL change in lamports with the fee added back)
    of ``wallet`` in ``tx`` (see the module doc)."""
    owned: dict[int, TokenBalance] = {}
    pre = {e.account_index: e for e in tx.pre_token_balances if e.owner == wallet}
    post = {e.account_index: e for e in tx.post_token_balances if e.owner == wallet}
    owned.update(pre)
    owned.update(post)
    changes: dict[str, int] = {}
    decimals: dict[str, int] = {}
    sol = 0
    for index, entry in owned.items():
        sol += tx.post_balances[index] - tx.pre_balances[index]  # rent and wrapped SOL stay the wallet's
        if entry.mint == SOL_MINT:
            continue  # counted through the lamports just added
        before = pre[index].amount if index in pre else 0
        after = post[index].amount if index in post else 0
        changes[entry.mint] = changes.get(entry.mint, 0) + after - before
        decimals[entry.mint] = entry.decimals
    for index, key in enumerate(tx.account_keys):
        if key == wallet and index not in owned:
            sol += tx.post_balances[index] - tx.pre_balances[index]
            if index == 0:
                sol += tx.fee
            break
    return {m: d for m, d in changes.items() if d != 0}, decimals, sol


def parse_swap(tx: LandedTransaction, wallet: str) -> ParsedSwap:
    """What ``tx`` did for ``wallet``: a swap, or not a swap with the reason (see the module doc)."""
    base: dict[str, Any] = {"wallet": wallet, "signature": tx.signature, "slot": tx.slot, "block_time": tx.block_time}
    fee = tx.fee if tx.account_keys and tx.account_keys[0] == wallet else 0

    def not_a_swap(reason: str) -> ParsedSwap:
        return ParsedSwap(**base, kind=SwapKind.NOT_A_SWAP, reason=reason, fee_lamports=fee)

    if tx.err is not None:
        return ParsedSwap(**base, kind=SwapKind.FAILED, reason=f"transaction failed: {str(tx.err)[:200]}",
                          fee_lamports=fee)
    if wallet not in tx.account_keys[:tx.signer_count]:
        return not_a_swap("the wallet did not sign it")
    changes, decimals, sol = balance_changes(tx, wallet)
    down = sorted((m for m, d in changes.items() if d < 0))
    up = sorted((m for m, d in changes.items() if d > 0))
    if len(down) == 1 and len(up) == 1:
        return ParsedSwap(**base, kind=SwapKind.SWAP, sold_mint=down[0], sold_amount=-changes[down[0]],
                          sold_decimals=decimals[down[0]], bought_mint=up[0], bought_amount=changes[up[0]],
                          bought_decimals=decimals[up[0]], sol_overhead_lamports=sol, fee_lamports=fee)
    if len(down) + len(up) == 1:
        mint = (down or up)[0]
        if down and sol > 0:
            return ParsedSwap(**base, kind=SwapKind.SWAP, sold_mint=mint, sold_amount=-changes[mint],
                              sold_decimals=decimals[mint], bought_mint=SOL_MINT, bought_amount=sol,
                              bought_decimals=SOL_DECIMALS, fee_lamports=fee)
        if up and sol < 0:
            return ParsedSwap(**base, kind=SwapKind.SWAP, sold_mint=SOL_MINT, sold_amount=-sol,
                              sold_decimals=SOL_DECIMALS, bought_mint=mint, bought_amount=changes[mint],
                              bought_decimals=decimals[mint], fee_lamports=fee)
        direction = "out" if down else "in"
        return not_a_swap(f"one side only: {mint} moved {direction} with nothing coming back (a transfer)")
    if not changes:
        return not_a_swap("no token balance of the wallet changed" + (" (SOL only: a transfer or a fee)"
                                                                        if sol else ""))
    return not_a_swap(f"{len(changes)} mints moved ({len(down)} out, {len(up)} in): not a two-legged swap")


# ---- cost basis ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricedSwap:
    """A swap with its USD value (the proceeds of the sold leg = the cost of the bought leg)."""

    wallet: str
    signature: str
    timestamp: int  # unix seconds
    sold_mint: str
    sold_amount: int
    bought_mint: str
    bought_amount: int
    value_usd: Decimal

    def __post_init__(self) -> None:
        if self.sold_amount <= 0 or self.bought_amount <= 0:
            raise InvalidInputError(f"swap {self.signature}: sold_amount and bought_amount must be > 0")
        if self.sold_mint == self.bought_mint:
            raise InvalidInputError(f"swap {self.signature}: sold_mint and bought_mint must differ")
        if not self.value_usd.is_finite() or self.value_usd < 0:
            raise InvalidInputError(f"swap {self.signature}: value_usd must be a finite number >= 0")


@dataclass(frozen=True, slots=True)
class RealizedTrade:
    """One row of the history the Trust Score consumes (``wallet,timestamp,profit_usd,volume_usd``)."""

    wallet: str
    signature: str
    timestamp: int
    mint: str  # the position closed
    amount: int  # of it matched against lots
    profit_usd: Decimal
    volume_usd: Decimal  # the matched lots' cost


@dataclass
class _Lot:
    amount: int
    cost_usd: Decimal


@dataclass
class FifoBook:
    """Open lots per (wallet, mint), oldest first. Feed swaps in chain order with :meth:`apply`."""

    cash_mints: frozenset[str] = DEFAULT_CASH_MINTS
    lots: dict[tuple[str, str], deque[_Lot]] = field(default_factory=dict)
    unmatched: dict[tuple[str, str], int] = field(default_factory=dict)  # sold without a known cost

    def open_amount(self, wallet: str, mint: str) -> int:
        return sum(lot.amount for lot in self.lots.get((wallet, mint), ()))

    def open_cost(self, wallet: str, mint: str) -> Decimal:
        return sum((lot.cost_usd for lot in self.lots.get((wallet, mint), ())), Decimal(0))

    def apply(self, swap: PricedSwap) -> RealizedTrade | None:
        realized = None
        if swap.sold_mint not in self.cash_mints:
            realized = self._sell(swap)
        if swap.bought_mint not in self.cash_mints:
            self.lots.setdefault((swap.wallet, swap.bought_mint), deque()).append(
                _Lot(swap.bought_amount, swap.value_usd))
        return realized

    def _sell(self, swap: PricedSwap) -> RealizedTrade | None:
        key = (swap.wallet, swap.sold_mint)
        queue = self.lots.get(key, deque())
        remaining = swap.sold_amount
        matched = 0
        cost = Decimal(0)
        while remaining and queue:
            lot = queue[0]
            take = min(lot.amount, remaining)
            part = lot.cost_usd if take == lot.amount else lot.cost_usd * take / lot.amount
            cost += part
            matched += take
            remaining -= take
            lot.amount -= take
            lot.cost_usd -= part
            if lot.amount == 0:
                queue.popleft()
        if remaining:
            self.unmatched[key] = self.unmatched.get(key, 0) + remaining
        if matched == 0:
            return None
        proceeds = swap.value_usd if matched == swap.sold_amount else swap.value_usd * matched / swap.sold_amount
        return RealizedTrade(wallet=swap.wallet, signature=swap.signature, timestamp=swap.timestamp,
                             mint=swap.sold_mint, amount=matched, profit_usd=proceeds - cost, volume_usd=cost)


def realize_fifo(swaps: Iterable[PricedSwap], *, cash_mints: frozenset[str] = DEFAULT_CASH_MINTS
                 ) -> list[RealizedTrade]:
    """The realized trades of ``swaps`` (in chain order, oldest first), rows below
    :data:`MIN_ROW_VOLUME_USD` of cost left out."""
    book = FifoBook(cash_mints=cash_mints)
    rows = []
    for swap in swaps:
        row = book.apply(swap)
        if row is not None and row.volume_usd >= MIN_ROW_VOLUME_USD:
            rows.append(row)
    return rows


def value_swap(swap: ParsedSwap, prices: Mapping[str, Decimal], *,
               cash_mints: frozenset[str] = DEFAULT_CASH_MINTS) -> Decimal | None:
    """The USD value of a SWAP from ONE leg's price (USD per whole token): a cash leg first, then a
    SOL leg, then the sold leg, then the bought leg, whichever ``prices`` has. The swap itself
    prices the other leg, so one reliable price suffices. None when no leg has a price."""
    if swap.kind is not SwapKind.SWAP or swap.sold_mint is None or swap.bought_mint is None:
        raise InvalidInputError(f"{swap.signature}: only a SWAP has a value")
    legs = [(swap.sold_mint, swap.sold_amount, swap.sold_decimals),
            (swap.bought_mint, swap.bought_amount, swap.bought_decimals)]

    def rank(leg: tuple[str, int, int]) -> int:
        mint = leg[0]
        return 0 if mint in cash_mints else 1 if mint == SOL_MINT else 2

    for mint, amount, decimals in sorted(legs, key=rank):  # stable: sold before bought within a rank
        price = prices.get(mint)
        if price is not None:
            return Decimal(amount) * price / (Decimal(10) ** decimals)
    return None


def history_rows(rows: Sequence[RealizedTrade]) -> list[tuple[str, int, Decimal, Decimal]]:
    """``(wallet, timestamp, profit_usd, volume_usd)`` tuples, the Trust Score's trade history."""
    return [(r.wallet, r.timestamp, r.profit_usd, r.volume_usd) for r in rows]


__all__ = [
    "DEFAULT_CASH_MINTS",
    "MIN_ROW_VOLUME_USD",
    "SOL_MINT",
    "FifoBook",
    "LandedTransaction",
    "ParsedSwap",
    "PricedSwap",
    "RealizedTrade",
    "SwapKind",
    "TokenBalance",
    "balance_changes",
    "history_rows",
    "landed_from_rpc_json",
    "parse_swap",
    "realize_fifo",
    "value_swap",
]
