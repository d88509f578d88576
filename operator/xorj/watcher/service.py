"""The watcher process: the follow table, the sources, the pipeline and the projector, one asyncio
loop; ``/metrics``, ``/healthz`` and the webhook on one HTTP port. Thin wiring of
:mod:`xorj.watcher.pipeline`, :mod:`xorj.watcher.sources`, :mod:`xorj.watcher.follows` and
:mod:`xorj.watcher.projection`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from xorj.chain.prices import JupiterPriceClient
from xorj.chain.rpc import RpcTimeouts, SolanaRpc
from xorj.ledger import scores
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.records import StoredTraderScore
from xorj.traders.history import ChainHistory
from xorj.watcher.follows import FollowBook, KubeFollowBook, StaticFollowBook
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Watcher
from xorj.watcher.projection import KubeProjector
from xorj.watcher.settings import WatcherSettings
from xorj.watcher.sources import PollingSource, WebhookSource
from xorj.watcher.websocket import WebSocketSource

log = logging.getLogger(__name__)


class WatcherService:
    def __init__(self, settings: WatcherSettings) -> None:
        self.settings = settings
        self.metrics = WatcherMetrics()
        self.poller: PollingSource | None = None

    def _healthy(self) -> bool:
        """Live while polling completes rounds: no round for 10 intervals (at least a minute) is stale."""
        if self.poller is None or self.poller.last_round is None:
            return True  # starting: the first round may take a while on a long cursor gap
        stale_after = max(60.0, 10 * self.settings.watcher_poll_interval_seconds)
        return time.time() - self.poller.last_round < stale_after

    async def _serve(self, webhook: WebhookSource | None) -> web.AppRunner:
        app = web.Application(client_max_size=4 * 1024 * 1024)

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"ok": self._healthy()}, status=200 if self._healthy() else 503)

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        if webhook is not None:
            webhook.routes(app, self.settings.watcher_webhook_path)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.watcher_http_host, self.settings.watcher_http_port)
        await site.start()
        port = runner.addresses[0][1]
        if self.settings.watcher_http_port_file is not None:
            self.settings.watcher_http_port_file.write_text(str(port))
        log.info("watcher serving", extra={"port": port, "webhook": webhook is not None})
        return runner

    async def run(self) -> None:
        s = self.settings
        cash = frozenset(s.watcher_cash_mints)
        # every ledger call of the watcher is a transaction body run on this event loop (no thread hop);
        # the schema was migrated before the loop started (xorj.commands.watcher)
        ledger = AsyncLedger.for_dsn(s.ledger_dsn.get_secret_value(), name="xorj-watcher")
        await ledger.open()

        async def trader_scores() -> list[StoredTraderScore]:
            return await ledger.run(scores.list_scores(None, None, None))

        tasks: list[asyncio.Task[Any]] = []
        book: FollowBook
        projector = None
        if s.watcher_strategies_file is not None:
            book = StaticFollowBook.from_file(s.watcher_strategies_file, await trader_scores(), cash_mints=cash)
        else:
            import kubernetes

            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()
            custom = kubernetes.client.CustomObjectsApi()
            book = KubeFollowBook(custom, trader_scores, refresh_seconds=s.watcher_follow_refresh_seconds,
                                  namespaces=s.watcher_namespaces, cash_mints=cash)
            projector = KubeProjector(ledger, custom, kubernetes.client.CoreV1Api(), self.metrics,
                                      interval=s.watcher_project_seconds)
            tasks.append(asyncio.create_task(book.run(), name="follow-book"))
        prices = JupiterPriceClient(s.price_api_url, timeout=s.rpc_timeout_seconds,
                                    api_key=s.price_api_key.get_secret_value() if s.price_api_key else None)
        timeouts = RpcTimeouts(read=s.rpc_timeout_seconds, send=s.rpc_timeout_seconds)
        async with SolanaRpc(s.rpc_url, timeouts=timeouts, commitment=s.commitment) as rpc:
            watcher = Watcher(rpc=rpc, prices=prices, ledger=ledger, book=book, metrics=self.metrics,
                              commitment=s.commitment, on_accepted=projector.nudge if projector else None)
            self.poller = PollingSource(ChainHistory(rpc, commitment=s.commitment, timeout=s.rpc_timeout_seconds),
                                        ledger, book, self.metrics, interval=s.watcher_poll_interval_seconds,
                                        baseline_seconds=s.watcher_baseline_seconds)
            webhook = None
            if s.watcher_webhook_token is not None:
                webhook = WebhookSource(s.watcher_webhook_token.get_secret_value(), book, self.metrics,
                                        workers=s.watcher_webhook_workers)
            runner = await self._serve(webhook)
            tasks.append(asyncio.create_task(self.poller.run(watcher.process), name="poll"))
            if webhook is not None:
                tasks.append(asyncio.create_task(webhook.run(watcher.process), name="webhook"))
            if s.watcher_ws_url is not None:
                push = WebSocketSource(s.watcher_ws_url, book, self.metrics, commitment=s.commitment)
                tasks.append(asyncio.create_task(push.run(watcher.process), name="websocket"))
            if projector is not None:
                tasks.append(asyncio.create_task(projector.run(), name="projector"))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            try:
                waiter = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not waiter and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await runner.cleanup()
                await prices.close()
                await ledger.close()
