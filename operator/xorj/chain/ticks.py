"""Coalescing of the same read made by many trades at once: callers of one moment ("a tick") share
one round of calls, and each gets the answer it would have read alone.

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
    """Callers of one moment share a tick: their distinct keys are answered together by
    :meth:`answer`. A tick starts at once when no other is being answered (a lone trade of an idle
    executor waits for nobody); while one is, the callers arriving meanwhile gather for the next,
    which starts when the one in flight ends or ``window`` seconds have passed, whichever is first
    (so under load a burst is one round trip, and two ticks at most overlap briefly). A failure of
    the tick reaches every caller of it (each backs off on its own)."""

    def __init__(self, *, window: float) -> None:
        self.window = window
        self._waiting: dict[K, list[asyncio.Future[R]]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()

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
        # the task runs from the loop's next turn: the callers of this same moment (a fan-out's
        # gather) have all joined by then
        if self._answering:
            await asyncio.wait(set(self._answering), timeout=self.window)
        waiting, self._waiting = self._waiting, {}
        self._flush = None  # callers arriving from now on start the next tick
        current = asyncio.current_task()
        assert current is not None
        self._answering.add(current)
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
        finally:
            self._answering.discard(current)
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(answers[key])
