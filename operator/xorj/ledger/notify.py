"""LISTEN/NOTIFY on trade changes.

A trigger on ``trades`` sends ``{"trade_id", "strategy", "state"}`` on the ledger's trades channel for
every admission and state change; Postgres delivers it only when the writing transaction commits. Each
listener holds one dedicated connection (not a pooled one: LISTEN is per session).

Channels are named by a secret of the ledger (migration 0016): a listener asks the ledger for the
name of its kind of channel, and the answer depends on its login. The owner hears every namespace;
an executor login hears only its own namespace's admissions, and no other kind. A name is a
credential: it is never logged.

Notifications are a wake-up call, not the record: one sent while a listener was disconnected is lost,
so consumers re-read the ledger (claim_trades, get_trade) after reconnecting rather than trusting that
they saw every change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Generic, Literal, Self, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from xorj.domain.trades import TradeState
from xorj.errors import LedgerError
from xorj.ledger.pool import translated_errors
from xorj.ledger.records import TradeNotification

log = logging.getLogger(__name__)

_Note = TypeVar("_Note")

ChannelKind = Literal["trades", "admissions", "alerts"]
"""What a channel carries: ``trades``, every admission and state change (:class:`TradeNotification`);
``admissions``, the strategy key of each transaction that admitted PENDING trades (migration 0015);
``alerts``, each new alert row."""

_CHANNEL_OF = "SELECT ledger_channel(%s)"


def listen(conn: psycopg.Connection, kind: ChannelKind) -> None:
    """LISTEN on the ledger's ``kind`` channel for ``conn``'s login: the ledger names it (a login with
    none is refused, and the refusal rises as :class:`~xorj.errors.LedgerError` under
    :func:`~xorj.ledger.pool.translated_errors`)."""
    row = conn.execute(_CHANNEL_OF, (kind,)).fetchone()
    assert row is not None, "a SELECT without FROM returns one row"
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))


async def listen_async(conn: psycopg.AsyncConnection, kind: ChannelKind) -> None:
    """:func:`listen` on an asyncio connection."""
    row = await (await conn.execute(_CHANNEL_OF, (kind,))).fetchone()
    assert row is not None, "a SELECT without FROM returns one row"
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))


def parse_trade_notification(payload: str) -> TradeNotification:
    try:
        data = json.loads(payload)
        return TradeNotification(
            trade_id=int(data["trade_id"]), strategy=str(data["strategy"]), state=TradeState(data["state"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"malformed trades channel payload {payload[:200]!r}: {exc}") from exc


class TradeListener:
    """Blocking listener: ``with TradeListener(dsn) as l: for n in l.wait(timeout=5): ...``.

    ``strategy`` filters notifications to one strategy (the executor's).
    """

    def __init__(self, dsn: str, *, strategy: str | None = None) -> None:
        self.strategy = strategy
        with translated_errors():
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
            try:
                listen(self._conn, "trades")
            except BaseException:
                self._conn.close()
                raise

    def wait(self, timeout: float, max_count: int | None = None) -> list[TradeNotification]:
        """Notifications received within ``timeout`` seconds (returns early once ``max_count`` arrived)."""
        received: list[TradeNotification] = []
        with translated_errors():
            for notify in self._conn.notifies(timeout=timeout, stop_after=max_count):
                note = parse_trade_notification(notify.payload)
                if self.strategy is None or note.strategy == self.strategy:
                    received.append(note)
        return received

    def __iter__(self) -> Iterator[TradeNotification]:
        """Forever, one notification at a time (a lost connection raises LedgerUnavailableError)."""
        with translated_errors():
            for notify in self._conn.notifies():
                note = parse_trade_notification(notify.payload)
                if self.strategy is None or note.strategy == self.strategy:
                    yield note

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncListener(Generic[_Note]):
    """An asyncio LISTEN session on the ledger's ``kind`` channel: ``async with ... as l: async for n in l: ...``
    (``application_name``: the session's, when given; the DSN's otherwise). :meth:`_parse` turns a
    payload into what the listener yields, or None for a notification it does not want."""

    _name = "listener"

    def __init__(self, dsn: str, *, kind: ChannelKind, application_name: str | None = None) -> None:
        self._dsn = dsn if application_name is None else make_conninfo(dsn, application_name=application_name)
        self._kind: ChannelKind = kind
        self._conn: psycopg.AsyncConnection | None = None

    def _parse(self, payload: str) -> _Note | None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        with translated_errors():
            self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=10)
            try:
                await listen_async(self._conn, self._kind)
            except BaseException:
                await self._conn.close()
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def wait(self, timeout: float, max_count: int | None = None) -> list[_Note]:
        """Notifications received within ``timeout`` seconds (returns early once ``max_count`` arrived)."""
        assert self._conn is not None, f"use 'async with {type(self).__name__}(...)'"
        received: list[_Note] = []
        with translated_errors():
            async for notify in self._conn.notifies(timeout=timeout, stop_after=max_count):
                note = self._parse(notify.payload)
                if note is not None:
                    received.append(note)
        return received

    async def __aiter__(self) -> AsyncIterator[_Note]:
        assert self._conn is not None, f"use 'async with {type(self).__name__}(...)'"
        with translated_errors():
            async for notify in self._conn.notifies():
                note = self._parse(notify.payload)
                if note is not None:
                    yield note


class AsyncTradeListener(_AsyncListener[TradeNotification]):
    """asyncio listener of trade changes: ``async with AsyncTradeListener(dsn) as l: async for n in l: ...``;
    ``strategy`` filters notifications to one strategy."""

    def __init__(self, dsn: str, *, strategy: str | None = None, application_name: str | None = None) -> None:
        super().__init__(dsn, kind="trades", application_name=application_name)
        self.strategy = strategy

    def _parse(self, payload: str) -> TradeNotification | None:
        note = parse_trade_notification(payload)
        return note if self.strategy is None or note.strategy == self.strategy else None


class AsyncAdmissionListener(_AsyncListener[str]):
    """asyncio listener of admissions (the ledger's admissions channel, migrations 0015 and 0016): yields
    the strategy of each admission transaction that admitted PENDING trades of ``strategy``. Postgres
    folds identical notifications of one transaction, so a fan-out's thousand admissions are one."""

    def __init__(self, dsn: str, *, strategy: str, application_name: str | None = None) -> None:
        super().__init__(dsn, kind="admissions", application_name=application_name)
        self.strategy = strategy

    def _parse(self, payload: str) -> str | None:
        return payload if payload == self.strategy else None
