"""What the handlers share for the life of the operator process: clients, settings, wake-ups.

Built in the kopf startup handler and kept in kopf's ``memo``; torn down in the cleanup handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from xorj.controller import metrics
from xorj.controller.freshness import WatchFreshness
from xorj.controller.kube import Kube
from xorj.controller.settings import OperatorSettings
from xorj.errors import LedgerError
from xorj.ledger import AsyncTradeListener, Ledger
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.statements import Step
from xorj.traders.realized import RealizedHistories

if TYPE_CHECKING:
    from xorj.controller.models import TradingStrategySpec

T = TypeVar("T")
log = logging.getLogger(__name__)


class Wakeups:
    """trade id -> the mirror loops waiting for news of that trade (a NOTIFY, or a resync)."""

    def __init__(self) -> None:
        self._events: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._notified_at: dict[int, float] = {}

    def register(self, trade_id: int) -> asyncio.Event:
        return self.register_many((trade_id,))

    def register_many(self, trade_ids: Iterable[int]) -> asyncio.Event:
        """One event woken by news of any of ``trade_ids`` (a many-vault CopyTrade's trades)."""
        event = asyncio.Event()
        for trade_id in trade_ids:
            self._events[trade_id].add(event)
        return event

    def unregister_many(self, trade_ids: Iterable[int], event: asyncio.Event) -> None:
        for trade_id in trade_ids:
            self.unregister(trade_id, event)

    def unregister(self, trade_id: int, event: asyncio.Event) -> None:
        waiting = self._events.get(trade_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._events[trade_id]
                self._notified_at.pop(trade_id, None)

    def wake(self, trade_id: int, at: float) -> None:
        waiting = self._events.get(trade_id)
        if waiting:
            self._notified_at.setdefault(trade_id, at)
            for event in waiting:
                event.set()

    def wake_all(self) -> None:
        for waiting in self._events.values():
            for event in waiting:
                event.set()

    def take_notified_at(self, trade_id: int) -> float | None:
        return self._notified_at.pop(trade_id, None)


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    # every reconciler's ledger transactions: bodies run on kopf's event loop (see ledger_run)
    async_ledger: AsyncLedger
    # the blocking ledger: the schema's migration at start, the pool metrics and the alert outbox's
    # delivery (one transaction held open across the API server's call, on a thread of its own)
    ledger: Ledger
    freshness: WatchFreshness
    identity: str
    wakeups: Wakeups = field(default_factory=Wakeups)
    applied: dict[str, tuple[str, float]] = field(default_factory=dict)  # strategy uid -> digest, when
    # (namespace, strategy) -> the keys directory its last reconcile rendered from its Vaults (None: no
    # Vault; text: the key collision it refused), so a Vault event re-renders only on a real change
    key_sources: dict[tuple[str, str], object] = field(default_factory=dict)
    key_rerenders_pending: set[tuple[str, str]] = field(default_factory=set)  # Vault events being coalesced
    # (namespace, strategy) -> its spec as the strategy_specs index holds it, and that spec validated
    # (None: invalid), shared by every admission of its CopyTrades until the index holds another
    validated_strategy_specs: dict[tuple[str, str], tuple[Any, TradingStrategySpec | None]] = field(
        default_factory=dict)
    realized: RealizedHistories = field(default_factory=RealizedHistories)  # pools' realized trades, reused
    # pool uid -> (its candidates, their history watermark) when it was last scored; and one lock per
    # pool, so its schedule and a new-swaps rescoring never write its status out of order
    pool_watermarks: dict[str, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)
    pool_locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    async def ledger_run(self, body: Step[T]) -> T:
        """One ledger transaction of :mod:`xorj.ledger.transactions`, on the event loop (no thread);
        failures are counted under the body's name and re-raised (typed LedgerError)."""
        try:
            return await self.async_ledger.run(body)
        except LedgerError:
            metrics.LEDGER_ERRORS.labels(getattr(body, "__name__", "transaction")).inc()
            raise

    async def listen_forever(self) -> None:
        """LISTEN on the ledger's channel and wake the mirror loop of each changed trade.

        On (re)connection every loop is woken, so whatever changed while the listener was down is
        read at once instead of at the next periodic resync.
        """
        dsn = self.settings.ledger_dsn.get_secret_value()
        backoff = 0.5
        while True:
            try:
                async with AsyncTradeListener(dsn) as listener:
                    metrics.LISTENER_CONNECTED.set(1)
                    backoff = 0.5
                    self.wakeups.wake_all()
                    log.info("listening for ledger notifications")
                    async for note in listener:
                        metrics.NOTIFICATIONS.inc()
                        self.wakeups.wake(note.trade_id, time.monotonic())
            except asyncio.CancelledError:
                raise
            except (LedgerError, OSError) as exc:
                # the message of a LedgerError never carries the DSN (the ledger redacts it)
                log.warning("ledger listener lost: %s; reconnecting", type(exc).__name__,
                            extra={"retry_in": backoff})
            except Exception:
                log.exception("ledger listener failed; reconnecting")
            metrics.LISTENER_CONNECTED.set(0)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
