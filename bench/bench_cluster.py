"""Prints how long the local cluster takes to start once the toolchain is built.

Uses a cluster of its own (name ``xorj-bench``) so it never disturbs one that tests are using.
Figures: cached ``toolchain build`` (no-op), cold-state ``up`` (processes started, nodes Ready,
controller-manager serving), idempotent ``up`` on a running cluster, and ``down``.

    python3 bench/bench_cluster.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from xorj.devenv.cluster import LocalCluster, process_running
from xorj.devenv.toolchain import Toolchain


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds

    toolchain = Toolchain()
    toolchain.build(progress=print)  # a cold build is measured separately (tens of minutes)
    cluster = LocalCluster(name="xorj-bench", toolchain=toolchain)
    cluster.down(force=True)

    figures: dict[str, list[float]] = {"toolchain build (cached)": [], "up (cold)": [], "up (already up)": [], "down": []}
    try:
        for _ in range(rounds):
            figures["toolchain build (cached)"].append(timed(toolchain.build))
            figures["up (cold)"].append(timed(cluster.up))
            figures["up (already up)"].append(timed(cluster.up))
            pids = cluster.pids()
            figures["down"].append(timed(lambda: cluster.down(force=True)))
            left = [pid for pid in pids.values() if process_running(pid)]
            assert len(pids) == 5 and not left, f"down left processes behind: {left}"
    finally:
        cluster.down(force=True)

    print(f"toolchain {toolchain.digest}, kubernetes {toolchain.pins.kubernetes}, {rounds} rounds")
    for name, values in figures.items():
        print(f"{name:28s} median {statistics.median(values):6.2f}s  max {max(values):6.2f}s")


if __name__ == "__main__":
    main()
