"""Database rows to the domain's trade model and the typed records of :mod:`xorj.ledger.records`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import class_row

from xorj.domain.trades import Attempt, ReasonCode, Trade, TradeState
from xorj.ledger.records import Alert, AlertSeverity, StoredTraderScore, TradeEvent

Row = Mapping[str, Any]

# The columns of trades and attempts under the names of the domain model's fields, so a row builds a
# Trade / Attempt as is (psycopg's class_row for attempts; a trade also needs its attempts).
TRADE_COLUMNS = (
    "id AS trade_id, strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount, "
    "max_slippage_bps, notional_usd, copytrade, state, reason, detail, final_signature, lease_owner, "
    "lease_expires_at, created_at, updated_at, submitted_at, finished_at, risk_reserved_at, "
    "risk_reserved_usd, crash_count, fencing_token"
)
ATTEMPT_COLUMNS = (
    "id AS attempt_id, trade_id, attempt_no, signature, raw_tx, last_valid_block_height, slippage_bps, "
    "quote_out_amount, outcome, reason, send_failure, detail, created_at, resolved_at"
)
_TRADE_FIELDS = tuple(f.name for f in dataclasses.fields(Trade) if f.name != "attempts")

attempt_row = class_row(Attempt)


def trade_from_row(row: Row, attempts: Iterable[Attempt] = ()) -> Trade:
    """The trade of a row selected with :data:`TRADE_COLUMNS` (which may carry more columns, e.g. a
    lock's flags), with its attempts."""
    return Trade(**{name: row[name] for name in _TRADE_FIELDS}, attempts=tuple(attempts))


def _reason(value: str | None) -> ReasonCode | None:
    return None if value is None else ReasonCode(value)


def event_from_row(row: Row) -> TradeEvent:
    return TradeEvent(
        event_id=row["id"],
        trade_id=row["trade_id"],
        from_state=None if row["from_state"] is None else TradeState(row["from_state"]),
        to_state=TradeState(row["to_state"]),
        reason=_reason(row["reason"]),
        detail=row["detail"],
        actor=row["actor"],
        attempt_signature=row["attempt_signature"],
        at=row["at"],
    )


def alert_from_row(row: Row) -> Alert:
    return Alert(
        alert_id=row["id"],
        kind=row["kind"],
        severity=AlertSeverity(row["severity"]),
        message=row["message"],
        strategy=row["strategy"],
        trade_id=row["trade_id"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


def score_from_row(row: Row) -> StoredTraderScore:
    return StoredTraderScore(
        wallet=row["wallet"],
        score=float(row["score"]),
        status=row["status"],
        rank=row["rank"],
        sharpe=row["sharpe"],
        roi_pct=row["roi_pct"],
        max_drawdown_pct=row["max_drawdown_pct"],
        trades=row["trades"],
        normalization=row["normalization"],
        computed_at=row["computed_at"],
    )


def fetch_attempts(cur: psycopg.Cursor, query: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Attempt]:
    """Attempts selected with :data:`ATTEMPT_COLUMNS` by ``query``, in the transaction of ``cur``."""
    with cur.connection.cursor(row_factory=attempt_row) as attempts:
        return attempts.execute(query, params).fetchall()  # type: ignore[arg-type]
