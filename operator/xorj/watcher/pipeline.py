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
4. prices come from the price source; each following strategy screens the signal with its filters
   (:func:`~xorj.domain.copy_signals.screen_signal`), then sizes it for EACH of its vaults from that
   vault's own balances (:func:`~xorj.domain.copy_signals.size_fanout`), read for all its vaults in
   batched getMultipleAccounts calls (:func:`~xorj.chain.holdings.read_balances`; a malformed answer
   fails the round with MALFORMED_RESPONSE, nothing accepted). A vault sized to nothing (it holds
   none of the sold token, or its share is below the minimum notional) gets no trade: it is counted
   in ``xorj_watcher_vault_skips`` by reason, and the others' trades go ahead;
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

from xorj.chain.account_batch import AccountSource
from xorj.chain.errors import MalformedAnswerError
from xorj.chain.holdings import read_balances
from xorj.chain.prices import PriceSource
from xorj.chain.rpc import LandedAnswer
from xorj.domain.copy_signals import (
    CopyMode,
    FanOutSizing,
    LeadSwap,
    NotALeadSwap,
    follower_view,
    lead_swap_from,
    screen_signal,
    size_fanout,
)
from xorj.domain.trader_history import landed_from_rpc_json
from xorj.errors import InvalidInputError
from xorj.ledger import lead_signals, vaults
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.lead_signals import FollowerOutcome
from xorj.traders.history import rpc_json_of
from xorj.watcher.follows import FollowBook, Follower
from xorj.watcher.metrics import WatcherMetrics

log = logging.getLogger(__name__)

class WatcherRpc(AccountSource, Protocol):
    async def transaction_with_meta(self, signature: str, commitment: str = "confirmed", *,
                                    timeout: float | None = None) -> LandedAnswer | None: ...


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
            # the strategy's own filters skip every vault alike; otherwise each vault is sized
            screened = screen_signal(signal, follower.policy, now=now)
            sizing = None if screened is not None else await self._size(follower, signal, prices, now)
            decision = sizing.decision_for(follower.vault) if sizing is not None else screened
            assert decision is not None, "unscreened signals are sized"
            outcomes.append(FollowerOutcome(
                strategy=follower.strategy_key, vault=follower.vault, decision=decision,
                max_slippage_bps=follower.max_slippage_bps, sizing=sizing,
                copytrade=f"{follower.namespace}/{copytrade_name(follower.strategy_key, signal.signature)}"))
        return outcomes

    async def _size(self, follower: Follower, signal: LeadSwap, prices: dict[str, Decimal], now: int) -> FanOutSizing:
        """The signal sized for each vault of the strategy from that vault's own balances (a sell is
        its share of its own position; vaultPercent a share of its own value), read in one batch."""
        vault_keys = await self.ledger.run(vaults.fanout_vaults(follower.strategy_key, follower.vault))
        # vaultPercent values the vault in the signal's two mints (what the price source priced)
        mints = [signal.sold_mint]
        if follower.policy.mode is CopyMode.VAULT_PERCENT:
            mints.append(signal.bought_mint)
        balances = await read_balances(self.rpc, vault_keys, mints, commitment=self.commitment)
        try:
            views = {vault: follower_view(signal, balances[vault], prices) for vault in vault_keys}
        except InvalidInputError as exc:
            raise MalformedAnswerError(f"getMultipleAccounts: {exc}", method="getMultipleAccounts") from None
        sizing = size_fanout(signal, follower.policy, views, now=now)
        for decision in sizing.skips.values():
            if decision.skip is not None:
                self.metrics.vault_skips.labels(decision.skip.value).inc()
        return sizing
