"""The admission claim's group commit (ADMISSION_CLAIM_HOLD): a claim woken by an admission waits while
the executor prepares other trades, so trades admitted meanwhile are claimed together when those are
done; never past its limit, never once stopping, not at all when nothing is prepared."""

from __future__ import annotations

import asyncio
import time

from xorj.executor.service import hold_for_crowd


def _held(preparing, *, limit: float = 0.5, stop_after: float | None = None) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        if stop_after is not None:
            loop.call_later(stop_after, stop.set_result, None)
        started = time.monotonic()
        await hold_for_crowd(preparing, stop, until=started + limit)
        return time.monotonic() - started

    return asyncio.run(run())


def test_an_idle_executor_is_not_held():
    assert _held(lambda: 0) < 0.05


def test_the_claim_waits_until_the_trades_being_prepared_are_done():
    done_at = time.monotonic() + 0.1
    held = _held(lambda: 3 if time.monotonic() < done_at else 0)
    assert 0.09 <= held < 0.3, held


def test_the_hold_ends_at_its_limit_however_busy_the_executor():
    held = _held(lambda: 5, limit=0.1)
    assert 0.09 <= held < 0.3, held


def test_stopping_ends_the_hold():
    held = _held(lambda: 5, limit=5.0, stop_after=0.05)
    assert held < 1.0, held
