"""Coalescing of the same read made by many trades at once: callers in a short window ("a tick")
share one round of RPC calls, and each gets the answer it would have read alone.

Subclasses say how a tick's distinct keys are answered (:meth:`TickBatcher.answer`); the waiting,
the tick's task and the delivery of answers or of the tick's failure live here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


class TickBatcher(Generic[K, R]):
    """The first caller of a tick waits ``window`` seconds for others to join; then the tick's
    distinct keys are answered together by :meth:`answer`. A failure of the tick reaches every caller
    of it (each backs off on its own); callers arriving meanwhile start the next tick."""

    def __init__(self, *, window: float) -> None:
        self.window = window
        self._waiting: dict[K, list[asyncio.Future[R]]] = {}
        self._flush: asyncio.Task[None] | None = None

    async def answer(self, keys: list[K]) -> dict[K, R]:
        """The answer for each of ``keys`` (distinct, in arrival order)."""
        raise NotImplementedError

    async def read(self, key: K) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._tick())
        return await future

    async def _tick(self) -> None:
        await asyncio.sleep(self.window)
        waiting, self._waiting = self._waiting, {}
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
