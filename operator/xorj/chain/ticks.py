"""Coalescing of the same read made by many trades at once: callers in a short window ("a tick")
share one round of RPC calls, and each gets the answer it would have read alone.

Subclasses say how a tick's distinct keys are answered (:meth:`TickBatcher.answer`); the waiting,
the tick's task and the delivery of answers or of the tick's failure live here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


Crowd = Callable[[], int]
"""How many callers could be in a tick at most, now: with a crowd, a tick stops waiting once that many
have joined. An executor's crowd is its trades that are preparing an attempt (claimed, and neither
following a sent attempt nor finished): each asks each of its batchers once, so a tick holding all
of them has nobody left to wait for, and a lone trade waits for nobody."""


class TickBatcher(Generic[K, R]):
    """The first caller of a tick waits ``window`` seconds for others to join, or less when ``crowd``
    says every possible caller has joined; then the tick's distinct keys are answered together by
    :meth:`answer`. A failure of the tick reaches every caller of it (each backs off on its own);
    callers arriving meanwhile start the next tick."""

    def __init__(self, *, window: float, crowd: Crowd | None = None) -> None:
        self.window = window
        self.crowd = crowd
        self._waiting: dict[K, list[asyncio.Future[R]]] = {}
        self._callers = 0
        self._flush: asyncio.Task[None] | None = None
        self._full: asyncio.Future[None] | None = None  # done once the tick has nobody left to wait for

    async def answer(self, keys: list[K]) -> dict[K, R]:
        """The answer for each of ``keys`` (distinct, in arrival order)."""
        raise NotImplementedError

    async def read(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        self._callers += 1
        if self._flush is None or self._flush.done():
            self._full = loop.create_future()
            self._flush = asyncio.create_task(self._tick(self._full))
        if self.crowd is not None and self._full is not None and not self._full.done() \
                and self._callers >= self.crowd():
            self._full.set_result(None)
        return await future

    async def _tick(self, full: asyncio.Future[None]) -> None:
        if not full.done():
            timer = asyncio.get_running_loop().call_later(self.window, _settle, full)
            try:
                await full
            finally:
                timer.cancel()
        waiting, self._waiting = self._waiting, {}
        self._callers = 0
        self._flush = None  # callers arriving from now on start the next tick
        try:
            answers = await self.answer(list(waiting))
        except BaseException as exc:  # every caller of the tick learns the failure
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(answers[key])


def _settle(full: asyncio.Future[None]) -> None:
    if not full.done():
        full.set_result(None)
