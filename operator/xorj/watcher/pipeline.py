"""From a reported lead transaction to the ledger: the one path every source delivers into.

A source (polling, webhook, WebSocket) only says "leader L may have made transaction S"
(:class:`Candidate`). :meth:`Watcher.process` then trusts nothing it was told:

1. a pushed signature already accepted is a duplicate (cheap ledger read; the ledger's primary key
   decides anyway);
2. the transaction is read from the chain (``getTransaction``; :meth:`~xorj.chain.rpc.SolanaRpc.
   transaction_with_meta` verifies that its signatures sign its message and that the answer is the
   transaction asked for). A pushed signature the chain does not have creates nothing; one the polling
   listing named must be there (otherwise the answer is malformed and the round stops, cursor kept);
3. the signal is what that transaction did to the leader, and the leader must have signed it
   (:func:`~xorj.domain.copy_signals.lead_swap_from`);
4. prices come from the price source, balances from the chain; each following strategy decides
   (:func:`~xorj.domain.copy_signals.decide_copy`);
5. ONE ledger transaction accepts the signal with every strategy's trade or skip
   (:func:`~xorj.ledger.lead_signals.accept`, on the asyncio ledger: no thread hop); the polling source
   moves its cursor in it.

Executors see the trade at that commit (NOTIFY). CopyTrades and skip Events are written to the
Kubernetes API afterwards by :class:`~xorj.watcher.projection.KubeProjector`, off this path.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import get_associated_token_address

from xorj.chain.errors import MalformedAnswerError
from xorj.chain.prices import PriceSource
from xorj.chain.rpc import AccountView, LandedAnswer
from xorj.domain.copy_signals import (
    CopyMode,
    FollowerView,
    LeadSwap,
    NotALeadSwap,
    decide_copy,
    lead_swap_from,
)
from xorj.domain.trader_history import SOL_MINT, landed_from_rpc_json
from xorj.errors import InvalidInputError
from xorj.ledger import lead_signals
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.lead_signals import FollowerOutcome
from xorj.traders.history import rpc_json_of
from xorj.watcher.follows import FollowBook, Follower
from xorj.watcher.metrics import WatcherMetrics

log = logging.getLogger(__name__)

TOKEN_ACCOUNT_SIZE = 165


class WatcherRpc(Protocol):
    async def transaction_with_meta(self, signature: str, commitment: str = "confirmed", *,
                                    timeout: float | None = None) -> LandedAnswer | None: ...

    async def balance(self, pubkey: Pubkey, commitment: str = "confirmed", *, timeout: float | None = None) -> int: ...

    async def account(self, pubkey: Pubkey, commitment: str = "confirmed", *,
                      timeout: float | None = None) -> AccountView | None: ...


@dataclass(frozen=True)
class Candidate:
    """A source's report: ``leader`` may have made transaction ``signature``."""

    leader: str
    signature: str
    source: str  # poll, webhook, websocket
    listed_slot: int | None = None  # the slot the polling listing gave (checked against the answer)

    @property
    def advances_cursor(self) -> bool:
        return self.source == "poll"


