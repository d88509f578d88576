"""Database rows to the domain's trade model and the typed records of :mod:`xorj.ledger.records`:
each query selects its columns under the record's field names, and psycopg's class_row builds the
record (no hand-written mapper per type)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from xorj.domain.trades import Attempt, Trade
from xorj.ledger.statements import Params, Step, records

Row = Mapping[str, Any]
_R = TypeVar("_R")

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


def trade_from_row(row: Row, attempts: Iterable[Attempt] = ()) -> Trade:
    """The trade of a row selected with :data:`TRADE_COLUMNS` (which may carry more columns, e.g. a
    lock's flags), with its attempts."""
    return Trade(**{name: row[name] for name in _TRADE_FIELDS}, attempts=tuple(attempts))


def record_from(record: type[_R], row: Row) -> _R:
    """A ``record`` (a dataclass) of a dict row that selected more columns than its fields (e.g. a
    flag next to them): the row's values of the record's fields, by name."""
    return record(**{f.name: row[f.name] for f in dataclasses.fields(record)})  # type: ignore[arg-type]


def fetch_attempts(query: str, params: Params) -> Step[list[Attempt]]:
    """Attempts selected with :data:`ATTEMPT_COLUMNS` by ``query`` (a transaction step)."""
    return records(Attempt, query, params)
