"""What the watcher shows through the Kubernetes API, after the ledger commit and off the path to
the executors: a CopyTrade for every copied trade (``lead_copies``), and an Event on the
TradingStrategy for every skipped signal (``lead_skips``).

:class:`KubeProjector` sweeps the rows not yet written (woken at once after an accept, and every
``interval`` seconds, so a crash or an API-server outage only delays them) and marks each done once
the API server took it. The CopyTrade's name was fixed when the trade was admitted (its
``copytrade`` column) and it carries the label ``trading.xorj.io/source: watcher``: the operator then
mirrors the trade's status into it as for a hand-made one, and says the watcher admitted it. A
CopyTrade that exists already (409) is done. Nothing secret is in either object.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from xorj.controller.models import API_VERSION, GROUP, VERSION
from xorj.ledger import lead_signals
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.lead_signals import LeadSkip, PendingProjection
from xorj.ledger.statements import Step
from xorj.watcher.metrics import WatcherMetrics

log = logging.getLogger(__name__)

SOURCE_LABEL = "trading.xorj.io/source"
STRATEGY_LABEL = "trading.xorj.io/strategy"
WATCHER = "watcher"

_Row = TypeVar("_Row")


def copytrade_body(namespace: str, name: str, strategy: str, leader: str, signature: str, input_mint: str,
                   output_mint: str, lead_amount: int) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "CopyTrade",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {SOURCE_LABEL: WATCHER, STRATEGY_LABEL: strategy}},
            "spec": {"strategy": strategy, "leadTrader": leader, "leadSignature": signature,
                     "inputMint": input_mint, "outputMint": output_mint, "amount": lead_amount}}


def skip_event_body(namespace: str, strategy: str, leader: str, signature: str, reason: str, detail: str,
                    component: str) -> dict[str, Any]:
    # a deterministic name: a retried post of the same skip is refused (409), not doubled
    digest = hashlib.sha256(f"{strategy}:{leader}:{signature}".encode()).hexdigest()[:16]
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{strategy}.skip-{digest}", "namespace": namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": "TradingStrategy", "name": strategy,
                               "namespace": namespace},
            "reason": "SignalSkipped", "type": "Normal", "count": 1,
            "message": f"{reason}: lead swap {signature} of {leader} not copied: {detail}"[:1024],
            "source": {"component": component}}


class KubeProjector:
    def __init__(self, ledger: AsyncLedger, custom_api: Any, core_api: Any, metrics: WatcherMetrics, *,
                 interval: float = 5.0, component: str = "xorj-watcher") -> None:
        self.ledger = ledger
        self.custom = custom_api  # kubernetes.client.CustomObjectsApi
        self.core = core_api  # kubernetes.client.CoreV1Api
        self.metrics = metrics
        self.interval = interval
        self.component = component
        self.wake = asyncio.Event()

    def nudge(self) -> None:
        self.wake.set()

    @staticmethod
    def _exists(exc: Exception) -> bool:
        return getattr(exc, "status", None) == 409

    async def _project(self, kind: str, rows: Iterable[_Row], name_of: Callable[[_Row], str],
                       create: Callable[[_Row], object], mark: Callable[[_Row], Step[None]]) -> int:
        """Create each row's object and mark the row done once the API server has it (created now, or
        already: 409). A refusal leaves the row for the next sweep, counted by ``kind``."""
        done = 0
        for row in rows:
            try:
                # the Kubernetes client is blocking: its call (not the ledger's) goes to a worker thread
                await asyncio.to_thread(create, row)
            except Exception as exc:
                if not self._exists(exc):
                    self.metrics.projection_errors.labels(kind).inc()
                    log.warning("object not written to the API server yet",
                                extra={"kind": kind, "object": name_of(row), "error": f"{type(exc).__name__}"})
                    continue
            await self.ledger.run(mark(row))
            done += 1
        return done

    def _create_copytrade(self, row: PendingProjection) -> object:
        namespace, name = row.copytrade.split("/", 1)
        body = copytrade_body(namespace, name, row.strategy.split("/", 1)[1], row.leader, row.signature,
                              row.input_mint, row.output_mint, int(row.lead_amount))
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "copytrades", body)

    def _post_skip_event(self, skip: LeadSkip) -> object:
        namespace, strategy = skip.strategy.split("/", 1)
        return self.core.create_namespaced_event(namespace, skip_event_body(
            namespace, strategy, skip.leader, skip.signature, skip.reason, skip.detail, self.component))

    async def sweep(self) -> int:
        """Write what is pending; returns how many objects were done."""
        copies = await self.ledger.run(lead_signals.pending_projections())
        done = await self._project("copytrade", copies, lambda row: row.copytrade, self._create_copytrade,
                                   lambda row: lead_signals.mark_projected(row.strategy, row.leader, row.signature))
        skips = await self.ledger.run(lead_signals.skips(not_evented=True, limit=200))
        return done + await self._project("event", skips, lambda skip: skip.strategy, self._post_skip_event,
                                          lambda skip: lead_signals.mark_evented(skip.strategy, skip.leader,
                                                                                 skip.signature))

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the ledger away: the rows wait
                log.warning("projection sweep failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
            except TimeoutError:
                pass
