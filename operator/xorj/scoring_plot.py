"""``xorj score --plot FILE.png``: the ranking as a picture, drawn offline with matplotlib (Agg).

One row per trader, best first (at most :data:`MAX_TRADERS`): the three terms of Trust Score V1 as
bars in score points (Sharpe and ROI to the right of zero, the drawdown penalty to the left, from
:func:`xorj.domain.scoring.score_components`) and the score itself as a black mark; an ineligible
trader gets no bars, only its status. The PNG's text chunks say what it shows (``Title``) and the
ranking in words (``Description``) for anyone who cannot look at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from xorj.domain.scoring import (
    DRAWDOWN_WEIGHT,
    ROI_WEIGHT,
    SHARPE_WEIGHT,
    ScoreBoard,
    score_components,
)

MAX_TRADERS = 50
WIDTH_IN = 10.0
DPI = 100
SHARPE_COLOUR = "#3182bd"
ROI_COLOUR = "#31a354"
DRAWDOWN_COLOUR = "#de2d26"
TITLE = "xorj Trust Score V1 ranking"


def figure_size(traders: int) -> tuple[float, float]:
    """Inches: a fixed width, a row per trader plotted (at most :data:`MAX_TRADERS`)."""
    return WIDTH_IN, 1.8 + 0.32 * max(1, min(traders, MAX_TRADERS))


def _label(wallet: str) -> str:
    return wallet if len(wallet) <= 18 else f"{wallet[:8]}…{wallet[-6:]}"


def describe(board: ScoreBoard) -> str:
    """The ranking in words: one ``rank. wallet score (status)`` per trader, best first."""
    return "; ".join(f"{t.rank}. {t.wallet} {t.score:.1f} ({t.status.value})" for t in board.ranked())


def render_png(board: ScoreBoard, stream: BinaryIO | Path) -> None:
    """Draw ``board`` as a PNG of :func:`figure_size` x :data:`DPI` pixels into ``stream``."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'xorj-operator[plots]'") from None
    matplotlib.use("Agg")  # offline, no display
    import matplotlib.pyplot as plt

    ranked = board.ranked()
    shown = ranked[:MAX_TRADERS]
    index = {wallet: i for i, wallet in enumerate(board.metrics.wallets)}
    sharpe, roi, drawdown = (values.tolist() for values in score_components(board))
    rows = range(len(shown))
    fig, ax = plt.subplots(figsize=figure_size(len(ranked)), dpi=DPI, layout="constrained")
    s = [sharpe[index[t.wallet]] for t in shown]
    r = [roi[index[t.wallet]] for t in shown]
    d = [drawdown[index[t.wallet]] for t in shown]
    ax.barh(rows, s, color=SHARPE_COLOUR, label=f"Sharpe: +{SHARPE_WEIGHT:.2f} nS x 100")
    ax.barh(rows, r, left=s, color=ROI_COLOUR, label=f"ROI: +{ROI_WEIGHT:.2f} nR x 100")
    ax.barh(rows, d, color=DRAWDOWN_COLOUR, label=f"drawdown: -{DRAWDOWN_WEIGHT:.2f} nD x 100")
    ax.scatter([t.score for t in shown], rows, marker="D", color="black", zorder=3, s=18, label="score")
    right = max([55.0] + [a + b for a, b in zip(s, r)])
    for row, trader in zip(rows, shown):
        ax.text(right * 1.03, row, f"{trader.score:.1f}", va="center", fontsize=8)
        if not trader.eligible:
            ax.text(1.0, row, f"not scored: {trader.status.value}", va="center", fontsize=8, color="#777777")
    ax.set_yticks(list(rows), [f"#{t.rank} {_label(t.wallet)}" for t in shown])
    ax.set_ylim(len(shown) - 0.5, -0.5)  # rank 1 at the top
    ax.set_xlim(min([-50.0] + d) * 1.05, right * 1.12)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("score points (score = max(0, sum of the three) rounded to 0.1)")
    more = f", best {len(shown)} of {len(ranked)}" if len(ranked) > len(shown) else ""
    ax.set_title(f"Trust Score V1 ranking ({board.normalization.value} normalization{more})", loc="left")
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    fig.legend(loc="outside upper right", ncols=4, fontsize=8, frameon=False)
    fig.savefig(stream, format="png", dpi=DPI, metadata={"Title": TITLE, "Description": describe(board)})
    plt.close(fig)
