"""Database rows (dicts from psycopg's ``dict_row``) to the typed records of :mod:`xorj.ledger.records`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.ledger.records import (
    Alert,
    AlertSeverity,
    Attempt,
    Trade,
    TradeEvent,
    TraderScore,
)

Row = Mapping[str, Any]

TRADE_COLUMNS = (
    "id, strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount, max_slippage_bps, "
    "notional_usd, copytrade, state, reason, detail, final_signature, lease_owner, lease_expires_at, "
    "created_at, updated_at, submitted_at, finished_at, risk_reserved_at, "
    "risk_reserved_usd, crash_count"
)
ATTEMPT_COLUMNS = (
    "id, trade_id, attempt_no, signature, raw_tx, last_valid_block_height, slippage_bps, quote_out_amount, "
    "outcome, reason, detail, created_at, resolved_at"
)


def _int_or_none(value: Decimal | int | None) -> int | None:
    return None if value is None else int(value)


def _reason(value: str | None) -> ReasonCode | None:
    return None if value is None else ReasonCode(value)


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        attempt_id=row["id"],
        trade_id=row["trade_id"],
        attempt_no=row["attempt_no"],
        signature=row["signature"],
        raw_tx=bytes(row["raw_tx"]),
        last_valid_block_height=row["last_valid_block_height"],
        slippage_bps=row["slippage_bps"],
        quote_out_amount=_int_or_none(row["quote_out_amount"]),
        outcome=AttemptOutcome(row["outcome"]),
        reason=_reason(row["reason"]),
        detail=row["detail"],
        created_at=row["created_at"],
        resolved_at=row["resolved_at"],
    )


def trade_from_row(row: Row, attempts: Iterable[Attempt] = ()) -> Trade:
    return Trade(
        trade_id=row["id"],
        strategy=row["strategy"],
        vault=row["vault"],
        lead_signature=row["lead_signature"],
        lead_trader=row["lead_trader"],
        input_mint=row["input_mint"],
        output_mint=row["output_mint"],
        amount=int(row["amount"]),
        max_slippage_bps=row["max_slippage_bps"],
        notional_usd=row["notional_usd"],
        copytrade=row["copytrade"],
        state=TradeState(row["state"]),
        reason=_reason(row["reason"]),
        detail=row["detail"],
        final_signature=row["final_signature"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        attempts=tuple(sorted(attempts, key=lambda a: a.attempt_no)),
        risk_reserved_at=row["risk_reserved_at"],
        risk_reserved_usd=row["risk_reserved_usd"],
        crash_count=row["crash_count"],
    )


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


def score_from_row(row: Row) -> TraderScore:
    return TraderScore(
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
