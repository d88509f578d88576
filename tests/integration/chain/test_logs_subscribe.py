"""The local chain's PubSub WebSocket: logsSubscribe with a mentions filter notifies the transactions
that mention the address (signature, err, logs) once their block is confirmed, and nothing else;
malformed subscriptions are refused as real nodes refuse them."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from solders.keypair import Keypair

from tests.integration.watcher.helpers import Leader, landed_slot, run

pytestmark = [pytest.mark.chain]


def test_logs_subscribe_mentions(local_chain) -> None:
    leader = Leader(local_chain)
    run(leader.fund())
    bystander = str(Keypair().pubkey())

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(local_chain.rpc_url.replace("http://", "ws://")) as socket:
            refusals = []
            for params in ([{"mentions": [leader.pubkey, bystander]}], [{"all": True}], [{"mentions": ["nope"]}],
                           [{"mentions": [leader.pubkey]}, {"commitment": "soon"}]):
                await socket.send_json({"jsonrpc": "2.0", "id": 9, "method": "logsSubscribe", "params": params})
                refusals.append(await socket.receive_json(timeout=10))
            subscriptions = {}
            for n, address in enumerate((leader.pubkey, bystander)):
                await socket.send_json({"jsonrpc": "2.0", "id": n, "method": "logsSubscribe",
                                        "params": [{"mentions": [address]}, {"commitment": "confirmed"}]})
                answer = await socket.receive_json(timeout=10)
                subscriptions[answer["result"]] = address
            signature = await leader.swap("USDC", "SOL", 10**6)
            notes = []
            while not notes:
                notes.append(await socket.receive_json(timeout=10))
            await asyncio.sleep(1.0)  # anything else would have come by now
            try:
                while True:
                    notes.append(await socket.receive_json(timeout=0.2))
            except TimeoutError:
                pass
            return refusals, [dict(n, signature=signature, sub=subscriptions) for n in notes], []

    refusals, notes, _ = run(scenario())
    assert [r["error"]["code"] for r in refusals] == [-32602] * 4
    assert "Only 1 address" in refusals[0]["error"]["message"]
    [note] = notes
    value = note["params"]["result"]["value"]
    assert note["method"] == "logsNotification" and note["sub"][note["params"]["subscription"]] == leader.pubkey
    assert value["signature"] == note["signature"] and value["err"] is None and value["logs"]
    assert note["params"]["result"]["context"]["slot"] == landed_slot(local_chain.rpc_url, note["signature"])
