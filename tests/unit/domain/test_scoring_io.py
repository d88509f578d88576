"""CSV input for Trust Score V1 (xorj.scoring_io): header detection, row-numbered errors, timestamps."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from xorj.domain.scoring import TradeHistory, TraderSummaries
from xorj.errors import InvalidInputError
from xorj.scoring_io import parse_timestamp, read_scoring_csv

DATA = Path(__file__).resolve().parents[2] / "data" / "scoring"


def read(text: str):
    return read_scoring_csv(io.StringIO(text), "traders.csv")


def test_summary_header_gives_summaries_in_any_column_order():
    data = read("roi_pct,wallet,max_drawdown_pct,trades\n90,Pro,10,100\n20,Safe Bet,2,200\n")
    assert isinstance(data, TraderSummaries)
    assert data.wallets == ("Pro", "Safe Bet")
    assert data.trades.tolist() == [100, 200]
    assert data.roi_pct.tolist() == [90.0, 20.0]
    assert data.max_drawdown_pct.tolist() == [10.0, 2.0]


def test_history_header_gives_a_trade_history_with_wallet_numbers_in_first_seen_order():
    data = read(
        "wallet,timestamp,profit_usd,volume_usd\n"
        "b,1700000000,1.5,100\n"
        "a,2023-11-14T22:13:20Z,-2,50\n"
        "b,2023-11-14T22:13:21,0,10\n"
    )
    assert isinstance(data, TradeHistory)
    assert data.wallets == ("b", "a")
    assert data.wallet_index.tolist() == [0, 1, 0]
    assert data.timestamp.tolist() == [1_700_000_000.0, 1_700_000_000.0, 1_700_000_001.0]
    assert data.profit_usd.tolist() == [1.5, -2.0, 0.0]
    assert data.volume_usd.tolist() == [100.0, 50.0, 10.0]


def test_header_spaces_bom_blank_lines_and_cell_spaces_are_tolerated():
    data = read("\ufeff wallet , trades,roi_pct ,max_drawdown_pct\n\n Pro , 100 , 90 , 10 \n\n")
    assert isinstance(data, TraderSummaries)
    assert data.wallets == ("Pro",) and data.trades.tolist() == [100]


def test_header_only_file_has_no_traders():
    data = read("wallet,trades,roi_pct,max_drawdown_pct\n")
    assert isinstance(data, TraderSummaries) and data.wallets == ()


@pytest.mark.parametrize(
    ("text", "timestamp"),
    [
        ("1700000000", 1_700_000_000.0),
        ("1700000000.25", 1_700_000_000.25),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20+00:00", 1_700_000_000.0),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000.0),
        ("2023-11-14 22:13:20", 1_700_000_000.0),  # no offset: UTC
        ("2023-11-14", 1_699_920_000.0),
    ],
)
def test_timestamps_are_unix_seconds_or_iso_8601(text, timestamp):
    assert parse_timestamp(text) == timestamp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "traders.csv: file is empty; expected a header"),
        ("\n\n", "traders.csv: file is empty"),
        ("wallet,trades,roi\nPro,1,2\n", "traders.csv row 1: unknown header 'wallet,trades,roi'"),
        (
            "wallet,trades,roi_pct,max_drawdown_pct,extra\n",
            "traders.csv row 1: unknown header 'wallet,trades,roi_pct,max_drawdown_pct,extra'",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,90,10\nA,1,2,3\n\nB,5,6,7\nC,5,6,7\nD,5,6,7\nE,1,abc,3\n",
            "traders.csv row 8: field 'roi_pct' must be a number, got 'abc'",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,,10\n",
            "traders.csv row 2: field 'roi_pct' is missing",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,nan,10\n",
            "row 2: field 'roi_pct' must be a finite number, got 'nan'",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,inf,10\n",
            "row 2: field 'roi_pct' must be a finite number",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,1.5,9,10\n",
            "row 2: field 'trades' must be a whole number >= 0, got '1.5'",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,-3,9,10\n",
            "row 2: field 'trades' must be a whole number >= 0, got '-3'",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,9,120\n",
            "row 2: field 'max_drawdown_pct' must be between 0 and 100, got '120'",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,9\n",
            "traders.csv row 2: expected 4 fields, got 3",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\n,100,9,1\n",
            "traders.csv row 2: field 'wallet' is missing",
        ),
        (
            "wallet,trades,roi_pct,max_drawdown_pct\nPro,100,9,1\nPro,50,1,1\n",
            "traders.csv row 3: field 'wallet' 'Pro' already appeared in row 2",
        ),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,1700000000,1,0\n",
            "row 2: field 'volume_usd' must be between 1e-06 and 1e+15, got '0'",
        ),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,1700000000,1,-5\n",
            "row 2: field 'volume_usd' must be between 1e-06 and 1e+15",
        ),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,yesterday,1,5\n",
            "row 2: field 'timestamp' must be ISO-8601",
        ),
        ("wallet,timestamp,profit_usd,volume_usd\nw,,1,5\n", "row 2: field 'timestamp' is missing"),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,1e30,1,5\n",
            "row 2: field 'timestamp' must be a time between 1970-01-01 and 9999-12-31",
        ),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,-5,1,5\n",
            "row 2: field 'timestamp' must be a time between",
        ),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,1700000000,x1,5\n",
            "row 2: field 'profit_usd' must be a number, got 'x1'",
        ),
        ("wallet,timestamp,profit_usd,volume_usd\nw,1700000000,1,5,6\n", "row 2: expected 4 fields, got 5"),
        (
            "wallet,timestamp,profit_usd,volume_usd\nw,1700000000,1," + "9" * 200_000 + "\n",
            "row 2: not valid CSV: field larger than field limit",
        ),
    ],
)
def test_bad_files_raise_one_invalid_input_error_naming_row_and_field(text, message):
    with pytest.raises(InvalidInputError) as caught:
        read(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_sample_files_parse():
    summary = read_scoring_csv((DATA / "summary.csv").read_text().splitlines(), "summary.csv")
    history = read_scoring_csv((DATA / "history.csv").read_text().splitlines(), "history.csv")
    assert isinstance(summary, TraderSummaries) and "Pro" in summary.wallets
    assert isinstance(history, TradeHistory)
    assert set(history.wallets) == {"steady", "volatile", "newcomer", "dabbler", "spiker"}
    assert np.all(history.volume_usd > 0)


HISTORY_HEADER = "wallet,timestamp,profit_usd,volume_usd\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # several problems in different columns: the earliest row is reported
        (
            ["a,1700000000,1,5", "a,1700000001,1,0", "a,1700000002,1,5", "a,soon,1,5"],
            "traders.csv row 3: field 'volume_usd' must be between",
        ),
        (
            ["a,1700000000,1,5", "a,soon,1,5", "a,1700000002,1,0"],
            "traders.csv row 3: field 'timestamp' must be ISO-8601",
        ),
        (["a,1700000000,1,5", ",1700000001,nan,5"], "traders.csv row 3: field 'wallet' is missing"),
        # a row of the wrong width stops reading, but an earlier bad value is still the first problem
        (
            ["a,1700000000,1,5", "a,1700000001,x,5", "a,1"],
            "traders.csv row 3: field 'profit_usd' must be a number",
        ),
        (["a,1700000000,1,5", "a,1700000001,2,5", "a,1"], "traders.csv row 4: expected 4 fields, got 2"),
        (
            ["a,1700000000,1,5", "a,1700000001,nan,5"],
            "traders.csv row 3: field 'profit_usd' must be a finite",
        ),
        (
            ["a,1700000000,1,5", "a,2024-01-01,1,5", "a,2024-13-01,1,5"],
            "row 4: field 'timestamp' must be ISO-8601",
        ),
        (["a,1700000000,1,5", ",,,"], "traders.csv row 3: field 'wallet' is missing"),
    ],
)
def test_history_errors_name_the_earliest_bad_row(rows, message):
    with pytest.raises(InvalidInputError) as caught:
        read(HISTORY_HEADER + "\n".join(rows) + "\n")
    assert message in str(caught.value)


def test_history_mixes_iso_and_unix_timestamps_row_by_row():
    data = read(HISTORY_HEADER + "a,1700000000,1,5\nb,2023-11-14T22:13:21Z,2,5\na,1700000002.5,3,5\n")
    assert isinstance(data, TradeHistory)
    assert data.timestamp.tolist() == [1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.5]
    assert data.wallet_index.tolist() == [0, 1, 0]
