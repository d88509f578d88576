"""A lead trader's swap seen on chain (a :class:`LeadSwap` signal), and what one following strategy
makes of it: a sized follower trade, or a skip with its reason code. Pure, typed, no I/O.

The signal comes from ONE landed transaction (:func:`lead_swap_from`): the leader's swap as
:func:`xorj.domain.trader_history.parse_swap` reads it, plus the leader's balance of the sold mint
BEFORE the transaction, from the same transaction's ``preTokenBalances`` (for SOL, the lamports of the
wallet and of its WSOL accounts in ``preBalances``). Nothing of it comes from whoever reported the
swap (a webhook, a log line): only from the transaction the chain returned.

:func:`decide_copy` sizes the follower's trade under the strategy's :class:`CopyPolicy`:

* a SELL (the leader sold a token that is not a cash mint: it closed or trimmed a position) copies the
  FRACTION of the position the leader sold: ``vault balance x sold / leader's balance before``; a
  vault that holds none of that token skips (:attr:`SkipReason.NOT_HELD`);
* a BUY (the leader spent a cash mint, USDC or SOL) is sized by ``sizing.mode``: ``fixedUsd`` (the
  same USD every trade), ``proportional`` (a multiple of the leader's USD size), ``vaultPercent`` (a
  percentage of the vault's USD value), or ``fixed`` (base units of the input mint, as the manual
  path);
* the USD target is then clamped to ``[minUsd, maxUsd]`` and turned into base units by
  :func:`xorj.domain.sizing.size_follower_trade` (rounded down, capped at what the vault holds,
  refused below the minimum notional).

Filters run before sizing, cheapest first: token deny list, token allow list, signal age. Every
skip carries a :class:`SkipReason` and a sentence; nothing is dropped silently. ``notional_usd`` of a
sized trade is the follower amount valued at the price source's price, never the signal's.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction

from xorj.domain.sizing import (
    SizingInput,
    SizingMethod,
    SizingPolicy,
    size_follower_trade,
)
from xorj.domain.trader_history import (
    DEFAULT_CASH_MINTS,
    SOL_MINT,
    LandedTransaction,
    SwapKind,
    parse_swap,
)
from xorj.errors import InvalidInputError


class SkipReason(str, enum.Enum):
    """Why a lead signal was not copied by one strategy (ledger column lead_skips.reason)."""

    TOKEN_DENIED = "TOKEN_DENIED"  # a leg is on the strategy's deny list
    TOKEN_NOT_ALLOWED = "TOKEN_NOT_ALLOWED"  # an allow list is set and a leg is not on it
    SIGNAL_TOO_OLD = "SIGNAL_TOO_OLD"  # the lead transaction is older than maxSignalAgeSeconds
    NOT_HELD = "NOT_HELD"  # the leader sold a token the vault does not hold
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"  # the sized trade is worth less than minNotionalUsd
    NO_PRICE = "NO_PRICE"  # the price source has no price for the input mint: cannot size it
    PAUSED = "PAUSED"  # the strategy is paused (kill switch)


class CopyMode(str, enum.Enum):
    """How a buy is sized (the TradingStrategy's ``spec.sizing.mode``)."""

    FIXED = "fixed"  # fixedAmount base units of the input mint
    PROPORTIONAL = "proportional"  # ratio x the leader's USD size
    FIXED_USD = "fixedUsd"  # fixedUsd USD
    VAULT_PERCENT = "vaultPercent"  # vaultPercent % of the vault's USD value


def _decimal(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise InvalidInputError(f"{name}: must be a Decimal or an int, got {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise InvalidInputError(f"{name}: must be finite, got {result}")
    return result


@dataclass(frozen=True, slots=True)
class LeadSwap:
    """One swap a lead trader made, as the chain shows it: it gave ``sold_amount`` of ``sold_mint``
    (holding ``sold_balance_before`` of it before the transaction) and got ``bought_amount`` of
    ``bought_mint``."""

    leader: str
    signature: str
    slot: int
    block_time: int | None
    sold_mint: str
    sold_amount: int
    sold_decimals: int
    bought_mint: str
    bought_amount: int
    bought_decimals: int
    sold_balance_before: int

    def __post_init__(self) -> None:
        for name in ("leader", "signature", "sold_mint", "bought_mint"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or value != value.strip():
                raise InvalidInputError(f"lead swap {name}: must be a non-empty string, got {value!r}")
        if self.sold_mint == self.bought_mint:
            raise InvalidInputError(f"lead swap {self.signature}: sold_mint and bought_mint must differ")
        for name in ("sold_amount", "bought_amount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInputError(f"lead swap {self.signature}: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.slot, int) or self.slot < 0:
            raise InvalidInputError(f"lead swap {self.signature}: slot must be >= 0, got {self.slot!r}")
        if self.sold_balance_before < self.sold_amount:
            raise InvalidInputError(f"lead swap {self.signature}: sold_balance_before {self.sold_balance_before} "
                                    f"is below sold_amount {self.sold_amount}: the leader cannot sell what it "
                                    "did not hold")


@dataclass(frozen=True, slots=True)
class NotALeadSwap:
    """A transaction of the leader that is not something to copy, with the reason."""

    leader: str
    signature: str
    slot: int
    reason: str


def sold_balance_before(tx: LandedTransaction, wallet: str, mint: str) -> int:
    """``wallet``'s balance of ``mint`` before ``tx``: the sum of its token accounts of that mint in
    ``preTokenBalances``; for SOL the lamports of the wallet's own account and of its WSOL accounts
    (as :func:`~xorj.domain.trader_history.balance_changes` counts SOL), fee included."""
    owned = [e for e in tx.pre_token_balances if e.owner == wallet]
    if mint != SOL_MINT:
        return sum(e.amount for e in owned if e.mint == mint)
    total = sum(tx.pre_balances[e.account_index] for e in owned if e.mint == SOL_MINT)
    for index, key in enumerate(tx.account_keys):
        if key == wallet:
            total += tx.pre_balances[index]
            break
    return total


def lead_swap_from(tx: LandedTransaction, leader: str) -> LeadSwap | NotALeadSwap:
    """The signal in ``tx`` for ``leader``: a :class:`LeadSwap`, or :class:`NotALeadSwap` with why."""
    parsed = parse_swap(tx, leader)
    if parsed.kind is not SwapKind.SWAP:
        return NotALeadSwap(leader, tx.signature, tx.slot, parsed.reason or parsed.kind.value)
    assert parsed.sold_mint is not None and parsed.bought_mint is not None
    before = sold_balance_before(tx, leader, parsed.sold_mint)
    if parsed.sold_mint == SOL_MINT:
        before = max(before, parsed.sold_amount)  # the fee was added back to the amount sold
    if before < parsed.sold_amount:
        return NotALeadSwap(leader, tx.signature, tx.slot,
                            f"balances disagree: sold {parsed.sold_amount} of {parsed.sold_mint} holding {before}")
    return LeadSwap(leader=leader, signature=tx.signature, slot=tx.slot, block_time=tx.block_time,
                    sold_mint=parsed.sold_mint, sold_amount=parsed.sold_amount, sold_decimals=parsed.sold_decimals,
                    bought_mint=parsed.bought_mint, bought_amount=parsed.bought_amount,
                    bought_decimals=parsed.bought_decimals, sold_balance_before=before)


@dataclass(frozen=True, slots=True)
class CopyPolicy:
    """A strategy's ``spec.sizing`` and ``spec.filters``, in domain terms."""

    mode: CopyMode = CopyMode.PROPORTIONAL
    ratio: Decimal = Decimal(1)
    fixed_amount: int | None = None
    fixed_usd: Decimal | None = None
    vault_percent: Decimal | None = None
    min_usd: Decimal | None = None
    max_usd: Decimal | None = None
    min_notional_usd: Decimal = Decimal(1)
    allow_mints: frozenset[str] | None = None
    deny_mints: frozenset[str] = frozenset()
    max_signal_age_seconds: int | None = 120
    cash_mints: frozenset[str] = DEFAULT_CASH_MINTS | {SOL_MINT}
    paused: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            set_(self, "mode", CopyMode(self.mode))
        except ValueError:
            names = ", ".join(m.value for m in CopyMode)
            raise InvalidInputError(f"sizing.mode: must be one of {names}, got {self.mode!r}") from None
        set_(self, "ratio", _decimal("sizing.ratio", self.ratio))
        if self.ratio <= 0:
            raise InvalidInputError(f"sizing.ratio: must be positive, got {self.ratio}")
        required = {CopyMode.FIXED: "fixed_amount", CopyMode.FIXED_USD: "fixed_usd",
                    CopyMode.VAULT_PERCENT: "vault_percent"}
        if self.mode in required and getattr(self, required[self.mode]) is None:
            raise InvalidInputError(f"sizing.{required[self.mode]}: required when mode is {self.mode.value}")
        if self.fixed_amount is not None and (isinstance(self.fixed_amount, bool) or self.fixed_amount <= 0):
            raise InvalidInputError(f"sizing.fixed_amount: must be a positive integer, got {self.fixed_amount!r}")
        for name in ("fixed_usd", "min_usd", "max_usd"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _decimal(f"sizing.{name}", value))
                if getattr(self, name) <= 0:
                    raise InvalidInputError(f"sizing.{name}: must be positive, got {value}")
        if self.vault_percent is not None:
            set_(self, "vault_percent", _decimal("sizing.vault_percent", self.vault_percent))
            if not 0 < self.vault_percent <= 100:
                raise InvalidInputError(f"sizing.vault_percent: must be in (0, 100], got {self.vault_percent}")
        if self.min_usd is not None and self.max_usd is not None and self.min_usd > self.max_usd:
            raise InvalidInputError(f"sizing.min_usd: must be <= sizing.max_usd, got {self.min_usd} > {self.max_usd}")
        set_(self, "min_notional_usd", _decimal("filters.min_notional_usd", self.min_notional_usd))
        if self.min_notional_usd < 0:
            raise InvalidInputError(f"filters.min_notional_usd: must be >= 0, got {self.min_notional_usd}")
        if self.max_signal_age_seconds is not None and self.max_signal_age_seconds < 1:
            raise InvalidInputError(f"filters.max_signal_age_seconds: must be >= 1, got {self.max_signal_age_seconds}")
        if self.allow_mints is not None and self.allow_mints & self.deny_mints:
            both = min(self.allow_mints & self.deny_mints)
            raise InvalidInputError(f"filters.allow_mints: {both} is also in filters.deny_mints")


@dataclass(frozen=True, slots=True)
class FollowerView:
    """What the watcher knows of the follower vault when it decides: ``balances`` in base units per
    mint (SOL in lamports), ``prices`` in USD per whole token from the price source (a mint without
    a price is absent), and the vault's total USD value (``vault_value_usd``)."""

    balances: Mapping[str, int] = field(default_factory=dict)
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    vault_value_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CopyDecision:
    """A follower trade (``amount_in`` base units of ``input_mint`` for ``output_mint``, worth
    ``notional_usd`` at the price source's price), or a skip (``skip`` set, ``amount_in`` 0)."""

    input_mint: str
    output_mint: str
    amount_in: int
    notional_usd: Decimal | None
    skip: SkipReason | None = None
    detail: str = ""

    @property
    def skipped(self) -> bool:
        return self.skip is not None


def is_sell(signal: LeadSwap, policy: CopyPolicy) -> bool:
    """The leader sold a position (a non-cash token), rather than spending cash on one."""
    return signal.sold_mint not in policy.cash_mints


def _skip(signal: LeadSwap, reason: SkipReason, detail: str) -> CopyDecision:
    return CopyDecision(signal.sold_mint, signal.bought_mint, 0, None, reason, detail)


def screen_signal(signal: LeadSwap, policy: CopyPolicy, *, now: int) -> CopyDecision | None:
    """The strategy's own filters (pause, deny and allow lists, signal age) at unix time ``now``: a
    skip for every vault of the strategy, or None when the signal is to be sized vault by vault."""
    mint_in, mint_out = signal.sold_mint, signal.bought_mint

    def skip(reason: SkipReason, detail: str) -> CopyDecision:
        return _skip(signal, reason, detail)

    if policy.paused:
        return skip(SkipReason.PAUSED, "the strategy is paused")
    denied = [m for m in (mint_in, mint_out) if m in policy.deny_mints]
    if denied:
        return skip(SkipReason.TOKEN_DENIED, f"{denied[0]} is in spec.filters.denyMints")
    if policy.allow_mints is not None:
        missing = [m for m in (mint_in, mint_out) if m not in policy.allow_mints]
        if missing:
            return skip(SkipReason.TOKEN_NOT_ALLOWED, f"{missing[0]} is not in spec.filters.allowMints")
    if policy.max_signal_age_seconds is not None:
        if signal.block_time is None:
            return skip(SkipReason.SIGNAL_TOO_OLD, "the lead transaction has no block time: its age is unknown")
        age = now - signal.block_time
        if age > policy.max_signal_age_seconds:
            return skip(SkipReason.SIGNAL_TOO_OLD, f"lead transaction is {age}s old, over "
                                                   f"spec.filters.maxSignalAgeSeconds {policy.max_signal_age_seconds}")
    return None


def size_copy(signal: LeadSwap, policy: CopyPolicy, follower: FollowerView) -> CopyDecision:
    """The trade of ONE vault, sized from that vault's own ``follower`` view (module doc): a sell is
    its own share of its own position, ``vaultPercent`` a share of its own value."""
    mint_in, mint_out = signal.sold_mint, signal.bought_mint

    def skip(reason: SkipReason, detail: str) -> CopyDecision:
        return _skip(signal, reason, detail)

    held = int(follower.balances.get(mint_in, 0))
    if held <= 0:
        if is_sell(signal, policy):
            return skip(SkipReason.NOT_HELD, f"the leader sold {mint_in}, which the vault does not hold")
        return skip(SkipReason.NOT_HELD, f"the vault holds no {mint_in} to spend")
    price = follower.prices.get(mint_in)
    if price is None or price <= 0:
        return skip(SkipReason.NO_PRICE, f"the price source has no price for {mint_in}")
    scale = Fraction(10) ** signal.sold_decimals

    if is_sell(signal, policy):
        exact = Fraction(held) * signal.sold_amount / signal.sold_balance_before
        target = Fraction(math.floor(exact)) * Fraction(price) / scale
        how = f"sell {signal.sold_amount}/{signal.sold_balance_before} of the leader's position"
    elif policy.mode is CopyMode.FIXED:
        assert policy.fixed_amount is not None
        target = Fraction(policy.fixed_amount) * Fraction(price) / scale
        how = f"fixed {policy.fixed_amount} base units"
    elif policy.mode is CopyMode.FIXED_USD:
        assert policy.fixed_usd is not None
        target = Fraction(policy.fixed_usd)
        how = f"fixed {policy.fixed_usd} USD"
    elif policy.mode is CopyMode.VAULT_PERCENT:
        assert policy.vault_percent is not None
        target = Fraction(policy.vault_percent) / 100 * Fraction(follower.vault_value_usd)
        how = f"{policy.vault_percent}% of the vault's {follower.vault_value_usd} USD"
    else:
        leader_usd = Fraction(signal.sold_amount) * Fraction(price) / scale
        target = leader_usd * Fraction(policy.ratio)
        how = f"{policy.ratio} x the leader's {float(leader_usd):.2f} USD"
    if policy.max_usd is not None and target > policy.max_usd:
        target, how = Fraction(policy.max_usd), how + f", capped at maxUsd {policy.max_usd}"
    if policy.min_usd is not None and target < policy.min_usd and not is_sell(signal, policy):
        target, how = Fraction(policy.min_usd), how + f", raised to minUsd {policy.min_usd}"
    if target <= 0:
        return skip(SkipReason.BELOW_MIN_NOTIONAL, f"size is 0 ({how})")
    # rounded UP at 60 digits: sizing floors the base units, and a target a hair below an exact
    # number of base units must not lose one
    with localcontext(prec=60, rounding=ROUND_CEILING):
        target_decimal = Decimal(target.numerator) / Decimal(target.denominator)
    sized = size_follower_trade(
        SizingPolicy(mode=SizingMethod.FIXED_NOTIONAL, fixed_notional_usd=target_decimal,
                     min_notional_usd=policy.min_notional_usd),
        SizingInput(lead_amount_in=signal.sold_amount, input_decimals=signal.sold_decimals, input_price_usd=price,
                    vault_value_usd=follower.vault_value_usd, vault_input_balance=held))
    if sized.skipped:
        return skip(SkipReason.BELOW_MIN_NOTIONAL, f"{sized.reason}; {how}")
    return CopyDecision(mint_in, mint_out, sized.amount_in, sized.notional_usd, None, how)


def decide_copy(signal: LeadSwap, policy: CopyPolicy, follower: FollowerView, *, now: int) -> CopyDecision:
    """What one strategy does with ``signal`` at unix time ``now`` for one vault (see the module doc)."""
    return screen_signal(signal, policy, now=now) or size_copy(signal, policy, follower)


def follower_view(signal: LeadSwap, balances: Mapping[str, int], prices: Mapping[str, Decimal]) -> FollowerView:
    """A vault's view from its ``balances`` (base units per mint, as read from the chain) and the
    price source's ``prices``: its USD value is that of the signal's two mints it holds (what the
    price source priced for this signal); a mint without a price adds nothing. Balances are checked:
    a negative or non-integer balance is no balance (:class:`InvalidInputError`)."""
    for mint, amount in balances.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InvalidInputError(f"balance of {mint}: must be a non-negative integer, got {amount!r}")
    decimals = {signal.sold_mint: signal.sold_decimals, signal.bought_mint: signal.bought_decimals}
    value = sum((Decimal(amount) * prices[mint] / (Decimal(10) ** decimals[mint])
                 for mint, amount in balances.items() if mint in decimals and mint in prices), Decimal(0))
    return FollowerView(balances=dict(balances), prices=prices, vault_value_usd=value)


@dataclass(frozen=True, slots=True)
class FanOutSizing:
    """One lead swap sized for each vault of a strategy: ``trades`` (vault -> its sized trade) and
    ``skips`` (vault -> the skip, with its reason, of a vault sized to nothing)."""

    trades: Mapping[str, CopyDecision]
    skips: Mapping[str, CopyDecision]

    def decision_for(self, own_vault: str) -> CopyDecision:
        """The strategy's decision, as its CopyTrade and lead_skips show it: the own vault's trade;
        else another vault's trade (the signal is copied); else the own vault's skip (none is)."""
        if own_vault in self.trades:
            return self.trades[own_vault]
        if self.trades:
            return self.trades[min(self.trades)]
        return self.skips[own_vault] if own_vault in self.skips else next(iter(self.skips.values()))


def size_fanout(signal: LeadSwap, policy: CopyPolicy, views: Mapping[str, FollowerView], *,
                now: int) -> FanOutSizing:
    """``signal`` sized for every vault of ``views`` (vault -> its own view), each from its own
    balances (:func:`size_copy`), after the strategy's own filters (:func:`screen_signal`), which skip
    every vault alike. ``views`` must name at least one vault."""
    if not views:
        raise InvalidInputError("views: at least one vault is needed to size a fan-out")
    screened = screen_signal(signal, policy, now=now)
    if screened is not None:
        return FanOutSizing(trades={}, skips=dict.fromkeys(views, screened))
    decided = {vault: size_copy(signal, policy, view) for vault, view in views.items()}
    return FanOutSizing(trades={v: d for v, d in decided.items() if not d.skipped},
                        skips={v: d for v, d in decided.items() if d.skipped})


__all__ = [
    "CopyDecision",
    "CopyMode",
    "CopyPolicy",
    "FanOutSizing",
    "FollowerView",
    "LeadSwap",
    "NotALeadSwap",
    "SkipReason",
    "decide_copy",
    "follower_view",
    "is_sell",
    "lead_swap_from",
    "screen_signal",
    "size_copy",
    "size_fanout",
    "sold_balance_before",
]
