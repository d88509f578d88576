"""CSV input for Trust Score V1: turns lines of text (already opened by the caller) into the column-wise
inputs of :mod:`xorj.domain.scoring`. No file access here; the CLI opens the file and streams it in.

The header decides the kind of input (column order free, names exact, surrounding spaces ignored):

* ``wallet,trades,roi_pct,max_drawdown_pct`` -> :class:`~xorj.domain.scoring.TraderSummaries`
  (one row per wallet; wallets unique).
* ``wallet,timestamp,profit_usd,volume_usd`` -> :class:`~xorj.domain.scoring.TradeHistory`
  (one row per closed trade, any order).

Timestamps are unix seconds (a plain number, fractions allowed) or ISO-8601 (``2024-05-01T12:00:00Z``,
``2024-05-01 12:00:00+02:00``, ``2024-05-01``); an ISO time without an offset is UTC. A bare number is
always unix seconds, so ``20240501`` is a time in 1970, not a date.

Row numbers in errors are line numbers of the file, counting the header as row 1 (what a spreadsheet
shows). Blank lines are skipped. Every error is an :class:`~xorj.errors.InvalidInputError` whose message
names the source, the row, the field and the rule, e.g.
``traders.csv row 7: field 'roi_pct' must be a number, got 'abc'``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Protocol, TypeVar

import numpy as np

from xorj.domain.scoring import TradeHistory, TraderSummaries
from xorj.errors import InvalidInputError

SUMMARY_COLUMNS = ("wallet", "trades", "roi_pct", "max_drawdown_pct")
HISTORY_COLUMNS = ("wallet", "timestamp", "profit_usd", "volume_usd")

# Times outside this range cannot be shown as dates, and no trade happened before 1970.
EARLIEST_TIME = 0.0
LATEST_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z

_T = TypeVar("_T")


class _CsvReader(Protocol):
    """What this module uses of ``csv.reader`` objects."""

    line_num: int

    def __next__(self) -> list[str]: ...


def parse_number(text: str, field: str) -> float:
    """A finite decimal number, or InvalidInputError naming ``field``."""
    value = text.strip()
    if not value:
        raise InvalidInputError(f"field '{field}' is missing")
    try:
        number = float(value)
    except ValueError:
        raise InvalidInputError(f"field '{field}' must be a number, got {text!r}") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"field '{field}' must be a finite number, got {text!r}")
    return number


def parse_whole_number(text: str, field: str) -> int:
    """A whole number >= 0 written without a fraction (``100``, not ``100.0``)."""
    value = text.strip()
    if not value:
        raise InvalidInputError(f"field '{field}' is missing")
    try:
        number = int(value)
    except ValueError:
        raise InvalidInputError(f"field '{field}' must be a whole number >= 0, got {text!r}") from None
    if number < 0:
        raise InvalidInputError(f"field '{field}' must be a whole number >= 0, got {text!r}")
    return number


def parse_timestamp(text: str, field: str = "timestamp") -> float:
    """Unix seconds from unix seconds or ISO-8601 text (no offset means UTC)."""
    value = text.strip()
    if not value:
        raise InvalidInputError(f"field '{field}' is missing")
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not (math.isfinite(number) and EARLIEST_TIME <= number <= LATEST_TIME):
            raise InvalidInputError(
                f"field '{field}' must be a time between 1970-01-01 and 9999-12-31, got {text!r}"
            )
        return number
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"field '{field}' must be ISO-8601 (e.g. 2024-05-01T12:00:00Z) or unix seconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        seconds = moment.timestamp()
    except (OverflowError, ValueError):  # e.g. 0001-01-01 with a positive offset
        seconds = float("nan")
    if not EARLIEST_TIME <= seconds <= LATEST_TIME:
        raise InvalidInputError(f"field '{field}' must be a time between 1970-01-01 and 9999-12-31, got {text!r}")
    return seconds


def read_scoring_csv(lines: Iterable[str], source: str) -> TraderSummaries | TradeHistory:
    """Parse a scoring CSV (summary or trade history, decided by the header); streams ``lines``."""
    reader = csv.reader(lines)
    header = _read_header(reader, source)
    columns = tuple(name.strip().lstrip("\ufeff").strip() for name in header)
    if sorted(columns) == sorted(SUMMARY_COLUMNS):
        return _read_summaries(reader, source, columns)
    if sorted(columns) == sorted(HISTORY_COLUMNS):
        return _read_history(reader, source, columns)
    raise InvalidInputError(
        f"{source} row {reader.line_num}: unknown header {','.join(columns)!r}; expected "
        f"{','.join(SUMMARY_COLUMNS)!r} (summary) or {','.join(HISTORY_COLUMNS)!r} (trade history)"
    )


def _read_header(reader: _CsvReader, source: str) -> list[str]:
    for row in _rows(reader, source):
        return row
    raise InvalidInputError(
        f"{source}: file is empty; expected a header {','.join(SUMMARY_COLUMNS)!r} or {','.join(HISTORY_COLUMNS)!r}"
    )


def _rows(reader: _CsvReader, source: str) -> Iterable[list[str]]:
    """Non-blank rows; csv's own errors (e.g. a NUL byte) become InvalidInputError with the row."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInputError(f"{source} row {reader.line_num}: not valid CSV: {exc}") from None
        if row and any(cell.strip() for cell in row):
            yield row


