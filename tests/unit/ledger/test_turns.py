"""The asyncio ledger's turns (xorj.ledger.aio.Turns), on their own: at most ``size`` holders, the
others served in arrival order for as long as the holders make progress; a turn handed to a caller
that is cancelled at that moment goes to the next one, never lost; a queue that does not move for
``stall`` seconds fails its callers as the pool does (ledger unavailable)."""

from __future__ import annotations

import asyncio

import pytest

from xorj.errors import LedgerUnavailableError
from xorj.ledger.aio import Turns


def test_at_most_size_hold_a_turn_and_the_rest_are_served_in_arrival_order():
    async def scenario():
        turns = Turns(2, stall=5.0)
        order: list[int] = []
        holding = 0
        most = 0

        async def caller(n: int) -> None:
            nonlocal holding, most
            await turns.acquire()
            turns.moved()
            holding += 1
            most = max(most, holding)
            order.append(n)
            await asyncio.sleep(0.01)
            holding -= 1
            turns.release()

        await asyncio.gather(*(caller(n) for n in range(20)))
        return order, most, turns.waiting

    order, most, waiting = asyncio.run(scenario())
    assert order == list(range(20)) and most == 2 and waiting == 0


def test_a_turn_handed_to_a_cancelled_caller_goes_to_the_next_one():
    async def scenario():
        turns = Turns(1, stall=5.0)
        await turns.acquire()
        first = asyncio.create_task(turns.acquire())
        second = asyncio.create_task(turns.acquire())
        await asyncio.sleep(0)  # both queued
        turns.release()  # handed to the first...
        first.cancel()  # ...which is cancelled before it runs again
        await asyncio.wait_for(second, timeout=1.0)  # the turn went on to the second
        assert first.cancelled()
        turns.release()  # the second's turn comes back: free again, taken at once
        await asyncio.wait_for(turns.acquire(), timeout=0.1)

    asyncio.run(scenario())


def test_a_queue_that_does_not_move_fails_as_unavailable_and_one_that_moves_keeps_waiting():
    async def scenario():
        turns = Turns(1, stall=0.3)
        await turns.acquire()
        turns.moved()
        keeper = asyncio.create_task(turns.acquire())
        for _ in range(5):  # 0.5 s of progress by the holder (a stream of short transactions)
            await asyncio.sleep(0.1)
            turns.moved()
        assert not keeper.done()
        with pytest.raises(LedgerUnavailableError, match=r"no database connection \(PoolTimeout\)"):
            await turns.acquire()  # the holder is stuck from now on
        with pytest.raises(LedgerUnavailableError):
            await keeper  # it gave up at the same moment
        turns.release()
        await asyncio.wait_for(turns.acquire(), timeout=0.1)  # no turn lost to the callers that left
        return turns.waiting

    assert asyncio.run(scenario()) == 0
