"""The swap guard's validity reads shared by the builds of one tick: each build still gets its own
blockhash's validity and a latest blockhash read AFTER that validity answer (the bound the ledger
records), with one check per distinct blockhash and one latest read per tick.

The node is an httpx MockTransport speaking JSON-RPC 2.0: the point is the order and number of calls."""

from __future__ import annotations

import asyncio
import json

import httpx
from solders.hash import Hash

from xorj.chain.rpc import SolanaRpc
from xorj.chain.swap_guard import ValidityReader

FRESH, STALE = Hash.new_unique(), Hash.new_unique()
LATEST = Hash.new_unique()


def _node(calls: list[str]):
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method = body["method"]
        calls.append(method if method != "isBlockhashValid" else f"isBlockhashValid:{body['params'][0]}")
        if method == "isBlockhashValid":
            value: object = body["params"][0] == str(FRESH)
        else:
            value = {"blockhash": str(LATEST), "lastValidBlockHeight": 500}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                         "result": {"context": {"slot": 9}, "value": value}})
    return handler


async def test_builds_of_one_tick_share_one_check_per_blockhash_and_one_latest_read_after_them() -> None:
    calls: list[str] = []
    async with SolanaRpc("http://node.test/", transport=httpx.MockTransport(_node(calls))) as rpc:
        reader = ValidityReader(rpc)
        fresh = await asyncio.gather(*(reader.read(FRESH) for _ in range(6)), reader.read(STALE))
    assert [v.valid for v in fresh] == [True] * 6 + [False]
    assert all(v.latest is not None and v.latest.last_valid_block_height == 500 for v in fresh[:6])
    assert fresh[6].latest is None
    assert sorted(calls[:2]) == sorted([f"isBlockhashValid:{FRESH}", f"isBlockhashValid:{STALE}"])
    assert calls[2:] == ["getLatestBlockhash"]  # one latest read, after every validity answer


async def test_no_valid_blockhash_reads_no_latest_and_a_later_build_starts_a_new_tick() -> None:
    calls: list[str] = []
    async with SolanaRpc("http://node.test/", transport=httpx.MockTransport(_node(calls))) as rpc:
        reader = ValidityReader(rpc)
        stale = await reader.read(STALE)
        fresh = await reader.read(FRESH)
    assert (stale.valid, stale.latest) == (False, None)
    assert fresh.valid and fresh.latest is not None
    assert calls == [f"isBlockhashValid:{STALE}", f"isBlockhashValid:{FRESH}", "getLatestBlockhash"]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_valid_answer_is_reused_within_a_slot_with_the_same_bound_and_read_again_after_it() -> None:
    calls: list[str] = []
    clock = _Clock()
    async with SolanaRpc("http://node.test/", transport=httpx.MockTransport(_node(calls))) as rpc:
        reader = ValidityReader(rpc, reuse_for=0.4, clock=clock)
        first = await reader.read(FRESH)
        clock.now += 0.3
        reused = await reader.read(FRESH)
        assert calls == [f"isBlockhashValid:{FRESH}", "getLatestBlockhash"]  # nothing asked the second time
        assert reused == first and reused.latest is not None and reused.latest.last_valid_block_height == 500
        clock.now += 0.2  # past the reuse window: the RPC is asked again
        again = await reader.read(FRESH)
    assert again.valid
    assert calls == [f"isBlockhashValid:{FRESH}", "getLatestBlockhash"] * 2


async def test_an_invalid_answer_is_never_reused_our_rpc_may_only_be_behind() -> None:
    calls: list[str] = []
    clock = _Clock()
    async with SolanaRpc("http://node.test/", transport=httpx.MockTransport(_node(calls))) as rpc:
        reader = ValidityReader(rpc, reuse_for=0.4, clock=clock)
        assert not (await reader.read(STALE)).valid
        assert not (await reader.read(STALE)).valid
    assert calls == [f"isBlockhashValid:{STALE}"] * 2


async def test_a_reused_answer_is_only_for_the_blockhash_it_was_read_for() -> None:
    calls: list[str] = []
    async with SolanaRpc("http://node.test/", transport=httpx.MockTransport(_node(calls))) as rpc:
        reader = ValidityReader(rpc, clock=_Clock())
        await reader.read(FRESH)
        other = await reader.read(STALE)
    assert not other.valid and other.latest is None
    assert calls == [f"isBlockhashValid:{FRESH}", "getLatestBlockhash", f"isBlockhashValid:{STALE}"]
