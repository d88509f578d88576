"""Prometheus metrics of the operator (served on XORJ_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from xorj.ledger.pool_metrics import LedgerPoolCollector

# the chain reconciler's metrics (xorj_reconcile_*) are the operator's too: exported (enabled 0) even
# while the periodic reconciler is off
from xorj.reconciler import metrics as reconciler_metrics  # noqa: F401

RECONCILES = Counter(
    "xorj_operator_reconciles_total", "Reconciliations by kind and result.", ["kind", "result"]
)
ADMISSIONS = Counter(
    "xorj_operator_admissions_total", "CopyTrade admissions into the ledger.", ["result"]
)
STATUS_PATCHES = Counter("xorj_operator_status_patches_total", "Status PATCHes sent.", ["kind"])
KUBE_REQUESTS = Counter(
    "xorj_operator_kube_requests_total", "Kubernetes API requests made by the operator's own code.",
    ["verb", "resource"],
)
LEDGER_ERRORS = Counter("xorj_operator_ledger_errors_total", "Ledger calls that failed.", ["operation"])
NOTIFICATIONS = Counter("xorj_operator_ledger_notifications_total", "NOTIFYs received from the ledger.")
COPYTRADE_MIRRORS = Gauge(
    "xorj_operator_copytrade_mirrors",
    "CopyTrades by the state of their mirror: waiting (for an admission slot, or to retry), running, "
    "finished (terminal and mirrored).", ["state"],
)
MIRROR_LATENCY = Histogram(
    "xorj_operator_mirror_latency_seconds",
    "From a ledger NOTIFY to the CopyTrade status PATCH that shows it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
COPYTRADES_TERMINAL = Counter(
    "xorj_operator_copytrades_terminal_total", "CopyTrades seen reaching a terminal phase.", ["phase"]
)
TTL_DELETIONS = Counter("xorj_operator_ttl_deletions_total", "Terminal CopyTrades deleted by TTL.")
WATCH_STALE = Gauge("xorj_operator_watch_stale", "1 while the watch has not delivered our own writes.")
# strategy is the ledger's key "namespace/name", as the executors' strategy label: a paused strategy has
# no executor left to report it (its Deployment is scaled to zero), so the operator does
STRATEGY_PAUSED = Gauge("xorj_operator_strategy_paused", "1 while a TradingStrategy's spec.paused is true "
                        "(the kill switch: its executors are scaled to zero).", ["strategy"])
LISTENER_CONNECTED = Gauge("xorj_operator_ledger_listener_connected", "1 while LISTEN is connected.")
ALERTS_DELIVERED = Counter(
    "xorj_operator_alerts_delivered_total",
    "Ledger outbox alerts delivered (one Kubernetes Event each, then marked delivered), by kind and severity.",
    ["kind", "severity"],
)
ALERT_OUTBOX_PENDING = Gauge(
    "xorj_operator_alert_outbox_pending", "Ledger outbox alerts not yet delivered (as of the last delivery pass)."
)
# the operator's ledger pool (its ledger is set at start-up: xorj.controller.handlers)
LEDGER_POOL = LedgerPoolCollector("xorj_operator")
REGISTRY.register(LEDGER_POOL)
