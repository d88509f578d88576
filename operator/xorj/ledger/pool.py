"""The connection pool and the translation of database errors into the xorj error hierarchy.

Policy: a lost or unobtainable connection is :class:`LedgerUnavailableError` and nothing is retried
here. A write whose COMMIT was in flight when the connection broke may or may not have been applied;
the caller learns the truth by reading the ledger again once it is reachable (the idempotency key and
the unique attempt signature make the re-read decisive). The pool checks each connection before
lending it, so after a server restart the dead connections are replaced instead of failing the first
caller, and new connections are made as soon as the server accepts them again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import psycopg
import psycopg.errors
import psycopg_pool

from xorj.errors import LedgerConstraintError, LedgerError, LedgerUnavailableError

log = logging.getLogger(__name__)

# What a broken constraint means, for the message (the constraint name is always in it too).
CONSTRAINT_RULES: dict[str, str] = {
    "trades_idempotency_key": "(strategy, vault, lead_signature) must be unique",
    "trades_amount_positive": "trades.amount must be > 0",
    "trades_max_slippage_bps_range": "trades.max_slippage_bps must be between 0 and 10000",
    "trades_notional_usd_not_negative": "trades.notional_usd must be >= 0",
    "trades_strategy_not_empty": "trades.strategy must not be empty",
    "trades_vault_not_empty": "trades.vault must not be empty",
    "trades_lead_signature_not_empty": "trades.lead_signature must not be empty",
    "trades_state_valid": "trades.state must be one of PENDING, SUBMITTED, CONFIRMED, FAILED",
    "trades_reason_valid": "trades.reason must be a ReasonCode",
    "trades_failed_has_reason": "a FAILED trade must have a reason",
    "trades_confirmed_has_final_signature": "a CONFIRMED trade must have a final_signature",
    "trades_lease_complete": "trades.lease_owner and lease_expires_at are set together",
    "trades_terminal_not_leased": "a terminal trade cannot hold a lease",
    "trades_risk_reserved_usd_not_negative": "trades.risk_reserved_usd must be >= 0",
    "trades_risk_reservation_complete": "trades.risk_reserved_at and risk_reserved_usd are set together",
    "trades_legal_transition": "trades.state may only move PENDING->SUBMITTED|FAILED, SUBMITTED->CONFIRMED|FAILED",
    "attempts_signature_unique": "attempts.signature must be unique (this signed transaction is already recorded)",
    "attempts_one_pending_per_trade": "a trade may have at most one PENDING attempt (resolve the last one first)",
    "attempts_attempt_no_unique": "attempts.attempt_no must be unique per trade",
    "attempts_raw_tx_not_empty": "attempts.raw_tx must not be empty",
    "attempts_last_valid_block_height_not_negative": "attempts.last_valid_block_height must be >= 0",
    "attempts_slippage_bps_range": "attempts.slippage_bps must be between 0 and 10000",
    "attempts_quote_out_amount_positive": "attempts.quote_out_amount must be > 0",
    "attempts_outcome_valid": "attempts.outcome must be an AttemptOutcome",
    "attempts_reason_valid": "attempts.reason must be a ReasonCode",
    "alerts_kind_not_empty": "alerts.kind must not be empty",
    "alerts_severity_valid": "alerts.severity must be info, warning or critical",
    "alerts_message_not_empty": "alerts.message must not be empty",
    "trader_scores_score_range": "trader_scores.score must be between 0 and 100",
    "trader_scores_rank_positive": "trader_scores.rank must be >= 1",
    "trader_scores_trades_not_negative": "trader_scores.trades must be >= 0",
    "trader_scores_wallet_not_empty": "trader_scores.wallet must not be empty",
}


def translate(exc: BaseException) -> LedgerError:
    """The xorj error for a psycopg / pool exception (never carrying the DSN or its password)."""
    if isinstance(exc, (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)):
        return LedgerUnavailableError(f"ledger unavailable: no database connection ({type(exc).__name__})")
    if isinstance(exc, psycopg.errors.IntegrityError):
        diag = exc.diag
        constraint = diag.constraint_name or ""
        rule = CONSTRAINT_RULES.get(constraint)
        where = ".".join(p for p in (diag.table_name, diag.column_name) if p)
        if rule:
            message = f"ledger constraint {constraint} violated: {rule}"
        else:
            message = f"ledger constraint {constraint or '?'} violated on {where or '?'}: {diag.message_primary}"
        if diag.message_detail:
            message += f" ({diag.message_detail})"
        return LedgerConstraintError(message, constraint=diag.constraint_name)
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        # Connection refused/lost, admin shutdown, server crash: the write's fate is the server's.
        return LedgerUnavailableError(f"ledger unavailable: {type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, psycopg.DataError):
        return LedgerConstraintError(f"ledger rejected a value: {_first_line(exc)}")
    return LedgerError(f"ledger error: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise psycopg and pool errors as :class:`LedgerError` subclasses."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
        raise translate(exc) from exc


def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    connect_timeout: float = 5.0,
    acquire_timeout: float = 5.0,
    name: str = "xorj-ledger",
) -> psycopg_pool.ConnectionPool:
    """Open a pool that lends only live connections and keeps reconnecting while the server is away.

    ``acquire_timeout`` bounds how long a caller waits for a connection before the call becomes
    :class:`LedgerUnavailableError`; the pool itself keeps trying to reconnect in the background.
    """
    pool = psycopg_pool.ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=acquire_timeout,
        # A connect attempt that hangs must not hold a caller past its acquire timeout.
        kwargs={"connect_timeout": max(1, int(connect_timeout)), "application_name": name},
        check=psycopg_pool.ConnectionPool.check_connection,
        # Keep retrying in the background for a long time: the server coming back is the normal case.
        reconnect_timeout=3600.0,
        reconnect_failed=_log_reconnect_failed,
        name=name,
        open=False,
    )
    pool.open(wait=False)
    return pool


def _log_reconnect_failed(pool: psycopg_pool.ConnectionPool) -> None:
    log.error("ledger pool gave up reconnecting", extra={"pool": pool.name})
