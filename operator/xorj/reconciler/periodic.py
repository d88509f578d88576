"""The operator's periodic reconciler: a background task started with the operator (when it has an
RPC endpoint of its own to read the chain with), one pass every interval, its results as metrics.

Several operator replicas may all run it: findings are stored once by their key and cursors move by
compare-and-set, so a second replica only repeats reads.
"""

from __future__ import annotations

import asyncio
import logging
import time

from xorj.chain.rpc import RpcTimeouts, SolanaRpc
from xorj.ledger import chain_reconciliation as reconciliation
from xorj.ledger.aio import AsyncLedger
from xorj.reconciler import metrics
from xorj.reconciler.service import PassReport, ReconcileSettings, reconcile_pass

log = logging.getLogger(__name__)


def publish(report: PassReport | None, store_counts: dict | None, *, ok: bool) -> None:
    """Set the metrics from one pass (``report`` None: the pass itself failed)."""
    now = time.time()
    metrics.LAST_RUN.set(now)
    metrics.RUNS.labels("ok" if ok else "error").inc()
    if report is not None:
        for finding in report.new_findings:
            metrics.FINDINGS.labels(finding.finding_class.metric_label).inc()
        for _, reason, _ in report.errors:
            metrics.VAULT_ERRORS.labels(reason.value).inc()
        metrics.UNSETTLED.set(sum(v.unsettled for v in report.vaults))
        metrics.VAULTS.set(len(report.vaults))
        metrics.DURATION.set(report.duration_seconds)
        if ok:
            metrics.LAST_SUCCESS.set(now)
    if store_counts is not None:
        for cls, count in store_counts.items():
            metrics.OPEN_FINDINGS.labels(cls.metric_label).set(count)


async def run_once(ledger: AsyncLedger, rpc: SolanaRpc, settings: ReconcileSettings) -> PassReport | None:
    try:
        report = await reconcile_pass(ledger, rpc, settings)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the ledger away, a bug: counted, logged by type, tried again next interval
        log.warning("reconciliation pass failed: %s", type(exc).__name__, extra={"error": str(exc)[:300]})
        counts = None
        try:
            counts = await ledger.run(reconciliation.open_counts())
        except Exception:  # the ledger may be what failed
            pass
        publish(None, counts, ok=False)
        return None
    counts = await ledger.run(reconciliation.open_counts())
    ok = not report.errors
    publish(report, counts, ok=ok)
    if report.errors:
        log.warning("reconciliation pass incomplete", extra={
            "errors": [f"{vault}: {reason.value}: {message}"[:300] for vault, reason, message in report.errors][:10]})
    log.info("reconciliation pass", extra={"vaults": len(report.vaults), "new_findings": len(report.new_findings),
                                           "open_findings": len(report.open_findings),
                                           "duration_s": round(report.duration_seconds, 3)})
    return report


async def reconcile_forever(ledger: AsyncLedger, rpc_url: str, interval: float, settings: ReconcileSettings,
                            *, rpc_timeout: float = 10.0) -> None:
    """Run a pass every ``interval`` seconds until cancelled."""
    rpc = SolanaRpc(rpc_url, timeouts=RpcTimeouts(read=rpc_timeout, send=rpc_timeout))
    metrics.ENABLED.set(1)
    try:
        while True:
            await run_once(ledger, rpc, settings)
            await asyncio.sleep(interval)
    finally:
        metrics.ENABLED.set(0)
        await rpc.close()