def _field(row: list[str], position: int, name: str, parse: Callable[[str, str], _T], where: str) -> _T:
    try:
        return parse(row[position], name)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


def _wallet(row: list[str], position: int, where: str) -> str:
    wallet = row[position].strip()
    if not wallet:
        raise InvalidInputError(f"{where}: field 'wallet' is missing")
    return wallet


def _check_width(row: list[str], width: int, where: str) -> None:
    if len(row) != width:
        raise InvalidInputError(f"{where}: expected {width} fields, got {len(row)}")


def _read_summaries(reader: _CsvReader, source: str, columns: tuple[str, ...]) -> TraderSummaries:
    at = {name: columns.index(name) for name in SUMMARY_COLUMNS}
    wallets: list[str] = []
    first_row: dict[str, int] = {}
    trades: list[int] = []
    roi: list[float] = []
    drawdown: list[float] = []
    for row in _rows(reader, source):
        where = f"{source} row {reader.line_num}"
        _check_width(row, len(columns), where)
        wallet = _wallet(row, at["wallet"], where)
        if wallet in first_row:
            raise InvalidInputError(
                f"{where}: field 'wallet' {wallet!r} already appeared in row {first_row[wallet]}; "
                "summary input needs one row per wallet"
            )
        first_row[wallet] = reader.line_num
        wallets.append(wallet)
        trades.append(_field(row, at["trades"], "trades", parse_whole_number, where))
        roi.append(_field(row, at["roi_pct"], "roi_pct", parse_number, where))
        dd = _field(row, at["max_drawdown_pct"], "max_drawdown_pct", parse_number, where)
        if not 0.0 <= dd <= 100.0:
            raise InvalidInputError(f"{where}: field 'max_drawdown_pct' must be between 0 and 100, got {dd:g}")
        drawdown.append(dd)
    return TraderSummaries(
        wallets=tuple(wallets),
        trades=np.array(trades, dtype=np.int64),
        roi_pct=np.array(roi, dtype=np.float64),
        max_drawdown_pct=np.array(drawdown, dtype=np.float64),
    )


def _read_history(reader: _CsvReader, source: str, columns: tuple[str, ...]) -> TradeHistory:
    at = {name: columns.index(name) for name in HISTORY_COLUMNS}
    wallet_numbers: dict[str, int] = {}
    wallet_index: list[int] = []
    timestamps: list[float] = []
    profits: list[float] = []
    volumes: list[float] = []
    width = len(columns)
    for row in _rows(reader, source):
        # The hot loop (a million rows): build the location string only when something is wrong.
        try:
            if len(row) != width:
                raise InvalidInputError(f"expected {width} fields, got {len(row)}")
            wallet = row[at["wallet"]].strip()
            if not wallet:
                raise InvalidInputError("field 'wallet' is missing")
            timestamps.append(parse_timestamp(row[at["timestamp"]]))
            profits.append(parse_number(row[at["profit_usd"]], "profit_usd"))
            volume = parse_number(row[at["volume_usd"]], "volume_usd")
            if volume <= 0:
                raise InvalidInputError(f"field 'volume_usd' must be greater than 0, got {volume:g}")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source} row {reader.line_num}: {exc}") from None
        volumes.append(volume)
        wallet_index.append(wallet_numbers.setdefault(wallet, len(wallet_numbers)))
    return TradeHistory(
        wallets=tuple(wallet_numbers),
        wallet_index=np.array(wallet_index, dtype=np.int64),
        timestamp=np.array(timestamps, dtype=np.float64),
        profit_usd=np.array(profits, dtype=np.float64),
        volume_usd=np.array(volumes, dtype=np.float64),
    )
