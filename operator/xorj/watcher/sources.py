"""The watcher's sources behind one interface (:class:`SignalSource`): each reports candidates
(leader, signature) to ``deliver`` (:meth:`xorj.watcher.pipeline.Watcher.process`) and nothing else.

- :class:`PollingSource`: per followed leader, ``getSignaturesForAddress`` back to the leader's cursor,
  oldest first, each delivered in order; the cursor moves in the ledger transaction that handles each
  one, so a crash or an outage resumes exactly where it stopped (the baseline, and the gap filler
  behind the push sources). A leader without a cursor starts from its newest page: transactions in
  ``baseline_seconds`` before now are delivered (the filters' signal age decides about them), older
  ones only set the cursor (a newly followed leader's past is not copied).
- :class:`WebhookSource`: a Helius-enhanced-webhook-compatible receiver (``POST /webhook``): the
  ``Authorization`` header compared in constant time, the payload checked
  (:func:`xorj.watcher.webhook.leader_signatures`), deliveries deduplicated, 200 at once and the
  candidates handled by workers behind a bounded queue; 401/400/413/503 counted, never a crash.
- :class:`xorj.watcher.websocket.WebSocketSource`: PubSub ``logsSubscribe`` (``mentions``), one
  subscription per followed leader, for push latency.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from solders.pubkey import Pubkey

from xorj.chain.errors import ChainCallError
from xorj.errors import InvalidInputError, LedgerError, LedgerUnavailableError
from xorj.ledger import lead_signals
from xorj.ledger.aio import AsyncLedger
from xorj.traders.history import ChainHistory
from xorj.watcher.follows import FollowBook
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Candidate, Outcome
from xorj.watcher.webhook import leader_signatures

log = logging.getLogger(__name__)

Deliver = Callable[[Candidate], Awaitable[Outcome]]


class SignalSource(Protocol):
    name: str

    async def run(self, deliver: Deliver) -> None: ...


class PollingSource:
    name = "poll"

    def __init__(self, history: ChainHistory, ledger: AsyncLedger, book: FollowBook, metrics: WatcherMetrics, *,
                 interval: float = 1.0, baseline_seconds: int = 120, clock: Callable[[], float] = time.time) -> None:
        self.history = history
        self.ledger = ledger
        self.book = book
        self.metrics = metrics
        self.interval = interval
        self.baseline_seconds = baseline_seconds
        self.clock = clock
        self.last_round: float | None = None
        # until a first round completes, the lag runs from the start: a watcher restarted into an RPC
        # outage has read nothing since, and must not report 0 (it is as late as its outage is long)
        self.started = clock()

    async def poll_leader(self, leader: str, deliver: Deliver) -> int:
        """One leader: deliver what is new since its cursor, in chain order. Returns how many."""
        cursor = await self.ledger.run(lead_signals.cursor(leader))
        if cursor is None:
            page = await self.history.rpc.signatures_for_address(Pubkey.from_string(leader), limit=1000,
                                                                 commitment=self.history.commitment,
                                                                 timeout=self.history.timeout)
            if not page:
                return 0
            listed = list(reversed(page))  # oldest first
            since = self.clock() - self.baseline_seconds
            split = next((i for i, s in enumerate(listed) if s.block_time is not None and s.block_time >= since),
                         len(listed))
            if split:  # the newest transaction too old to copy: the cursor starts there
                old = listed[split - 1]
                await self.ledger.run(lead_signals.advance_cursor(leader, old.signature, old.slot))
            listed = listed[split:]
        else:
            listed = await self.history.signatures_since(leader, cursor.cursor_signature)
        for entry in listed:
            if entry.failed:
                await self.ledger.run(lead_signals.advance_cursor(leader, entry.signature, entry.slot))
                continue
            await deliver(Candidate(leader, entry.signature, self.name, listed_slot=entry.slot))
        return len(listed)

    async def poll_round(self, deliver: Deliver) -> None:
        leaders = sorted(self.book.leaders())
        self.metrics.followed_leaders.set(len(leaders))
        complete = True
        for leader in leaders:
            try:
                await self.poll_leader(leader, deliver)
            except (ChainCallError, LedgerError) as exc:  # this leader waits for the next round, cursor kept
                complete = False
                if isinstance(exc, LedgerError):
                    method = "ledger"
                    reason = "LEDGER_UNAVAILABLE" if isinstance(exc, LedgerUnavailableError) else "LEDGER_ERROR"
                else:
                    method, reason = exc.method or "rpc", exc.reason.value
                self.metrics.rpc_errors.labels(method, reason).inc()
                log.warning("poll of a leader failed; retried next round",
                            extra={"leader": leader, "error": f"{type(exc).__name__}: {exc}"[:300]})
        if complete:
            self.last_round = self.clock()
        since = self.last_round if self.last_round is not None else self.started
        self.metrics.lag_seconds.set(max(0.0, self.clock() - since))

    async def run(self, deliver: Deliver) -> None:
        while True:
            await self.poll_round(deliver)
            await asyncio.sleep(self.interval)


class WebhookSource:
    name = "webhook"

    def __init__(self, auth_token: str, book: FollowBook, metrics: WatcherMetrics, *, queue_size: int = 10_000,
                 workers: int = 4, max_body_bytes: int = 4 * 1024 * 1024, remember: int = 100_000) -> None:
        if len(auth_token) < 16:
            raise InvalidInputError("webhook auth token: must be at least 16 characters")
        self._token = auth_token.encode()
        self.book = book
        self.metrics = metrics
        self.queue: asyncio.Queue[Candidate] = asyncio.Queue(maxsize=queue_size)
        self.workers = workers
        self.max_body_bytes = max_body_bytes
        self._seen: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._remember = remember

    def routes(self, app: web.Application, path: str = "/webhook") -> None:
        app.router.add_post(path, self.handle)

    def _reject(self, status: int, reason: str, message: str) -> web.Response:
        self.metrics.webhook_rejected.labels(reason).inc()
        return web.json_response({"error": message}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, self._token):
            return self._reject(401, "unauthorized", "unauthorized")
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._reject(413, "too_large", f"payload: at most {self.max_body_bytes} bytes")
        try:
            raw = await request.content.read(self.max_body_bytes + 1)
            if len(raw) > self.max_body_bytes:
                return self._reject(413, "too_large", f"payload: at most {self.max_body_bytes} bytes")
            body = json.loads(raw)
            pairs = leader_signatures(body, self.book.leaders())
        except (ValueError, InvalidInputError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return self._reject(400, "malformed", str(exc)[:300])
        queued = 0
        for leader, signature in pairs:
            key = (leader, signature)
            if key in self._seen:
                self.metrics.webhook_duplicates.inc()
                continue
            try:
                self.queue.put_nowait(Candidate(leader, signature, self.name))
            except asyncio.QueueFull:
                # Helius retries a failed delivery; polling fills the gap if it gives up
                return self._reject(503, "overloaded", "queue full: retry later")
            self._seen[key] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            queued += 1
        return web.json_response({"queued": queued})

    async def _work(self, deliver: Deliver) -> None:
        while True:
            candidate = await self.queue.get()
            try:
                await deliver(candidate)
            except Exception as exc:  # one bad report must not stop the receiver: polling retries it
                self.metrics.signals.labels(self.name, "error").inc()
                log.warning("webhook candidate not handled; polling will retry it",
                            extra={"signature": candidate.signature, "error": f"{type(exc).__name__}: {exc}"[:300]})
                self._seen.pop((candidate.leader, candidate.signature), None)
            finally:
                self.queue.task_done()

    async def run(self, deliver: Deliver) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(self.workers):
                group.create_task(self._work(deliver))
