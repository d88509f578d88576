"""``xorj score --plot FILE.png``: a real PNG of the ranking, its size fixed by the number of traders,
its text chunks naming the ranking, and the three components drawn as coloured bars."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from xorj.cli import cli
from xorj.scoring_plot import DPI, DRAWDOWN_COLOUR, ROI_COLOUR, SHARPE_COLOUR, TITLE, figure_size

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "traders-summary.csv"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return CliRunner().invoke(cli, ["score", *args], catch_exceptions=False)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every PNG chunk, each one's CRC checked."""
    assert data[:8] == PNG_SIGNATURE
    found, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) == crc
        found.append((kind, body))
        offset += 12 + length
    return found


def text_chunks(data: bytes) -> dict[str, str]:
    texts = {}
    for kind, body in chunks(data):
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
    return texts


def pixels_of(path: Path, colour: str) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
    image = np.asarray(Image.open(path).convert("RGB"))
    return int((image == rgb).all(axis=-1).sum())


def test_plot_is_a_png_of_the_ranking_with_each_component(tmp_path):
    out = tmp_path / "ranking.png"
    result = run(str(EXAMPLE), "--plot", str(out), "--output", "json")
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    kinds = [kind for kind, _ in chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height = struct.unpack(">II", dict(chunks(data))[b"IHDR"][:8])
    traders = len(EXAMPLE.read_text().splitlines()) - 1
    assert (width, height) == tuple(round(inches * DPI) for inches in figure_size(traders))
    texts = text_chunks(data)
    assert texts["Title"] == TITLE
    ranked = json.loads(result.stdout)
    assert texts["Description"] == "; ".join(
        f"{row['rank']}. {row['wallet']} {row['score']:.1f} ({row['status']})" for row in ranked)
    assert Image.open(out).size == (width, height)  # and it decodes


def test_bars_are_drawn_for_eligible_traders_only(tmp_path):
    """With every trader ineligible only the legend's swatches carry the component colours; with the
    example's eligible traders the bars do, many times over."""
    ineligible = tmp_path / "ineligible.csv"
    ineligible.write_text("wallet,trades,roi_pct,max_drawdown_pct\nNew,10,50,20\nEmpty,0,0,0\n")
    eligible_png, ineligible_png = tmp_path / "eligible.png", tmp_path / "ineligible.png"
    assert run(str(EXAMPLE), "--plot", str(eligible_png)).exit_code == 0
    assert run(str(ineligible), "--plot", str(ineligible_png)).exit_code == 0
    for colour in (SHARPE_COLOUR, ROI_COLOUR, DRAWDOWN_COLOUR):
        legend_only = pixels_of(ineligible_png, colour)
        assert 0 < legend_only < 500, colour
        assert pixels_of(eligible_png, colour) > 10 * legend_only, colour


@pytest.mark.parametrize(("target", "fragment"), [
    ("ranking.svg", "--plot: FILE must name a .png file"),
    ("no-such-dir/ranking.png", "--plot: cannot write"),
])
def test_plot_errors_are_one_line(tmp_path, target, fragment):
    result = run(str(EXAMPLE), "--plot", str(tmp_path / target))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xorj score: error: ") and fragment in lines[0], result.stderr
    assert result.stdout == ""
