"""Prometheus metrics of the reconciler (served by the operator's /metrics). Labels are finding
classes and reason codes only: no vault key, URL or DSN ever becomes a label."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from xorj.domain.reconciliation import FindingClass
from xorj.domain.trades import ReasonCode

FINDINGS = Counter("xorj_reconcile_findings_total",
                   "Disagreements between chain and ledger recorded for the first time, by class.", ["class"])
OPEN_FINDINGS = Gauge("xorj_reconcile_open_findings",
                      "Findings in the ledger not yet resolved by a person, by class.", ["class"])
RUNS = Counter("xorj_reconcile_runs_total", "Reconciliation passes, by result (ok, error).", ["result"])
VAULT_ERRORS = Counter("xorj_reconcile_vault_errors_total",
                       "Vaults a pass could not (fully) reconcile, by reason code.", ["reason"])
LAST_RUN = Gauge("xorj_reconcile_last_run_timestamp_seconds", "When the last pass ended (unix time).")
LAST_SUCCESS = Gauge("xorj_reconcile_last_success_timestamp_seconds",
                     "When the last pass that reconciled every vault without an error ended (unix time).")
UNSETTLED = Gauge("xorj_reconcile_unsettled_signatures",
                  "Transactions walked in the last pass that are not settled yet (not finalized, or their "
                  "attempt still pending): the cursor waits below them.")
VAULTS = Gauge("xorj_reconcile_vaults", "Vaults covered by the last pass.")
DURATION = Gauge("xorj_reconcile_pass_duration_seconds", "How long the last pass took.")
ENABLED = Gauge("xorj_reconcile_enabled", "1 while the operator's periodic reconciler is configured and running.")

for _cls in FindingClass:  # every class exported from the start, so increase() sees the first one
    FINDINGS.labels(_cls.metric_label)
    OPEN_FINDINGS.labels(_cls.metric_label)
for _result in ("ok", "error"):
    RUNS.labels(_result)
for _reason in (ReasonCode.RPC_TIMEOUT, ReasonCode.RPC_ERROR, ReasonCode.MALFORMED_RESPONSE,
                ReasonCode.LEDGER_UNAVAILABLE):
    VAULT_ERRORS.labels(_reason.value)
