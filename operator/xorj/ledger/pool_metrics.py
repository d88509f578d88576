"""The ledger connection pool's use as Prometheus gauges, read from psycopg_pool at scrape time:
``<prefix>_ledger_pool_connections{state="open"|"idle"}``, ``<prefix>_ledger_pool_max_connections``
and ``<prefix>_ledger_pool_waiting_requests`` (callers queued for a connection: the pool is saturated)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class LedgerPoolCollector(Collector):
    def __init__(self, prefix: str, ledger: Any = None) -> None:
        self.prefix = prefix
        self.ledger = ledger  # set once the ledger is connected; nothing is reported before

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.ledger is None:
            return
        stats = self.ledger.pool_stats()
        connections = GaugeMetricFamily(f"{self.prefix}_ledger_pool_connections",
                                        "Ledger pool connections, open (in use or idle) and idle.", labels=["state"])
        connections.add_metric(["open"], stats["pool_size"])
        connections.add_metric(["idle"], stats["pool_available"])
        yield connections
        yield GaugeMetricFamily(f"{self.prefix}_ledger_pool_max_connections",
                                "The most connections the ledger pool opens.", value=stats["pool_max"])
        yield GaugeMetricFamily(f"{self.prefix}_ledger_pool_waiting_requests",
                                "Ledger calls waiting for a free pool connection.", value=stats["requests_waiting"])
