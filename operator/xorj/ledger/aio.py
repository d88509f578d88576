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
"""

from __future__ import annotations

from typing import Self, TypeVar

import psycopg_pool

from xorj.ledger import statements
from xorj.ledger.pool import async_pool, pool_stats, translated_errors
from xorj.ledger.statements import Step

_T = TypeVar("_T")


class AsyncLedger:
    """The Postgres ledger behind an asyncio connection pool, for one event loop."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, *, owns_pool: bool = True) -> None:
        self._pool = pool
        self._owns_pool = owns_pool

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
        rolled back on any error."""
        with translated_errors():
            async with self._pool.connection() as conn:
                return await statements.run_async(conn, body)

    def pool_stats(self) -> dict[str, int]:
        """The pool's counters (psycopg_pool's names: pool_size, pool_available, pool_max, requests_waiting)."""
        return pool_stats(self._pool)
