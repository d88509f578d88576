"""The ledger for code on an event loop (the executor): the transaction bodies of
:mod:`xorj.ledger.transactions`, run on psycopg's asyncio driver under
``psycopg_pool.AsyncConnectionPool``, with no thread hop. Same statements, same fencing, same
transaction boundaries, same errors as the blocking :class:`~xorj.ledger.repository.Ledger`:

    ledger = AsyncLedger.for_dsn(dsn, name="xorj-executor")
    await ledger.open()
    trades = await ledger.run(transactions.claim_trades(strategy, owner, 8, 30.0))

A task cancelled in the middle of a transaction rolls it back (psycopg cancels the statement on the
server first); a cancellation that meets the COMMIT leaves it applied or not, which every fenced write
already allows for (the caller re-reads the ledger, as after a lost connection).

At most as many transactions run at once as the pool has connections; the other callers wait their
turn in arrival order (:class:`Turns`), and a busy ledger is never reported as an unavailable one.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Self, TypeVar

import psycopg_pool

from xorj.ledger import statements
from xorj.ledger.pool import async_pool, pool_stats, translate, translated_errors
from xorj.ledger.statements import Step

_T = TypeVar("_T")


class Turns:
    """At most ``size`` callers at once (the pool's ``max_size``); the others queue in arrival order.

    Why: in the pool's own queue a caller fails after the acquire timeout even when the ledger is
    healthy and merely busy. The operator with 1,000 Vaults on 8 connections made thousands of
    "ledger unavailable" retries that way, and each retrying object kept its state, body and retry in
    kopf. With as many turns as connections, a caller holding a turn always finds a connection, so
    the pool's acquire timeout applies to it alone and means what it says: no connection could be had
    (the ledger is away), and it fails :class:`~xorj.errors.LedgerUnavailableError` as before.

    A queued caller has no deadline of its own while the queue moves. It fails as unavailable, with
    the same error, only when no turn holder got a connection for a whole acquire timeout (``stall``):
    the ledger is away or every connection is stuck. So a real outage still surfaces within about the
    acquire timeout for every caller, queued or not.
    """

    def __init__(self, size: int, stall: float) -> None:
        self._free = size
        self._stall = stall
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()  # a caller that left stays, cancelled, until release skips it
        self._moved_at = time.monotonic()  # when a turn holder last got a connection
        self.waiting = 0

    async def acquire(self) -> None:
        """Take a turn, waiting for one while the others make progress; raises
        :class:`~xorj.errors.LedgerUnavailableError` when none does for ``stall`` seconds."""
        if self._free > 0:  # then nobody is queued: release hands a turn over before it frees one
            self._free -= 1
            self._queue.clear()  # only futures of callers that left (cancelled, stalled) remain
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        self.waiting += 1
        since = time.monotonic()
        try:
            while not turn.done():
                remaining = max(since, self._moved_at) + self._stall - time.monotonic()
                if remaining <= 0:
                    # the pool's own words for "no connection within the acquire timeout"
                    raise translate(psycopg_pool.PoolTimeout(
                        f"no turn holder got a connection in {self._stall:g} s"))
                await asyncio.wait((turn,), timeout=remaining)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a turn as it left (cancelled): pass it on
            else:
                turn.cancel()  # left in the queue; release skips it
            raise
        finally:
            self.waiting -= 1

    def moved(self) -> None:
        """A turn holder got its connection: the ledger answers, the queue moves."""
        self._moved_at = time.monotonic()

    def release(self) -> None:
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


class AsyncLedger:
    """The Postgres ledger behind an asyncio connection pool, for one event loop."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, *, owns_pool: bool = True) -> None:
        self._pool = pool
        self._owns_pool = owns_pool
        self._turns = Turns(pool.max_size, stall=pool.timeout)

    @classmethod
    def for_dsn(cls, dsn: str, *, min_size: int = 1, max_size: int = 4, acquire_timeout: float = 5.0,
                name: str = "xorj-ledger") -> AsyncLedger:
        """A ledger on ``dsn`` whose pool is not open yet (:meth:`open` it on its event loop). It never
        migrates: whoever owns the schema (the operator) does."""
        return cls(async_pool(dsn, min_size=min_size, max_size=max_size, acquire_timeout=acquire_timeout,
                              name=name))

    async def open(self) -> None:
        """Start the pool without waiting for a connection: the ledger may be away, the pool keeps
        trying and each call fails as unavailable until it is back."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def run(self, body: Step[_T]) -> _T:
        """One transaction: ``body``'s statements on a pooled connection, committed when it returns,
        rolled back on any error. Waits its turn first (:class:`Turns`): waiting is not a failure."""
        await self._turns.acquire()
        try:
            with translated_errors():
                async with self._pool.connection() as conn:
                    self._turns.moved()
                    return await statements.run_async(conn, body)
        finally:
            self._turns.release()

    def pool_stats(self) -> dict[str, int]:
        """The pool's counters (psycopg_pool's names: pool_size, pool_available, pool_max, requests_waiting);
        requests_waiting counts the callers waiting for their turn too."""
        stats = pool_stats(self._pool)
        stats["requests_waiting"] += self._turns.waiting
        return stats
