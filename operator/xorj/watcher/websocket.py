"""The push source: Solana PubSub ``logsSubscribe`` with a ``mentions`` filter, one subscription per
followed leader (nodes serve one address per subscription). A notification carries only the
signature, err and logs: the pipeline reads the transaction with ``getTransaction`` before anything
is accepted, as for a webhook. The socket is reconnected with a backoff after any failure, and the
subscriptions follow the follow table; polling fills whatever a gap in the stream missed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import Any

import aiohttp

from xorj.watcher.follows import FollowBook
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Candidate
from xorj.watcher.sources import Deliver

log = logging.getLogger(__name__)

_SIGNATURE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{64,88}$")


class WebSocketSource:
    name = "websocket"

    def __init__(self, url: str, book: FollowBook, metrics: WatcherMetrics, *, commitment: str = "confirmed",
                 resubscribe_seconds: float = 2.0, workers: int = 4, max_backoff_seconds: float = 30.0) -> None:
        self.url = url
        self.book = book
        self.metrics = metrics
        self.commitment = commitment
        self.resubscribe_seconds = resubscribe_seconds
        self.workers = workers
        self.max_backoff_seconds = max_backoff_seconds
        self.queue: asyncio.Queue[Candidate] = asyncio.Queue(maxsize=10_000)
        self.subscribed = asyncio.Event()  # set once every followed leader has a subscription
        self._ids = itertools.count(1)

    async def _work(self, deliver: Deliver) -> None:
        while True:
            candidate = await self.queue.get()
            try:
                await deliver(candidate)
            except Exception as exc:  # polling retries what a push could not finish
                self.metrics.signals.labels(self.name, "error").inc()
                log.warning("websocket candidate not handled; polling will retry it",
                            extra={"signature": candidate.signature, "error": f"{type(exc).__name__}: {exc}"[:300]})
            finally:
                self.queue.task_done()

    async def _session(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        by_subscription: dict[int, str] = {}
        by_leader: dict[str, int] = {}
        pending: dict[int, tuple[str, str]] = {}  # request id -> (verb, leader)

        async def sync() -> None:
            wanted = self.book.leaders()
            for leader in sorted(wanted - set(by_leader) - {pending_leader for _, pending_leader in pending.values()}):
                request = next(self._ids)
                pending[request] = ("subscribe", leader)
                await socket.send_json({"jsonrpc": "2.0", "id": request, "method": "logsSubscribe",
                                        "params": [{"mentions": [leader]}, {"commitment": self.commitment}]})
            for leader in sorted(set(by_leader) - wanted):
                request = next(self._ids)
                sub_id = by_leader.pop(leader)
                by_subscription.pop(sub_id, None)
                pending[request] = ("unsubscribe", leader)
                await socket.send_json({"jsonrpc": "2.0", "id": request, "method": "logsUnsubscribe",
                                        "params": [sub_id]})
            if wanted and wanted <= set(by_leader):
                self.subscribed.set()

        async def resync() -> None:
            while True:
                await sync()
                await asyncio.sleep(self.resubscribe_seconds)

        syncing = asyncio.create_task(resync())
        try:
            async for message in socket:
                if message.type != aiohttp.WSMsgType.TEXT:
                    if message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
                    continue
                try:
                    body: Any = message.json()
                except ValueError:
                    self.metrics.signals.labels(self.name, "malformed").inc()
                    continue
                if not isinstance(body, dict):
                    self.metrics.signals.labels(self.name, "malformed").inc()
                    continue
                if "id" in body and body["id"] in pending:
                    verb, leader = pending.pop(body["id"])
                    result = body.get("result")
                    if verb == "subscribe" and isinstance(result, int) and not isinstance(result, bool):
                        by_subscription[result] = leader
                        by_leader[leader] = result
                    elif verb == "subscribe":
                        log.warning("logsSubscribe refused", extra={"leader": leader,
                                                                    "error": str(body.get("error"))[:200]})
                    continue
                self._notification(body, by_subscription)
        finally:
            syncing.cancel()
            self.subscribed.clear()

    def _notification(self, body: dict[str, Any], by_subscription: dict[int, str]) -> None:
        params: Any = body.get("params")
        try:
            leader = by_subscription[params["subscription"]]
            value = params["result"]["value"]
            signature = value["signature"]
            failed = value.get("err") is not None
        except (KeyError, TypeError):
            self.metrics.signals.labels(self.name, "malformed").inc()
            return
        if not isinstance(signature, str) or not _SIGNATURE.match(signature):
            self.metrics.signals.labels(self.name, "malformed").inc()
            return
        if failed:
            return  # a failed transaction moved nothing to copy
        try:
            self.queue.put_nowait(Candidate(leader, signature, self.name))
        except asyncio.QueueFull:
            self.metrics.signals.labels(self.name, "dropped").inc()  # polling will find it

    async def run(self, deliver: Deliver) -> None:
        workers = [asyncio.create_task(self._work(deliver)) for _ in range(self.workers)]
        backoff = 0.5
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    try:
                        async with http.ws_connect(self.url, heartbeat=30) as socket:
                            backoff = 0.5
                            await self._session(socket)
                    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                        log.warning("websocket disconnected; reconnecting",
                                    extra={"error": f"{type(exc).__name__}"})
                    self.metrics.rpc_errors.labels("logsSubscribe", "RPC_ERROR").inc()
                    await asyncio.sleep(backoff)
                    backoff = min(self.max_backoff_seconds, backoff * 2)
        finally:
            for task in workers:
                task.cancel()
