"""Regenerates history.csv, the sample trade history the scoring tests read (deterministic).

Each wallet is built to land in one eligibility status as of the latest trade (2024-06-30T12:00:00Z):
steady and volatile ELIGIBLE, newcomer INSUFFICIENT_HISTORY, dabbler INSUFFICIENT_TRADES, spiker
EXTREME_ROI_SPIKE. Timestamps alternate between ISO-8601 and unix seconds, as the CLI accepts both.

    python tests/data/scoring/generate.py > tests/data/scoring/history.csv
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime, timedelta

import numpy as np

END = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)


def trades(rng, wallet, n, days, mean, sd, volume=250.0):
    offsets = np.sort(rng.uniform(0, days * 86400, n))[::-1]
    rows = []
    for i, offset in enumerate(offsets):
        when = END - timedelta(seconds=int(offset))
        stamp = when.isoformat().replace("+00:00", "Z") if i % 2 else str(int(when.timestamp()))
        rows.append((wallet, stamp, round(float(rng.normal(mean, sd)), 2), volume))
    return rows


def main() -> None:
    rng = np.random.default_rng(20240630)
    rows = []
    rows += trades(rng, "steady", 90, 120, 2.0, 3.0)
    rows += trades(rng, "volatile", 90, 120, 2.0, 25.0)
    rows += trades(rng, "newcomer", 80, 40, 3.0, 3.0)
    rows += trades(rng, "dabbler", 30, 120, 2.0, 3.0)
    spiker = trades(rng, "spiker", 90, 120, 2.0, 3.0)
    spiker.append(("spiker", (END - timedelta(days=5)).isoformat().replace("+00:00", "Z"), 400.0, 250.0))
    rows += spiker
    rows.append(("steady", END.isoformat().replace("+00:00", "Z"), 1.5, 250.0))  # the latest trade
    order = rng.permutation(len(rows))
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["wallet", "timestamp", "profit_usd", "volume_usd"])
    for i in order:
        writer.writerow(rows[i])


if __name__ == "__main__":
    main()
