"""The connection pool and the translation of database errors into the xorj error hierarchy.

Policy: a lost or unobtainable connection is :class:`LedgerUnavailableError` and nothing is retried
here. A write whose COMMIT was in flight when the connection broke may or may not have been applied;
the caller learns the truth by reading the ledger again once it is reachable (the idempotency key and
the unique attempt signature make the re-read decisive). The pool checks a connection that sat idle
before lending it, so after a server restart the dead connections are replaced instead of failing the
first caller, and new connections are made as soon as the server accepts them again.

A highly available ledger (Patroni, issue 17) needs nothing more than its DSN: give every member's
address with ``target_session_attrs=read-write`` (``host=a,b,c target_session_attrs=read-write``, or the
primary Service's one address). What makes the executors and the operator follow a new primary without
a restart, measured in tests/integration/executor/test_ledger_primary_failover.py:
- ``check``: a connection is checked before it is lent, so the dead primary's connections are dropped
  at their next use, not handed to a caller. One that came back to the pool less than
  :data:`CHECK_BYPASS_SECONDS` ago is lent unchecked (HikariCP's "alive bypass window"): under load
  the check was a round trip per transaction, a quarter of the executor's ledger work, and a server
  lost within that half second fails the caller's call with :class:`LedgerUnavailableError`, as one
  lost during the call would;
- ``connect_timeout`` (default 5 s): libpq spends at most this per address, so a member that is down or
  unreachable is passed over within it and the next one tried;
- ``target_session_attrs=read-write`` in the DSN: a new connection keeps only the member that takes
  writes (a standby, or the old primary restarting as one, is skipped);
- ``timeout`` (the acquire timeout, default 5 s): how long a caller waits for a connection before its
  call fails :class:`LedgerUnavailableError`; a switchover (a second or two) fits in it, so it fails
  nothing; a failover after a lost primary (Patroni's leader TTL, 20 s in the chart) does not, and the
  callers' own retries (the executor's next poll, the operator's retried handler) carry the work over.
  On the asyncio pool (:class:`~xorj.ledger.aio.AsyncLedger`) at most ``max_size`` callers at once
  ask the pool (so each finds a connection while the ledger answers); the others queue for their turn
  without a deadline while the queue moves, and fail the same way only when no caller got a
  connection for a whole acquire timeout: a busy ledger is not an unavailable one;
- ``reconnect_timeout`` (1 h): the pool keeps trying to fill itself in the background all that time.
A write whose COMMIT was in flight when the primary died is decided by the re-read, as above; with
synchronous replication (strict) a COMMIT that returned is on the promoted standby.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool

from xorj.errors import LedgerConstraintError, LedgerError, LedgerUnavailableError

log = logging.getLogger(__name__)

# A connection back in the pool for less than this is lent without the check's round trip: it
# answered a moment ago. 0.5 s is HikariCP's default for the same rule.
CHECK_BYPASS_SECONDS = 0.5

_returned_at: weakref.WeakKeyDictionary[psycopg.BaseConnection[Any], float] = weakref.WeakKeyDictionary()


def _note_return(conn: psycopg.Connection[Any]) -> None:
    _returned_at[conn] = time.monotonic()


async def _note_return_async(conn: psycopg.AsyncConnection[Any]) -> None:
    _returned_at[conn] = time.monotonic()


def _answered_just_now(conn: psycopg.BaseConnection[Any]) -> bool:
    at = _returned_at.get(conn)
    return at is not None and time.monotonic() - at < CHECK_BYPASS_SECONDS


def _check(conn: psycopg.Connection[Any]) -> None:
    if not _answered_just_now(conn):
        psycopg_pool.ConnectionPool.check_connection(conn)


async def _check_async(conn: psycopg.AsyncConnection[Any]) -> None:
    if not _answered_just_now(conn):
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)


def translate(exc: BaseException) -> LedgerError:
    """The xorj error for a psycopg / pool exception (never carrying the DSN or its password)."""
    if isinstance(exc, (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)):
        return LedgerUnavailableError(f"ledger unavailable: no database connection ({type(exc).__name__})")
    if isinstance(exc, psycopg.errors.IntegrityError):
        diag = exc.diag
        # The constraint's name says its table, field and rule (trades_amount_positive, ...): the
        # migrations are the one place the rules are written; the server's detail names the values.
        where = ".".join(p for p in (diag.table_name, diag.column_name) if p)
        message = (f"ledger constraint {diag.constraint_name or '?'} violated on {where or '?'}: "
                   f"{diag.message_primary}")
        if diag.message_detail:
            message += f" ({diag.message_detail})"
        return LedgerConstraintError(message, constraint=diag.constraint_name)
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        # Connection refused/lost, admin shutdown, server crash: the write's fate is the server's.
        return LedgerUnavailableError(f"ledger unavailable: {type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, psycopg.DataError):
        return LedgerConstraintError(f"ledger rejected a value: {_first_line(exc)}")
    return LedgerError(f"ledger error: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise psycopg and pool errors as :class:`LedgerError` subclasses."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
        raise translate(exc) from exc


def _pool_options(dsn: str, *, min_size: int, max_size: int, connect_timeout: float, acquire_timeout: float,
                  name: str) -> dict[str, Any]:
    """What a blocking and an asyncio pool share: lend only live connections (the pool's check, the
    same for both kinds), keep reconnecting while the server is away."""
    return {
        "conninfo": dsn,
        "min_size": min_size,
        "max_size": max_size,
        "timeout": acquire_timeout,
        # A connect attempt that hangs must not hold a caller past its acquire timeout.
        "kwargs": {"connect_timeout": max(1, int(connect_timeout)), "application_name": name},
        # Keep retrying in the background for a long time: the server coming back is the normal case.
        "reconnect_timeout": 3600.0,
        "reconnect_failed": _log_reconnect_failed,
        "name": name,
        "open": False,
    }


def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    connect_timeout: float = 5.0,
    acquire_timeout: float = 5.0,
    name: str = "xorj-ledger",
) -> psycopg_pool.ConnectionPool:
    """Open a pool that lends only live connections and keeps reconnecting while the server is away.

    ``acquire_timeout`` bounds how long a caller waits for a connection before the call becomes
    :class:`LedgerUnavailableError`; the pool itself keeps trying to reconnect in the background.
    """
    pool = psycopg_pool.ConnectionPool(
        check=_check, reset=_note_return,
        **_pool_options(dsn, min_size=min_size, max_size=max_size, connect_timeout=connect_timeout,
                        acquire_timeout=acquire_timeout, name=name))
    pool.open(wait=False)
    return pool


def async_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    connect_timeout: float = 5.0,
    acquire_timeout: float = 5.0,
    name: str = "xorj-ledger",
) -> psycopg_pool.AsyncConnectionPool:
    """The asyncio pool with :func:`open_pool`'s behaviour, not open yet: ``await pool.open(wait=False)``
    on the event loop that will use it (an asyncio pool belongs to one loop)."""
    return psycopg_pool.AsyncConnectionPool(
        check=_check_async, reset=_note_return_async,
        **_pool_options(dsn, min_size=min_size, max_size=max_size, connect_timeout=connect_timeout,
                        acquire_timeout=acquire_timeout, name=name))


def pool_stats(pool: psycopg_pool.ConnectionPool | psycopg_pool.AsyncConnectionPool) -> dict[str, int]:
    """The pool's counters (psycopg_pool's names: pool_size, pool_available, pool_max, requests_waiting)."""
    stats = {"pool_size": 0, "pool_available": 0, "requests_waiting": 0}
    stats.update(pool.get_stats())
    stats["pool_max"] = pool.max_size
    return stats


def _log_reconnect_failed(pool: psycopg_pool.ConnectionPool | psycopg_pool.AsyncConnectionPool) -> None:
    log.error("ledger pool gave up reconnecting", extra={"pool": pool.name})
