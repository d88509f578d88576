"""Prometheus metrics of the watcher (its own registry, so tests can run several). Labels are bounded:
``source`` (poll, webhook, websocket), ``result``, ``reason`` (SkipReason or a fixed rejection list),
``method`` (RPC method)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.1, 0.25, 0.4, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class WatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.signals = Counter("xorj_watcher_signals", "Lead transactions handled, by source and result "
                               "(accepted, duplicate, not_a_swap, not_found, not_followed, error)",
                               ["source", "result"], registry=r)
        self.skipped = Counter("xorj_watcher_signals_skipped", "Strategy decisions not to copy an accepted signal, "
                               "by reason", ["reason"], registry=r)
        self.vault_skips = Counter("xorj_watcher_vault_skips", "Vaults of a copying strategy whose own sizing "
                                   "gave no trade (e.g. NOT_HELD, BELOW_MIN_NOTIONAL), by reason", ["reason"], registry=r)
        self.trades_admitted = Counter("xorj_watcher_trades_admitted", "Follower trades admitted into the ledger",
                                       registry=r)
        self.detection_seconds = Histogram("xorj_watcher_detection_seconds", "From the lead transaction's block "
                                           "time to its signal accepted in the ledger", ["source"],
                                           buckets=_LATENCY_BUCKETS, registry=r)
        self.lag_seconds = Gauge("xorj_watcher_poll_lag_seconds", "Seconds since the last complete polling round "
                                 "over every followed leader, or since the start until the first (the gap filler's lag)", registry=r)
        self.webhook_rejected = Counter("xorj_watcher_webhook_rejected", "Webhook deliveries refused, by reason "
                                        "(unauthorized, malformed, too_large, overloaded)", ["reason"], registry=r)
        self.webhook_duplicates = Counter("xorj_watcher_webhook_duplicates", "Webhook entries already queued or "
                                          "accepted (deduplicated)", registry=r)
        self.rpc_errors = Counter("xorj_watcher_rpc_errors", "RPC or price calls that failed, by method and reason",
                                  ["method", "reason"], registry=r)
        self.projection_errors = Counter("xorj_watcher_projection_errors", "CopyTrades or Events not yet written "
                                         "to the Kubernetes API (retried), by kind", ["kind"], registry=r)
        self.followed_leaders = Gauge("xorj_watcher_followed_leaders", "Leaders followed by any strategy",
                                      registry=r)
