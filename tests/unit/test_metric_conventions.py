"""Every metric the operator, the reconciler and the executor export follows Prometheus' naming
conventions beyond what `promtool check metrics` lints (tests/integration/executor and
tests/e2e/operator run that on the live /metrics): durations in seconds, and only labels whose
values come from a small fixed set, never an identifier such as a trade id, a signature or a key."""

from __future__ import annotations

import importlib

from prometheus_client.metrics import MetricWrapperBase

# Each of these takes its values from an enum or a fixed list in the code (state, reason code,
# attempt outcome, breaker state, RPC method, guard rule, finding class, alert severity, ...): bounded.
BOUNDED_LABELS = {"strategy", "state", "reason", "outcome", "method", "rule", "kind", "result", "verb",
                  "resource", "phase", "operation", "class", "severity",
                  "source"}  # the watcher's sources: poll, webhook, websocket
TIME_WORDS = ("latency", "duration", "seconds", "time", "age", "lag")


def _metrics() -> list[MetricWrapperBase]:
    """Every metric object, labelled or not, whether or not it has samples yet."""
    from xorj.executor.metrics import ExecutorMetrics
    from xorj.watcher.metrics import WatcherMetrics

    found = [v for v in vars(ExecutorMetrics("demo")).values() if isinstance(v, MetricWrapperBase)]
    found += [v for v in vars(WatcherMetrics()).values() if isinstance(v, MetricWrapperBase)]
    for module in ("xorj.controller.metrics", "xorj.reconciler.metrics"):
        found += [v for v in vars(importlib.import_module(module)).values() if isinstance(v, MetricWrapperBase)]
    assert len(found) > 20
    return found


def test_labels_are_bounded():
    unbounded = {m._name: sorted(set(m._labelnames) - BOUNDED_LABELS) for m in _metrics()
                 if set(m._labelnames) - BOUNDED_LABELS}
    assert not unbounded, f"labels not known to be bounded (add to BOUNDED_LABELS only if they are): {unbounded}"


def test_time_metrics_are_in_seconds():
    wrong = [m._name for m in _metrics() if any(word in m._name for word in TIME_WORDS)
             and not m._name.endswith("_seconds")]
    assert not wrong, f"durations and times must be named *_seconds (base unit): {wrong}"
