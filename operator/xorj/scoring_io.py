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

Numbers must be finite and within the domain's accepted ranges
(:data:`xorj.domain.scoring.VALUE_LIMITS`: e.g. volume 1e-6..1e15 USD, drawdown 0..100 %).

Row numbers in errors are line numbers of the file, counting the header as row 1 (what a spreadsheet
shows). Blank lines are skipped. Every error is an :class:`~xorj.errors.InvalidInputError` whose message
names the source, the row, the field and the rule, e.g.
``traders.csv row 7: field 'roi_pct' must be a number, got 'abc'``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from xorj.domain.scoring import VALUE_LIMITS, TradeHistory, TraderSummaries, describe_limits, within_limits
from xorj.errors import InvalidInputError

SUMMARY_COLUMNS = ("wallet", "trades", "roi_pct", "max_drawdown_pct")
HISTORY_COLUMNS = ("wallet", "timestamp", "profit_usd", "volume_usd")

_T = TypeVar("_T")


class _CsvReader(Protocol):
    """What this module uses of ``csv.reader`` objects."""

    line_num: int

    def __iter__(self) -> _CsvReader: ...

    def __next__(self) -> list[str]: ...


def _present(text: str, field: str) -> str:
    """The stripped value, or InvalidInputError when the field is empty."""
    value = text.strip()
    if not value:
        raise InvalidInputError(f"field '{field}' is missing")
    return value


def _within_limits(number: float, text: str, field: str) -> float:
    if field in VALUE_LIMITS and not within_limits(field, number):
        raise InvalidInputError(f"field '{field}' must be {describe_limits(field)}, got {text!r}")
    return number


def parse_number(text: str, field: str) -> float:
    """A finite decimal number within ``VALUE_LIMITS[field]``, or InvalidInputError naming ``field``."""
    value = _present(text, field)
    try:
        number = float(value)
    except ValueError:
        raise InvalidInputError(f"field '{field}' must be a number, got {text!r}") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"field '{field}' must be a finite number, got {text!r}")
    return _within_limits(number, text, field)


def parse_whole_number(text: str, field: str) -> int:
    """A whole number >= 0 written without a fraction (``100``, not ``100.0``)."""
    value = _present(text, field)
    try:
        number = int(value)
    except ValueError:
        raise InvalidInputError(f"field '{field}' must be a whole number >= 0, got {text!r}") from None
    if number < 0:
        raise InvalidInputError(f"field '{field}' must be a whole number >= 0, got {text!r}")
    return _within_limits(number, text, field)


def parse_timestamp(text: str, field: str = "timestamp") -> float:
    """Unix seconds from unix seconds or ISO-8601 text (no offset means UTC)."""
    value = _present(text, field)
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not (math.isfinite(number) and within_limits("timestamp", number)):
            raise InvalidInputError(f"field '{field}' must be {describe_limits('timestamp')}, got {text!r}")
        return number
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"field '{field}' must be ISO-8601 (e.g. 2024-05-01T12:00:00Z) or unix seconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        seconds = moment.timestamp()
    except (OverflowError, ValueError):  # e.g. 0001-01-01 with a positive offset
        seconds = float("nan")
    if not within_limits("timestamp", seconds):  # NaN fails too
        raise InvalidInputError(f"field '{field}' must be {describe_limits('timestamp')}, got {text!r}")
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
        f"{source}: file is empty; expected a header "
        f"{','.join(SUMMARY_COLUMNS)!r} or {','.join(HISTORY_COLUMNS)!r}"
    )


