"""TickBatcher (xorj.chain.ticks): a lone caller is answered at once; callers of one moment share a
tick; callers arriving while a tick is answered share the next, which starts when that one ends or
after at most ``window``; a tick's failure reaches each of its callers."""

from __future__ import annotations

import asyncio
import time

import pytest

from xorj.chain.ticks import TickBatcher


class Recorded(TickBatcher[str, str]):
    """Answers each key with its upper case after ``delay`` seconds, and records every tick's keys."""

    def __init__(self, *, window: float, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__(window=window)
        self.delay = delay
        self.fail = fail
        self.ticks: list[list[str]] = []

    async def answer(self, keys: list[str]) -> dict[str, str]:
        self.ticks.append(keys)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("the source is away")
        return {k: k.upper() for k in keys}


async def test_a_lone_caller_waits_for_no_window() -> None:
    batcher = Recorded(window=0.5)
    started = time.monotonic()
    assert await batcher.read("a") == "A"
    assert time.monotonic() - started < 0.1  # not the 0.5 s window
    assert batcher.ticks == [["a"]]


async def test_callers_of_one_moment_share_one_tick_and_each_gets_its_answer() -> None:
    batcher = Recorded(window=0.5)
    answers = await asyncio.gather(*(batcher.read(k) for k in ("a", "b", "a", "c")))
    assert answers == ["A", "B", "A", "C"]
    assert batcher.ticks == [["a", "b", "c"]]


async def test_callers_arriving_during_a_tick_share_the_next_once_it_ends() -> None:
    batcher = Recorded(window=5.0, delay=0.1)
    first = asyncio.create_task(batcher.read("a"))
    await asyncio.sleep(0.02)  # the first tick is being answered
    later = [asyncio.create_task(batcher.read(k)) for k in ("b", "c")]
    await asyncio.sleep(0.02)
    later.append(asyncio.create_task(batcher.read("d")))
    started = time.monotonic()
    assert await asyncio.gather(first, *later) == ["A", "B", "C", "D"]
    assert batcher.ticks == [["a"], ["b", "c", "d"]]
    assert time.monotonic() - started < 1.0  # started when the first ended, not after the 5 s window


async def test_a_long_tick_delays_the_next_by_at_most_the_window() -> None:
    batcher = Recorded(window=0.05, delay=0.5)
    first = asyncio.create_task(batcher.read("a"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.read("b"))
    await asyncio.sleep(0.2)
    assert batcher.ticks == [["a"], ["b"]]  # the second began while the first was still answered
    assert await asyncio.gather(first, second) == ["A", "B"]


async def test_a_failed_tick_fails_each_of_its_callers_and_the_next_tick_is_fresh() -> None:
    batcher = Recorded(window=0.01, fail=True)
    results = await asyncio.gather(batcher.read("a"), batcher.read("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    batcher.fail = False
    assert await batcher.read("a") == "A"
    assert batcher.ticks == [["a", "b"], ["a"]]


async def test_a_cancelled_tick_is_not_left_in_flight() -> None:
    batcher = Recorded(window=5.0, delay=10.0)
    caller = asyncio.create_task(batcher.read("a"))
    await asyncio.sleep(0.02)
    assert batcher._flush is None and len(batcher._answering) == 1
    next(iter(batcher._answering)).cancel()
    with pytest.raises(RuntimeError):
        await caller
    await asyncio.sleep(0)
    assert not batcher._answering
    batcher.delay = 0.0
    started = time.monotonic()
    assert await batcher.read("b") == "B"
    assert time.monotonic() - started < 1.0
