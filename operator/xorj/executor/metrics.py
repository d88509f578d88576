"""Prometheus metrics of one executor process (its own registry, so tests can run several)."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from xorj.domain.risk import BreakerState
from xorj.domain.trades import AttemptOutcome, ReasonCode, Trade, TradeState

log = logging.getLogger("xorj.executor.timing")

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class ExecutorMetrics:
    """Also the submission algorithm's :class:`~xorj.executor.ports.Observer`."""

    def __init__(self, strategy: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.strategy = strategy
        r = self.registry
        self.trades_finished = Counter("xorj_executor_trades_finished", "Trades this executor brought to a terminal "
                                       "state, by state and reason", ["strategy", "state", "reason"], registry=r)
        self.trades_by_state = Gauge("xorj_executor_ledger_trades", "Trades of the strategy in the ledger, by state",
                                     ["strategy", "state"], registry=r)
        self.in_flight = Gauge("xorj_executor_trades_in_flight", "Trades currently claimed and worked on",
                               ["strategy"], registry=r)
        self.claimed = Counter("xorj_executor_claims", "Trades claimed (including takeovers)", ["strategy"],
                               registry=r)
        self.attempt_seconds = Histogram("xorj_executor_attempt_seconds", "From first send (or resume) to the "
                                         "attempt's fate", ["strategy", "outcome", "reason"],
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.claim_to_first_send = Histogram("xorj_executor_claim_to_first_send_seconds",
                                             "From claiming a trade to its first broadcast", ["strategy"],
                                             buckets=_LATENCY_BUCKETS, registry=r)
        self.claim_to_final = Histogram("xorj_executor_claim_to_final_seconds",
                                        "From claiming a trade to CONFIRMED/FAILED", ["strategy", "state"],
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.rpc_errors = Counter("xorj_executor_rpc_errors", "Failed RPC / swap-API calls", ["strategy", "method",
                                                                                               "reason"], registry=r)
        self.swaps_rejected = Counter("xorj_executor_swaps_rejected", "Quotes and swap transactions refused before "
                                      "signing, by reason and rule", ["strategy", "reason", "rule"], registry=r)
        self.ledger_errors = Counter("xorj_executor_ledger_errors", "Ledger calls that failed", ["strategy", "kind"],
                                     registry=r)
        self.ledger_up = Gauge("xorj_executor_ledger_up", "1 when the last ledger call succeeded", ["strategy"],
                               registry=r)
        self.breaker_state = Gauge("xorj_executor_breaker_state", "Circuit breaker: 1 for the current state",
                                   ["strategy", "state"], registry=r)
        self.concurrency_limit = Gauge("xorj_executor_concurrency_limit", "The most trades worked on at once "
                                       "(saturation: trades_in_flight / this)", ["strategy"], registry=r)
        self.halted = Gauge("xorj_executor_trading_halted", "1 while trading is halted (the ledger's cluster-wide "
                            "halt or XORJ_GLOBAL_HALT), as of the last trade checked", ["strategy"], registry=r)
        self.paused = Gauge("xorj_executor_strategy_paused", "1 while the strategy's kill switch is on "
                            "(spec.paused: every trade is refused unsent)", ["strategy"], registry=r)
        self.leases_lost = Counter("xorj_executor_leases_lost", "Trades dropped because the lease was lost",
                                   ["strategy"], registry=r)
        self._claimed_at: dict[int, float] = {}
        self._first_sent: dict[int, float] = {}
        self._steps: dict[int, dict[str, float]] = {}  # trade id -> first time of each step (timing log)
        self.set_breaker(BreakerState.CLOSED)
        self.ledger_up.labels(strategy).set(1)
        self.in_flight.labels(strategy).set(0)
        self.halted.labels(strategy).set(0)
        self.paused.labels(strategy).set(0)

    # ---- service events ----------------------------------------------------------------------

    def trade_claimed(self, trade_id: int) -> None:
        self._claimed_at[trade_id] = time.monotonic()
        self.claimed.labels(self.strategy).inc()

    def trade_released(self, trade_id: int) -> None:
        self._claimed_at.pop(trade_id, None)
        self._first_sent.pop(trade_id, None)
        self._steps.pop(trade_id, None)

    def set_in_flight(self, n: int) -> None:
        self.in_flight.labels(self.strategy).set(n)

    def set_breaker(self, state: BreakerState) -> None:
        for s in BreakerState:
            self.breaker_state.labels(self.strategy, s.value).set(1 if s is state else 0)

    def set_ledger_counts(self, counts: dict[TradeState, int]) -> None:
        for state, n in counts.items():
            self.trades_by_state.labels(self.strategy, state.value).set(n)

    def ledger_ok(self, ok: bool, kind: str = "unavailable") -> None:
        self.ledger_up.labels(self.strategy).set(1 if ok else 0)
        if not ok:
            self.ledger_errors.labels(self.strategy, kind).inc()

    # ---- Observer ----------------------------------------------------------------------------

    def step(self, trade_id: int, step: str) -> None:
        if trade_id in self._claimed_at:
            self._steps.setdefault(trade_id, {}).setdefault(step, time.monotonic())

    def first_send(self, trade: Trade) -> None:
        if trade.trade_id in self._first_sent:
            return
        now = time.monotonic()
        self._first_sent[trade.trade_id] = now
        claimed = self._claimed_at.get(trade.trade_id)
        if claimed is not None:
            self.claim_to_first_send.labels(self.strategy).observe(now - claimed)

    def attempt_finished(self, outcome: AttemptOutcome, reason: ReasonCode | None, seconds: float) -> None:
        self.attempt_seconds.labels(self.strategy, outcome.value, reason.value if reason else "").observe(seconds)

    def rpc_error(self, method: str, reason: ReasonCode) -> None:
        self.rpc_errors.labels(self.strategy, method, reason.value).inc()

    def swap_rejected(self, reason: ReasonCode, rule: str) -> None:
        self.swaps_rejected.labels(self.strategy, reason.value, rule).inc()

    def trade_finished(self, trade_id: int, state: TradeState, reason: ReasonCode | None) -> None:
        self.trades_finished.labels(self.strategy, state.value, reason.value if reason else "").inc()
        claimed = self._claimed_at.get(trade_id)
        if claimed is not None:
            now = time.monotonic()
            self.claim_to_final.labels(self.strategy, state.value).observe(now - claimed)
            first = self._first_sent.get(trade_id)
            # one line per finished trade: what the benchmark (and a person) reads latencies from
            log.info("trade timing", extra={"trade_id": trade_id, "state": state.value,
                                            "reason": reason.value if reason else None,
                                            "claim_to_first_send_s": None if first is None else round(first - claimed, 6),
                                            "claim_to_final_s": round(now - claimed, 6),
                                            # seconds from the claim to the first time each step ended
                                            "steps_s": {step: round(at - claimed, 6) for step, at in
                                                        self._steps.get(trade_id, {}).items()}})