def _rows(reader: _CsvReader, source: str) -> Iterable[list[str]]:
    """Non-blank rows; csv's own errors (e.g. an oversized field) become InvalidInputError with the row."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInputError(f"{source} row {reader.line_num}: not valid CSV: {exc}") from None
        if row and (len(row) > 1 or row[0].strip()):  # skip blank lines; ",,," is a row of empty fields
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
        drawdown.append(_field(row, at["max_drawdown_pct"], "max_drawdown_pct", parse_number, where))
    return TraderSummaries(
        wallets=tuple(wallets),
        trades=np.array(trades, dtype=np.int64),
        roi_pct=np.array(roi, dtype=np.float64),
        max_drawdown_pct=np.array(drawdown, dtype=np.float64),
    )


def _read_history(reader: _CsvReader, source: str, columns: tuple[str, ...]) -> TradeHistory:
    """Column-wise for speed (a million rows): collect each column's text, convert a whole column at
    once, and only when that fails go back through it to name the first bad row. Of several problems,
    the one in the earliest row is reported."""
    at = {name: columns.index(name) for name in HISTORY_COLUMNS}
    wallet_at, time_at, profit_at, volume_at = (at[name] for name in HISTORY_COLUMNS)
    width = len(columns)
    wallet_text: list[str] = []
    time_text: list[str] = []
    profit_text: list[str] = []
    volume_text: list[str] = []
    line_numbers: list[int] = []
    width_problem: str | None = None
    try:
        for row in reader:  # not through _rows(): this loop is the hot path
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                width_problem = f"{source} row {reader.line_num}: expected {width} fields, got {len(row)}"
                break  # rows before it may still hold an earlier problem: checked below
            wallet_text.append(row[wallet_at])
            time_text.append(row[time_at])
            profit_text.append(row[profit_at])
            volume_text.append(row[volume_at])
            line_numbers.append(reader.line_num)
    except csv.Error as exc:
        width_problem = f"{source} row {reader.line_num}: not valid CSV: {exc}"

    wallet_numbers, wallet_index, wallet_problem = _wallet_column(wallet_text)
    timestamps, time_problem = _number_column(time_text, "timestamp", parse_timestamp)
    profits, profit_problem = _number_column(profit_text, "profit_usd", parse_number)
    volumes, volume_problem = _number_column(volume_text, "volume_usd", parse_number)
    problems = [p for p in (wallet_problem, time_problem, profit_problem, volume_problem) if p is not None]
    if problems:
        position, message = min(problems, key=lambda problem: problem[0])
        raise InvalidInputError(f"{source} row {line_numbers[position]}: {message}")
    if width_problem is not None:
        raise InvalidInputError(width_problem)
    return TradeHistory(
        wallets=tuple(wallet_numbers),
        wallet_index=wallet_index,
        timestamp=timestamps,
        profit_usd=profits,
        volume_usd=volumes,
    )


_Problem = tuple[int, str]  # (position in the column, message without the row)


def _wallet_column(texts: list[str]) -> tuple[dict[str, int], npt.NDArray[np.int64], _Problem | None]:
    names = [text.strip() for text in texts]
    numbers: dict[str, int] = {}
    index = np.array([numbers.setdefault(name, len(numbers)) for name in names], dtype=np.int64)
    if "" in numbers:
        return numbers, index, (names.index(""), "field 'wallet' is missing")
    return numbers, index, None


def _number_column(
    texts: list[str], field: str, parse: Callable[[str, str], float]
) -> tuple[npt.NDArray[np.float64], _Problem | None]:
    """All of a column through float() at once; ``parse`` (the row-by-row rules) only to find and word
    the first value that breaks them (not a number, not finite, outside VALUE_LIMITS)."""
    try:
        values = np.array(list(map(float, texts)), dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:
        low, high = VALUE_LIMITS[field]
        bad = np.flatnonzero(~((values >= low) & (values <= high)))  # NaN fails both comparisons
        if not bad.size:
            return values, None
        start = int(bad[0])  # every value before it passed
    else:
        start = 0
    parsed = np.empty(len(texts), dtype=np.float64)
    for position in range(start, len(texts)):
        try:
            parsed[position] = parse(texts[position], field)
        except InvalidInputError as exc:
            return parsed, (position, str(exc))
    if values is None:  # e.g. ISO-8601 timestamps: float() refuses them, parse() reads them all
        return parsed, None
    raise AssertionError(f"field {field!r}: float() and {parse.__name__} disagree")  # pragma: no cover
