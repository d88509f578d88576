"""``xorj score``: JSON and table output, input detection, and one-line errors (click's CliRunner, plus one
real subprocess through the installed console script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from xorj.cli import cli
from xorj.domain.scoring import score_history, score_summaries
from xorj.scoring_io import read_scoring_csv

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "scoring"
SUMMARY = DATA / "summary.csv"
HISTORY = DATA / "history.csv"
EXAMPLE = ROOT / "examples" / "traders-summary.csv"
FIELDS = {"wallet", "score", "rank", "status", "sharpe", "roi_pct", "max_drawdown_pct", "trades"}


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["score", *args], input=input, catch_exceptions=False)


def run_json(*args: str) -> list[dict]:
    result = run(*args, "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xorj score: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


# --- JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["fixed", "cohort"])
def test_summary_json_is_best_first_with_every_field(normalization):
    rows = run_json(str(SUMMARY), "--normalization", normalization)
    assert all(set(row) == FIELDS for row in rows)
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
    position = {row["wallet"]: row["rank"] for row in rows}
    assert position["Pro"] < position["Safe Bet"] < position["Gambler"]
    by_wallet = {row["wallet"]: row for row in rows}
    assert by_wallet["Gambler"]["status"] == "INSUFFICIENT_TRADES" and by_wallet["Gambler"]["score"] == 0
    fresh = by_wallet["Fresh Wallet"]
    assert fresh["status"] == "NO_DATA"
    assert (fresh["sharpe"], fresh["roi_pct"], fresh["max_drawdown_pct"]) == (None, None, None)
    for row in rows:
        assert isinstance(row["score"], float) and 0 <= row["score"] <= 100
        assert isinstance(row["rank"], int) and isinstance(row["trades"], int)
    # The command prints what the domain computes for the same file.
    board = score_summaries(read_scoring_csv(SUMMARY.read_text().splitlines(), "s"), normalization)
    assert [(row["wallet"], row["score"], row["status"]) for row in rows] == [
        (t.wallet, t.score, t.status.value) for t in board.ranked()
    ]


def test_json_has_no_nan_or_infinity_tokens():
    for path in (SUMMARY, HISTORY):
        for normalization in ("fixed", "cohort"):
            text = run(str(path), "--output", "json", "--normalization", normalization).stdout
            assert "NaN" not in text and "Infinity" not in text
            json.loads(text)


def test_history_json_reports_each_status_and_matches_the_domain():
    rows = run_json(str(HISTORY))
    status = {row["wallet"]: row["status"] for row in rows}
    assert status == {
        "steady": "ELIGIBLE",
        "volatile": "ELIGIBLE",
        "newcomer": "INSUFFICIENT_HISTORY",
        "dabbler": "INSUFFICIENT_TRADES",
        "spiker": "EXTREME_ROI_SPIKE",
    }
    assert rows[0]["wallet"] == "steady" and rows[0]["score"] > 0
    assert all(row["score"] == 0 for row in rows if row["status"] != "ELIGIBLE")
    history = read_scoring_csv(HISTORY.read_text().splitlines(), "h")
    assert [(r["wallet"], r["score"]) for r in rows] == [
        (t.wallet, t.score) for t in score_history(history).ranked()
    ]


def test_as_of_moves_the_window_and_accepts_iso_or_unix_seconds():
    latest = run_json(str(HISTORY))
    earlier_iso = run_json(str(HISTORY), "--as-of", "2024-05-01T00:00:00Z")
    earlier_unix = run_json(str(HISTORY), "--as-of", "1714521600")
    assert earlier_iso == earlier_unix
    assert earlier_iso != latest
    # On 1 May the newcomer (first trade ~21 May) has no trade yet: nothing in the window.
    assert {r["wallet"]: r["status"] for r in earlier_iso}["newcomer"] == "NO_DATA"


def test_standard_input_is_read_with_a_dash():
    result = run("-", "--output", "json", input=SUMMARY.read_text())
    assert result.exit_code == 0
    assert json.loads(result.stdout) == run_json(str(SUMMARY))


def test_header_only_file_prints_an_empty_array(tmp_path):
    path = tmp_path / "none.csv"
    path.write_text("wallet,trades,roi_pct,max_drawdown_pct\n")
    assert run_json(str(path)) == []


# --- table -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SUMMARY, HISTORY])
def test_table_columns_are_aligned(path):
    result = run(str(path))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header, rows, footer = lines[0], lines[1:-1], lines[-1]
    assert header.split()[:3] == ["RANK", "WALLET", "SCORE"]
    assert len(rows) == len(read_scoring_csv(path.read_text().splitlines(), "x").wallets)
    # Numbers are right-aligned under their titles, text left-aligned.
    for title in ("RANK", "SCORE", "SHARPE", "TRADES"):
        end = header.index(title) + len(title)
        for row in rows:
            assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (title, row)
    for title in ("WALLET", "STATUS"):
        start = header.index(title)
        for row in rows:
            assert row[start] != " " and row[start - 1] == " ", (title, row)
    assert "traders" in footer and "eligible" in footer


def test_table_shows_a_dash_for_undefined_metrics():
    lines = run(str(SUMMARY)).stdout.splitlines()
    fresh = next(line for line in lines if "Fresh Wallet" in line)
    assert "NO_DATA" in fresh and " - " in fresh


def test_example_file_ranks_the_reference_profiles():
    rows = run_json(str(EXAMPLE))
    order = [row["wallet"] for row in rows]
    assert order.index("Pro") < order.index("Safe Bet") < order.index("Gambler")


# --- errors: one clear line, exit status 1 ---------------------------------------------------------


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_bad_row_names_file_row_and_field(tmp_path):
    rows = "".join(f"w{i},100,10,5\n" for i in range(5))
    path = write(
        tmp_path, "traders.csv", "wallet,trades,roi_pct,max_drawdown_pct\n" + rows + "w9,100,abc,5\n"
    )
    result = run(path)
    assert_one_line_error(result, "traders.csv row 7: field 'roi_pct' must be a number, got 'abc'")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "file is empty"),
        ("name,score\nx,1\n", "unknown header 'name,score'"),
        ("wallet,trades,roi_pct,max_drawdown_pct\nPro,100,90\n", "row 2: expected 4 fields, got 3"),
        ("wallet,timestamp,profit_usd,volume_usd\nw,soon,1,5\n", "row 2: field 'timestamp' must be ISO-8601"),
        (b"wallet,trades,roi_pct,max_drawdown_pct\nPr\xff,1,2,3\n", "not UTF-8 text"),
    ],
)
def test_bad_files_fail_with_one_line(tmp_path, content, fragment):
    assert_one_line_error(run(write(tmp_path, "bad.csv", content)), "bad.csv", fragment)


def test_missing_file_and_directory_fail_with_one_line(tmp_path):
    assert_one_line_error(run(str(tmp_path / "nope.csv")), "nope.csv: no such file")
    assert_one_line_error(run(str(tmp_path)), "is a directory")


def test_bad_as_of_fails_with_one_line():
    assert_one_line_error(run(str(HISTORY), "--as-of", "last tuesday"), "field '--as-of' must be ISO-8601")
    assert_one_line_error(
        run(str(SUMMARY), "--as-of", "2024-01-01"), "--as-of applies to trade-history input only"
    )


# --- a real process --------------------------------------------------------------------------------


def _console_script() -> str:
    here = Path(sys.executable).parent
    found = shutil.which("xorj", path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))
    assert found, "the xorj console script is not installed (pip install -e '.[test]')"
    return found


def test_console_script_in_a_subprocess(tmp_path):
    xorj = _console_script()
    done = subprocess.run(
        [xorj, "score", str(EXAMPLE), "--output", "json", "--normalization", "cohort"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    order = [row["wallet"] for row in json.loads(done.stdout)]
    assert order.index("Pro") < order.index("Safe Bet") < order.index("Gambler")

    bad = write(tmp_path, "traders.csv", "wallet,trades,roi_pct,max_drawdown_pct\nPro,ten,90,10\n")
    failed = subprocess.run([xorj, "score", bad], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"xorj score: error: {bad} row 2: field 'trades' must be a whole number >= 0, got 'ten'"
    ]
