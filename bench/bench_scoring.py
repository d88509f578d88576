"""Trust Score V1 throughput: 10,000 traders with 1,000,000 trades in all (issue 2: well under a second).

    python bench/bench_scoring.py [--wallets 10000] [--trades 1000000] [--repeat 5] [--csv]

Prints the time of the vectorised scoring (window, sort, metrics, eligibility, score) and of ranking,
best and median of --repeat runs, for both normalisations, plus summary-input scoring. With --csv it
also writes the history as CSV and times parsing it (xorj.scoring_io), the CLI's path, for reference.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from xorj.domain.scoring import (
    Normalization,
    TradeHistory,
    TraderSummaries,
    score_history,
    score_summaries,
)
from xorj.scoring_io import read_scoring_csv

DAY = 86_400.0
AS_OF = 1_700_000_000.0


def make_history(wallets: int, trades: int, span_days: float, seed: int = 1) -> TradeHistory:
    """Trades spread over span_days before AS_OF (100: 90 % inside the window, most wallets with 90 days
    of history), rows unsorted, realistic scales."""
    rng = np.random.default_rng(seed)
    volume = rng.lognormal(6.0, 1.0, trades)  # median ~$400 a trade
    return TradeHistory(
        wallets=tuple(f"wallet{i:05d}" for i in range(wallets)),
        wallet_index=rng.integers(0, wallets, trades),
        timestamp=AS_OF - rng.uniform(0, span_days * DAY, trades),
        profit_usd=volume * rng.normal(0.003, 0.05, trades),
        volume_usd=volume,
    )


def _ms(timing: tuple[float, float, float]) -> str:
    best, median, cpu = timing
    return f"best {best * 1000:7.1f} ms  median {median * 1000:7.1f} ms  (CPU {cpu * 1000:6.1f} ms at best)"


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(best wall, median wall, CPU of the best run): on a shared machine wall time includes waiting
    for a core, CPU time does not."""
    samples = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        samples.append((time.perf_counter() - wall, time.process_time() - cpu))
    best = min(samples)
    return best[0], statistics.median(wall for wall, _ in samples), best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--span-days", type=float, default=100.0, help="trades spread over this many days")
    parser.add_argument("--csv", action="store_true", help="also time CSV parsing of the same history")
    args = parser.parse_args()

    history = make_history(args.wallets, args.trades, args.span_days)
    print(
        f"trust score V1: {args.wallets:,} wallets, {args.trades:,} trades over {args.span_days:g} days, "
        f"best/median of {args.repeat}"
    )
    for normalization in Normalization:
        board = score_history(history, normalization, as_of=AS_OF)  # warm-up
        timing = timed(partial(score_history, history, normalization, as_of=AS_OF), args.repeat)
        eligible = int(board.metrics.eligible.sum())
        print(
            f"  history scoring ({normalization.value:6}): {_ms(timing)}"
            f"  ({eligible:,} eligible, window trades {int(board.metrics.trades.sum()):,})"
        )
    print(f"  ranking (sort + {args.wallets:,} records): {_ms(timed(board.ranked, args.repeat))}")

    rng = np.random.default_rng(2)
    summaries = TraderSummaries(
        wallets=history.wallets,
        trades=rng.integers(0, 500, args.wallets),
        roi_pct=rng.normal(20, 60, args.wallets),
        max_drawdown_pct=rng.uniform(0, 100, args.wallets),
    )
    timing = timed(partial(score_summaries, summaries, Normalization.COHORT), args.repeat)
    print(f"  summary scoring (cohort): {_ms(timing)}")

    if args.csv:
        buffer = io.StringIO()
        buffer.write("wallet,timestamp,profit_usd,volume_usd\n")
        names = history.wallets
        for w, t, p, v in zip(
            history.wallet_index.tolist(),
            history.timestamp.tolist(),
            history.profit_usd.tolist(),
            history.volume_usd.tolist(),
        ):
            buffer.write(f"{names[w]},{t:.0f},{p:.4f},{v:.2f}\n")
        text = buffer.getvalue()
        wall, cpu = time.perf_counter(), time.process_time()
        read_scoring_csv(io.StringIO(text), "bench.csv")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = f"{len(text) / 1e6:.0f} MB, {args.trades:,} rows"
        print(f"  CSV parsing ({size}): {wall:.2f} s (CPU {cpu:.2f} s, one run)")


if __name__ == "__main__":
    main()
