"""The ledger for blocking callers (the CLI, the kubectl plugin, the operator's alert delivery, the
stores' blocking wrappers, the tests): every operation is one transaction, whose body (its SQL, the
domain transition it applies, its fencing and idempotency rules) is written once in
:mod:`xorj.ledger.transactions` and its siblings and run here on psycopg's blocking driver under a
thread-safe pool. Code on an event loop (the executor, the watcher, the chain reconciler, the
operator's reconcilers) runs the same bodies with :class:`xorj.ledger.aio.AsyncLedger`, with no
thread hop.

Errors: :class:`LedgerUnavailableError` for a lost connection (never retried here),
:class:`LedgerConstraintError` naming the constraint, :class:`TradeNotFoundError`,
:class:`~xorj.errors.RefusedTransitionError` (an :class:`IllegalTransitionError` and a
:class:`LedgerError`) for a transition the state machine does not allow, :class:`LeaseLostError`
for a fenced write whose claim is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Self, TypeVar

import psycopg_pool

from xorj.domain.risk import BreakerEvent, DailyShare, RiskCheck, RiskDecision
from xorj.domain.trades import Attempt, AttemptOutcome, IdempotencyKey, ReasonCode, Trade, TradeState
from xorj.errors import LedgerError
from xorj.ledger import daily_limits, outbox, scores, statements
from xorj.ledger import transactions as tx
from xorj.ledger.migrate import migrate
from xorj.ledger.pool import open_pool, pool_stats, translated_errors
from xorj.ledger.records import (
    AdmitResult,
    Alert,
    AlertSeverity,
    NewAlert,
    StoredTraderScore,
    TradeEvent,
    TradeIntent,
    TradingHalt,
    VaultActivity,
)
from xorj.ledger.statements import Step
from xorj.ledger.transactions import DEFAULT_LEASE_SECONDS

__all__ = ["DEFAULT_LEASE_SECONDS", "Ledger"]

_T = TypeVar("_T")


class Ledger:
    """The Postgres ledger behind a blocking connection pool. Thread-safe; one per process is enough.
    Each method runs the body of the same name in :mod:`xorj.ledger.transactions` (its documentation
    says what it guarantees)."""

    def __init__(self, pool: psycopg_pool.ConnectionPool, *, owns_pool: bool = True) -> None:
        self._pool = pool
        self._owns_pool = owns_pool

    @classmethod
    def connect(
        cls,
        dsn: str,
        *,
        apply_migrations: bool = True,
        min_size: int = 1,
        max_size: int = 4,
        acquire_timeout: float = 5.0,
        name: str = "xorj-ledger",
    ) -> Ledger:
        """Migrate (under the advisory lock) unless told not to, then open a pool on ``dsn``."""
        if apply_migrations:
            migrate(dsn)
        return cls(open_pool(dsn, min_size=min_size, max_size=max_size, acquire_timeout=acquire_timeout, name=name))

    def close(self) -> None:
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, body: Step[_T]) -> _T:
        """One transaction: ``body``'s statements on a pooled connection, committed when it returns,
        rolled back on any error."""
        with translated_errors(), self._pool.connection() as conn:
            return statements.run(conn, body)

    def pool_stats(self) -> dict[str, int]:
        """The pool's counters (psycopg_pool's names: pool_size, pool_available, pool_max, requests_waiting)."""
        return pool_stats(self._pool)

    def ping(self) -> bool:
        """True when the ledger answers a query now (the LedgerReachable condition)."""
        try:
            self.run(statements.one("SELECT 1"))
            return True
        except LedgerError:
            return False

    # -- admission -----------------------------------------------------------------------------------

    def admit_trade(self, intent: TradeIntent, *, actor: str | None = None) -> AdmitResult:
        return self.run(tx.admit_trade(intent, actor=actor))

    def admit_refused(
        self, intent: TradeIntent, reason: ReasonCode, detail: str, *, actor: str | None = None,
        alert: NewAlert | None = None,
    ) -> AdmitResult:
        return self.run(tx.admit_refused(intent, reason, detail, actor=actor, alert=alert))

    def cancel_trade(self, trade_id: int, detail: str, *, actor: str = "operator") -> Trade:
        return self.run(tx.cancel_trade(trade_id, detail, actor=actor))

    def cancel_pending(self, strategy: str, detail: str, *, actor: str = "operator") -> list[int]:
        return self.run(tx.cancel_pending(strategy, detail, actor=actor))

    # -- work queue ----------------------------------------------------------------------------------

    def claim_trades(
        self, strategy: str, owner: str, limit: int = 10, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> list[Trade]:
        return self.run(tx.claim_trades(strategy, owner, limit, lease_seconds))

    def heartbeat(
        self, leases: Mapping[int, int], owner: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> set[int]:
        return self.run(tx.heartbeat(leases, owner, lease_seconds))

    def release(self, trade_id: int, owner: str, *, fencing_token: int) -> bool:
        return self.run(tx.release(trade_id, owner, fencing_token=fencing_token))

    # -- executor writes (fenced) --------------------------------------------------------------------

    def reserve_daily_share(
        self, trade_id: int, owner: str, notional_usd: Decimal, decide: RiskCheck, *, fencing_token: int
    ) -> RiskDecision:
        return self.run(tx.reserve_daily_share(trade_id, owner, notional_usd, decide, fencing_token=fencing_token))

    def record_attempt(
        self,
        trade_id: int,
        owner: str,
        signature: str,
        raw_tx: bytes,
        last_valid_block_height: int,
        slippage_bps: int,
        quote_out_amount: int | None = None,
        *,
        fencing_token: int,
        share: DailyShare | None = None,
    ) -> Attempt:
        return self.run(tx.record_attempt(trade_id, owner, signature, raw_tx, last_valid_block_height, slippage_bps,
                                          quote_out_amount, fencing_token=fencing_token, share=share))

    def resolve_attempt(
        self,
        signature: str,
        owner: str,
        outcome: AttemptOutcome,
        reason: ReasonCode | None = None,
        detail: str | None = None,
        *,
        send_failure: ReasonCode | None = None,
        fencing_token: int,
    ) -> Attempt:
        return self.run(tx.resolve_attempt(signature, owner, outcome, reason, detail, send_failure=send_failure,
                                           fencing_token=fencing_token))

    def confirm_trade(self, trade_id: int, owner: str, signature: str, *, fencing_token: int) -> Trade:
        return self.run(tx.confirm_trade(trade_id, owner, signature, fencing_token=fencing_token))

    def fail_trade(
        self,
        trade_id: int,
        owner: str,
        reason: ReasonCode,
        detail: str | None = None,
        *,
        fencing_token: int,
        alert: NewAlert | None = None,
    ) -> Trade:
        return self.run(tx.fail_trade(trade_id, owner, reason, detail, fencing_token=fencing_token, alert=alert))

    def record_crash(self, trade_id: int, owner: str, detail: str, *, poison_after: int, fencing_token: int) -> Trade:
        return self.run(tx.record_crash(trade_id, owner, detail, poison_after=poison_after,
                                        fencing_token=fencing_token))

    # -- cluster-wide halt ---------------------------------------------------------------------------

    def trading_halt(self) -> TradingHalt:
        return self.run(tx.trading_halt())

    def set_trading_halt(self, halted: bool, *, reason: str | None, actor: str) -> TradingHalt:
        return self.run(tx.set_trading_halt(halted, reason=reason, actor=actor))

    # -- reads ---------------------------------------------------------------------------------------

    def get_trade(self, ref: int | IdempotencyKey) -> Trade:
        return self.run(tx.get_trade(ref))

    def find_trade(self, ref: int | IdempotencyKey) -> Trade | None:
        return self.run(tx.find_trade(ref))

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        """The audit trail of one trade, oldest first."""
        return self.run(statements.records(
            TradeEvent,
            """SELECT id AS event_id, trade_id, from_state, to_state, reason, detail, actor, attempt_signature, at
                 FROM trade_events WHERE trade_id = %s ORDER BY id""",
            (trade_id,),
        ))

    def counts_by_state(self, strategy: str | None = None) -> dict[TradeState, int]:
        return self.run(tx.counts_by_state(strategy))

    def vault_activity(self, vault: str, since: datetime) -> VaultActivity:
        """Trades of ``vault`` counted against its daily limits since ``since`` (approved by the risk
        gate and not failed before a send, or sent): their summed notional and count. A snapshot for
        reading: deciding on it races other executors; :meth:`reserve_daily_share` does not."""
        return self.run(daily_limits.activity(vault, since))

    def breaker_events(self, strategy: str, since: datetime, until: datetime) -> list[BreakerEvent]:
        return self.run(tx.breaker_events(strategy, since, until))

    def find_stale(
        self,
        now: datetime | None = None,
        grace: timedelta = timedelta(seconds=60),
        strategy: str | None = None,
    ) -> list[Trade]:
        return self.run(tx.find_stale(now, grace, strategy))

    # -- alerts (outbox) -----------------------------------------------------------------------------

    def raise_alert(
        self,
        kind: str,
        severity: AlertSeverity | str,
        message: str,
        *,
        strategy: str | None = None,
        trade_id: int | None = None,
    ) -> Alert:
        return self.run(tx.raise_alert(kind, severity, message, strategy=strategy, trade_id=trade_id))

    def pending_alerts(self, limit: int = 100) -> list[Alert]:
        """Undelivered alerts, oldest first."""
        return self.run(outbox.pending(limit))

    def mark_delivered(self, alert_ids: Sequence[int]) -> int:
        return self.run(outbox.mark_delivered(alert_ids))

    def deliver_next_alert(self, deliver: Callable[[outbox.ClaimedAlert], None],
                           skip: Sequence[int] = ()) -> Alert | None:
        return self.run(tx.deliver_next_alert(deliver, skip))

    def count_pending_alerts(self) -> int:
        return self.run(outbox.count_pending())

    # -- trader scores -------------------------------------------------------------------------------

    def upsert_trader_scores(self, trader_scores: Iterable[StoredTraderScore]) -> int:
        """Replace the stored score of each wallet given (one transaction); returns how many."""
        return self.run(scores.upsert(trader_scores))

    def list_trader_scores(
        self, *, min_score: float | None = None, status: str | None = None, limit: int | None = None
    ) -> list[StoredTraderScore]:
        """Stored scores, best first."""
        return self.run(scores.list_scores(min_score, status, limit))