class Outcome(str, enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    NOT_A_SWAP = "not_a_swap"
    NOT_FOUND = "not_found"
    NOT_FOLLOWED = "not_followed"


def copytrade_name(strategy_key: str, signature: str) -> str:
    """The CopyTrade showing the trade copied for ``strategy_key`` from ``signature`` (deterministic,
    so a retried projection names the same object)."""
    return "copy-" + hashlib.sha256(f"{strategy_key}:{signature}".encode()).hexdigest()[:20]


def _token_amount(view: AccountView | None, owner: str, mint: str) -> int:
    """The amount of an SPL token account, checked to be ``owner``'s account of ``mint``."""
    if view is None:
        return 0
    if view.owner != str(TOKEN_PROGRAM_ID) or len(view.data) < TOKEN_ACCOUNT_SIZE:
        raise MalformedAnswerError(f"getAccountInfo: {owner}'s {mint} account is not an SPL token account",
                                   method="getAccountInfo")
    if str(Pubkey(view.data[0:32])) != mint or str(Pubkey(view.data[32:64])) != owner:
        raise MalformedAnswerError(f"getAccountInfo: the account at {owner}'s {mint} address holds another "
                                   "mint or owner", method="getAccountInfo")
    return int.from_bytes(view.data[64:72], "little")


class Watcher:
    def __init__(self, *, rpc: WatcherRpc, prices: PriceSource, ledger: AsyncLedger, book: FollowBook,
                 metrics: WatcherMetrics, commitment: str = "confirmed",
                 clock: Callable[[], float] = time.time, on_accepted: Callable[[], None] | None = None) -> None:
        self.rpc = rpc
        self.prices = prices
        self.ledger = ledger
        self.book = book
        self.metrics = metrics
        self.commitment = commitment
        self.clock = clock
        self.on_accepted = on_accepted  # () -> None: wake the projector

    async def process(self, candidate: Candidate) -> Outcome:
        """Handle one report (module doc). Raises ChainCallError / LedgerError when the chain, the price
        source or the ledger cannot answer: nothing was accepted, a later poll retries."""
        outcome = await self._process(candidate)
        self.metrics.signals.labels(candidate.source, outcome.value).inc()
        return outcome

    async def _process(self, c: Candidate) -> Outcome:
        if not c.advances_cursor and await self.ledger.run(lead_signals.is_accepted(c.leader, c.signature)):
            return Outcome.DUPLICATE
        followers = self.book.followers_of(c.leader)
        if not followers and not c.advances_cursor:
            return Outcome.NOT_FOLLOWED
        answer = await self.rpc.transaction_with_meta(c.signature, self.commitment)
        if answer is None:
            if c.listed_slot is not None:
                raise MalformedAnswerError(f"getTransaction: {c.signature} was listed for {c.leader} but the node "
                                           "does not have it", method="getTransaction")
            log.warning("reported transaction not on chain: nothing accepted",
                        extra={"source": c.source, "signature": c.signature})
            return Outcome.NOT_FOUND
        if c.listed_slot is not None and answer.slot != c.listed_slot:
            raise MalformedAnswerError(f"getTransaction: {c.signature} is in slot {answer.slot}, listed in slot "
                                       f"{c.listed_slot}", method="getTransaction")
        try:
            signal = lead_swap_from(landed_from_rpc_json(rpc_json_of(answer, c.signature)), c.leader)
        except InvalidInputError as exc:
            raise MalformedAnswerError(f"getTransaction: {exc}", method="getTransaction") from None
        if isinstance(signal, NotALeadSwap):
            if c.advances_cursor:
                await self.ledger.run(lead_signals.advance_cursor(c.leader, c.signature, answer.slot))
            return Outcome.NOT_A_SWAP
        outcomes = await self._decide(signal, followers) if followers else []
        result = await self.ledger.run(lead_signals.accept(signal, c.source, outcomes,
                                                           advance_cursor=c.advances_cursor))
        if not result.accepted:
            return Outcome.DUPLICATE
        if signal.block_time is not None:
            self.metrics.detection_seconds.labels(c.source).observe(max(0.0, self.clock() - signal.block_time))
        for reason in result.skipped.values():
            self.metrics.skipped.labels(reason.value).inc()
        self.metrics.trades_admitted.inc(len(result.trade_ids))
        log.info("lead signal accepted", extra={"leader": c.leader, "signature": c.signature, "source": c.source,
                                                "trades": len(result.trade_ids), "skipped": len(result.skipped)})
        if self.on_accepted is not None:
            self.on_accepted()
        return Outcome.ACCEPTED

    async def _decide(self, signal: LeadSwap, followers: list[Follower]) -> list[FollowerOutcome]:
        decimals = {signal.sold_mint: signal.sold_decimals, signal.bought_mint: signal.bought_decimals}
        answer = await self.prices.prices(sorted(decimals))
        # a price stated for other decimals than the chain's is about another token (or wrong): unused
        prices = {m: p.usd_price for m, p in answer.items()
                  if m in decimals and (p.decimals is None or p.decimals == decimals[m])}
        now = int(self.clock())
        outcomes = []
        for follower in followers:
            view = await self._view(follower, signal, prices)
            decision = decide_copy(signal, follower.policy, view, now=now)
            outcomes.append(FollowerOutcome(
                strategy=follower.strategy_key, vault=follower.vault, decision=decision,
                max_slippage_bps=follower.max_slippage_bps,
                copytrade=f"{follower.namespace}/{copytrade_name(follower.strategy_key, signal.signature)}"))
        return outcomes

    async def _balance(self, vault: str, mint: str) -> int:
        owner = Pubkey.from_string(vault)
        if mint == SOL_MINT:
            return await self.rpc.balance(owner, self.commitment)
        account = get_associated_token_address(owner, Pubkey.from_string(mint))
        return _token_amount(await self.rpc.account(account, self.commitment), vault, mint)

    async def _view(self, follower: Follower, signal: LeadSwap, prices: dict[str, Decimal]) -> FollowerView:
        balances = {signal.sold_mint: await self._balance(follower.vault, signal.sold_mint)}
        value = Decimal(0)
        if follower.policy.mode is CopyMode.VAULT_PERCENT:
            # the vault's value in the two mints of the signal (what the price source priced)
            balances[signal.bought_mint] = await self._balance(follower.vault, signal.bought_mint)
            decimals = {signal.sold_mint: signal.sold_decimals, signal.bought_mint: signal.bought_decimals}
            value = sum((Decimal(balances[m]) * prices[m] / (Decimal(10) ** decimals[m])
                         for m in balances if m in prices), Decimal(0))
        return FollowerView(balances=balances, prices=prices, vault_value_usd=value)
