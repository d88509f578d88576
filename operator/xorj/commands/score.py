"""``xorj score FILE``: Trust Score V1 of the traders in a CSV file, best first.

Thin: :mod:`xorj.scoring_io` parses, :mod:`xorj.domain.scoring` scores, this module prints. Any bad
input ends the command with exit status 1 and one line on stderr:
``xorj score: error: traders.csv row 7: field 'roi_pct' must be a number, got 'abc'``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from xorj.domain.scoring import (
    EligibilityStatus,
    Normalization,
    ScoreBoard,
    TradeHistory,
    TraderScore,
    TraderSummaries,
    default_as_of,
    score_history,
    score_summaries,
)
from xorj.errors import XorjError
from xorj.scoring_io import SUMMARY_COLUMNS, parse_timestamp, read_scoring_csv

PROG = "xorj score"
METRIC_DECIMALS = 4  # JSON metrics are rounded for reading; the score itself has one decimal


def _fail(message: str) -> NoReturn:
    click.echo(f"{PROG}: error: {' '.join(message.split())}", err=True)
    sys.exit(1)


@click.command("score")
@click.argument("file", type=click.Path(allow_dash=True))  # checked on open: one-line errors
@click.option(
    "--normalization",
    type=click.Choice([n.value for n in Normalization]),
    default=Normalization.FIXED.value,
    show_default=True,
    help="fixed: docs/design.md's absolute scales; cohort: min-max across the eligible traders in FILE.",
)
@click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people; json: an array best first with wallet, score, rank, status, metrics.",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="TIME",
    default=None,
    help="End of the 90-day window (ISO-8601 or unix seconds; no offset means UTC). Trade-history "
    "input only; default: the latest timestamp in FILE.",
)
@click.option(
    "--plot",
    "plot",
    metavar="FILE.png",
    default=None,
    help="Also draw the ranking and each trader's three score components into this PNG file.",
)
def score(file: str, normalization: str, output: str, as_of: str | None, plot: str | None) -> None:
    """Rank the traders in FILE (CSV) by Trust Score V1.

    \b
    FILE's header decides the input kind:
      wallet,trades,roi_pct,max_drawdown_pct   summary per wallet (Sharpe from a proxy)
      wallet,timestamp,profit_usd,volume_usd   trade history (timestamps ISO-8601 or unix seconds)
    Use - for standard input.
    """
    source = "<stdin>" if file == "-" else file
    if plot is not None and not plot.lower().endswith(".png"):
        _fail(f"--plot: FILE must name a .png file, got {plot!r}")
    try:
        as_of_seconds = parse_timestamp(as_of, "--as-of") if as_of is not None else None
        data = _read(file, source)
        if isinstance(data, TradeHistory):
            when = default_as_of(data) if as_of_seconds is None else as_of_seconds
            board = score_history(data, normalization, as_of=when)
            footer = _history_footer(when if data.timestamp.size or as_of_seconds is not None else None)
        else:
            if as_of_seconds is not None:
                _fail(
                    f"--as-of applies to trade-history input only; "
                    f"{source} is a summary ({','.join(SUMMARY_COLUMNS)})"
                )
            board = score_summaries(data, normalization)
            footer = f"summary input ({','.join(SUMMARY_COLUMNS)}): eligibility by trade count only"
    except XorjError as exc:
        _fail(str(exc))
    ranked = board.ranked()
    if plot is not None:
        _plot(board, plot)
    if output == "json":
        click.echo(json.dumps([_as_json(trader) for trader in ranked], indent=2, allow_nan=False))
    else:
        click.echo(render_table(ranked))
        eligible = sum(1 for t in ranked if t.status is EligibilityStatus.ELIGIBLE)
        click.echo(
            f"{len(ranked)} traders, {eligible} eligible; normalization {board.normalization.value}; {footer}"
        )


def _plot(board: ScoreBoard, path: str) -> None:
    try:
        from xorj.scoring_plot import render_png

        with open(path, "wb") as stream:
            render_png(board, stream)
    except ImportError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"--plot: cannot write {path}: {exc.strerror or exc}")


def _read(file: str, source: str) -> TraderSummaries | TradeHistory:
    try:
        if file == "-":
            return read_scoring_csv(click.get_text_stream("stdin"), source)
        with open(file, newline="", encoding="utf-8-sig") as stream:
            return read_scoring_csv(stream, source)
    except FileNotFoundError:
        _fail(f"{source}: no such file")
    except IsADirectoryError:
        _fail(f"{source}: is a directory, expected a CSV file")
    except PermissionError:
        _fail(f"{source}: permission denied")
    except UnicodeDecodeError:
        _fail(f"{source}: not UTF-8 text")
    except OSError as exc:
        _fail(f"{source}: cannot read: {exc.strerror or exc}")


def _round(value: float | None, decimals: int) -> float | None:
    """Rounded for reading; None (JSON null) where undefined. JSON has no NaN or Infinity."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, decimals) + 0.0


def _as_json(trader: TraderScore) -> dict[str, Any]:
    return {
        "wallet": trader.wallet,
        "score": trader.score,
        "rank": trader.rank,
        "status": trader.status.value,
        "sharpe": _round(trader.sharpe, METRIC_DECIMALS),
        "roi_pct": _round(trader.roi_pct, METRIC_DECIMALS),
        "max_drawdown_pct": _round(trader.max_drawdown_pct, METRIC_DECIMALS),
        "trades": trader.trades,
    }


# (title, right-aligned?, cell) per column of the table.
_COLUMNS: Sequence[tuple[str, bool, Any]] = (
    ("RANK", True, lambda t: str(t.rank)),
    ("WALLET", False, lambda t: t.wallet),
    ("SCORE", True, lambda t: f"{t.score:.1f}"),
    ("STATUS", False, lambda t: t.status.value),
    ("SHARPE", True, lambda t: "-" if t.sharpe is None else f"{t.sharpe:.3f}"),
    ("ROI %", True, lambda t: "-" if t.roi_pct is None else f"{t.roi_pct:.2f}"),
    ("MAX DD %", True, lambda t: "-" if t.max_drawdown_pct is None else f"{t.max_drawdown_pct:.2f}"),
    ("TRADES", True, lambda t: str(t.trades)),
)


def render_table(ranked: Sequence[TraderScore]) -> str:
    """Aligned columns, numbers right-aligned, ``-`` where a metric is not defined."""
    cells = [[cell(trader) for _, _, cell in _COLUMNS] for trader in ranked]
    widths = [max([len(title)] + [len(row[i]) for row in cells]) for i, (title, _, _) in enumerate(_COLUMNS)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, (_, right, _) in zip(values, widths, _COLUMNS)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line([title for title, _, _ in _COLUMNS])] + [line(row) for row in cells])


def _history_footer(window_end: float | None) -> str:
    if window_end is None:
        return "trade history: no trades"
    end = datetime.fromtimestamp(window_end, tz=UTC).isoformat().replace("+00:00", "Z")
    return f"trade history: 90-day window ending {end}"
