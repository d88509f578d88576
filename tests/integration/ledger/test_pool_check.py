"""The pool's check before lending: a connection that sat idle is checked (a dead one is replaced
before a caller sees it); one that came back a moment ago is lent without the round trip, and a
server lost in that moment fails the call as one lost during it would."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from xorj.errors import LedgerUnavailableError
from xorj.ledger.pool import CHECK_BYPASS_SECONDS, async_pool, open_pool, translated_errors


def _backend_pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def _terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            time.sleep(0.01)


def test_an_idle_connection_is_checked_and_a_dead_one_replaced(ledger_dsn):
    with open_pool(ledger_dsn, min_size=1, max_size=1) as pool:
        with pool.connection() as conn:
            first = _backend_pid(conn)
        _terminate(ledger_dsn, first)
        time.sleep(CHECK_BYPASS_SECONDS + 0.2)
        with translated_errors(), pool.connection() as conn:
            second = _backend_pid(conn)
    assert second != first


def test_a_connection_back_a_moment_ago_is_lent_unchecked(ledger_dsn):
    with open_pool(ledger_dsn, min_size=1, max_size=1) as pool:
        with pool.connection() as conn:
            first = _backend_pid(conn)
        _terminate(ledger_dsn, first)
        with pytest.raises(LedgerUnavailableError), translated_errors(), pool.connection() as conn:
            conn.execute("SELECT 1")  # no check: the dead session is the caller's to find
        with translated_errors(), pool.connection() as conn:  # the broken one was not put back
            assert _backend_pid(conn) != first


def test_the_asyncio_pool_checks_an_idle_connection(ledger_dsn):
    async def run() -> tuple[int, int]:
        pool = async_pool(ledger_dsn, min_size=1, max_size=1)
        await pool.open(wait=True)
        try:
            async with pool.connection() as conn:
                first = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
            await asyncio.to_thread(_terminate, ledger_dsn, first)
            await asyncio.sleep(CHECK_BYPASS_SECONDS + 0.2)
            async with pool.connection() as conn:
                second = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
            return first, second
        finally:
            await pool.close()

    first, second = asyncio.run(run())
    assert second != first
