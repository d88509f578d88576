"""The gathering of one tick: the first caller waits the window for others, or, given a crowd (how
many callers could come at most), only until that many are in; each caller gets its own key's answer,
and the tick's keys are answered in one call."""

from __future__ import annotations

import asyncio
import time

from xorj.chain.ticks import TickBatcher


class _Recording(TickBatcher[str, str]):
    def __init__(self, *, window: float, crowd=None) -> None:
        super().__init__(window=window, crowd=crowd)
        self.calls: list[list[str]] = []

    async def answer(self, keys: list[str]) -> dict[str, str]:
        self.calls.append(keys)
        return {k: k.upper() for k in keys}


async def _late(batcher: _Recording, key: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return await batcher.read(key)


def _timed(coro) -> tuple[object, float]:
    started = time.monotonic()
    result = asyncio.run(coro)
    return result, time.monotonic() - started


def test_without_a_crowd_a_lone_caller_waits_the_window():
    batcher = _Recording(window=0.2)
    answer, took = _timed(batcher.read("a"))
    assert answer == "A" and took >= 0.2
    assert batcher.calls == [["a"]]


def test_a_lone_caller_of_a_crowd_of_one_waits_for_nobody():
    batcher = _Recording(window=5.0, crowd=lambda: 1)
    answer, took = _timed(batcher.read("a"))
    assert answer == "A" and took < 1.0
    assert batcher.calls == [["a"]]


def test_a_tick_flushes_when_its_whole_crowd_is_in_and_answers_them_in_one_call():
    batcher = _Recording(window=5.0, crowd=lambda: 3)

    async def three():
        return await asyncio.gather(_late(batcher, "a", 0), _late(batcher, "b", 0.02), _late(batcher, "a", 0.04))

    answers, took = _timed(three())
    assert answers == ["A", "B", "A"] and took < 1.0
    assert batcher.calls == [["a", "b"]]  # one call, each distinct key once


def test_a_tick_short_of_its_crowd_waits_the_window_for_the_rest():
    batcher = _Recording(window=0.2, crowd=lambda: 3)

    async def two():
        return await asyncio.gather(_late(batcher, "a", 0), _late(batcher, "b", 0.02))

    answers, took = _timed(two())
    assert answers == ["A", "B"] and took >= 0.2
    assert batcher.calls == [["a", "b"]]


def test_a_caller_after_the_flush_starts_the_next_tick():
    batcher = _Recording(window=5.0, crowd=lambda: 1)

    async def two_in_a_row():
        return [await batcher.read("a"), await batcher.read("b")]

    answers, took = _timed(two_in_a_row())
    assert answers == ["A", "B"] and took < 1.0
    assert batcher.calls == [["a"], ["b"]]
