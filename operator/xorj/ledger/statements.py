"""Ledger transactions written once and run on a blocking or an asyncio connection (sans-I/O).

A transaction body is a generator: it yields each SQL :class:`Statement` (the text, its parameters,
what to fetch and the row factory) and is sent back the statement's result; what it returns is the
transaction's result. The SQL, the domain transition it applies and its checks (leases, fencing
tokens, idempotent repeats) are written once, in the body. :func:`run` drives a body on a psycopg
``Connection`` (the operator, the CLI, the watcher, the tests); :func:`run_async` drives the same body
on an ``AsyncConnection`` (the executor's event loop), with no thread in between. psycopg's own
protocol code is built the same way: generators driven by a blocking or an asyncio loop.

Neither runner begins or ends the transaction: the pool's connection context of the ledger does
(commit on success, rollback on any error), so a body's statements are one transaction either way.
A database error is thrown into the body where its statement was yielded, then propagates.

Bodies compose with ``yield from``; the helpers below (:func:`one`, :func:`rows`, :func:`rowcount`,
:func:`copy_in`, :func:`records`, :func:`record`) are the only places a statement is yielded.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg.rows import BaseRowFactory, DictRow, class_row, dict_row

_T = TypeVar("_T")
_R = TypeVar("_R")

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]


class Fetch(enum.Enum):
    ONE = "one"  # the first row, or None
    ALL = "all"  # every row
    ROWCOUNT = "rowcount"  # the number of rows the statement changed
    COPY_IN = "copy_in"  # COPY ... FROM STDIN: send the statement's rows (its result is None)


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a transaction body, as data."""

    sql: str
    params: Params
    fetch: Fetch
    row_factory: BaseRowFactory[Any] = field(default=dict_row)
    copy_rows: Sequence[Sequence[Any]] = ()  # the rows a COPY_IN statement sends


# A transaction body (or a part of one) whose result is _T.
Step: TypeAlias = Generator[Statement, Any, _T]


def one(sql: str, params: Params = ()) -> Step[DictRow | None]:
    """The statement's first row as a dict, None when there is none."""
    row: DictRow | None = yield Statement(sql, params, Fetch.ONE)
    return row


def rows(sql: str, params: Params = ()) -> Step[list[DictRow]]:
    """The statement's rows as dicts."""
    found: list[DictRow] = yield Statement(sql, params, Fetch.ALL)
    return found


def rowcount(sql: str, params: Params = ()) -> Step[int]:
    """Run the statement; how many rows it changed."""
    changed: int = yield Statement(sql, params, Fetch.ROWCOUNT)
    return changed


def copy_in(sql: str, copy_rows: Iterable[Sequence[Any]]) -> Step[None]:
    """``COPY ... FROM STDIN`` of ``copy_rows`` (many rows in a few round trips)."""
    yield Statement(sql, (), Fetch.COPY_IN, copy_rows=tuple(copy_rows))


def records(record: type[_R], sql: str, params: Params = ()) -> Step[list[_R]]:
    """The statement's rows as ``record`` instances (psycopg's class_row: the selected column names are
    the record's field names)."""
    found: list[_R] = yield Statement(sql, params, Fetch.ALL, class_row(record))
    return found


def record(record: type[_R], sql: str, params: Params = ()) -> Step[_R | None]:
    """The statement's first row as a ``record`` (see :func:`records`), None when there is none."""
    found: _R | None = yield Statement(sql, params, Fetch.ONE, class_row(record))
    return found


class _Driver:
    """Steps a body: :attr:`pending` is the statement it waits on (None once it returned :attr:`value`)."""

    def __init__(self, body: Step[Any]) -> None:
        self._body = body
        self.pending: Statement | None = None
        self.value: Any = None
        self._advance(body.send, None)

    def _advance(self, move: Any, argument: object) -> None:
        try:
            self.pending = move(argument)
        except StopIteration as done:
            self.pending = None
            self.value = done.value

    def send(self, result: object) -> None:
        self._advance(self._body.send, result)

    def throw(self, error: BaseException) -> None:
        self._advance(self._body.throw, error)


def run(conn: psycopg.Connection[Any], body: Step[_T]) -> _T:
    """Drive ``body`` on a blocking connection, in the transaction the caller opened on it."""
    driver = _Driver(body)
    while (statement := driver.pending) is not None:
        try:
            with conn.cursor(row_factory=statement.row_factory) as cur:
                if statement.fetch is Fetch.COPY_IN:
                    with cur.copy(statement.sql) as copy:
                        for row in statement.copy_rows:
                            copy.write_row(row)
                    result: object = None
                else:
                    cur.execute(statement.sql, statement.params)
                    result = (cur.fetchone() if statement.fetch is Fetch.ONE
                              else cur.fetchall() if statement.fetch is Fetch.ALL else cur.rowcount)
        except BaseException as exc:
            driver.throw(exc)
        else:
            driver.send(result)
    value: _T = driver.value
    return value


async def run_async(conn: psycopg.AsyncConnection[Any], body: Step[_T]) -> _T:
    """Drive ``body`` on an asyncio connection, in the transaction the caller opened on it."""
    driver = _Driver(body)
    while (statement := driver.pending) is not None:
        try:
            async with conn.cursor(row_factory=statement.row_factory) as cur:
                if statement.fetch is Fetch.COPY_IN:
                    async with cur.copy(statement.sql) as copy:
                        for row in statement.copy_rows:
                            await copy.write_row(row)
                    result: object = None
                else:
                    await cur.execute(statement.sql, statement.params)
                    result = (await cur.fetchone() if statement.fetch is Fetch.ONE
                              else await cur.fetchall() if statement.fetch is Fetch.ALL else cur.rowcount)
        except BaseException as exc:
            driver.throw(exc)
        else:
            driver.send(result)
    value: _T = driver.value
    return value
