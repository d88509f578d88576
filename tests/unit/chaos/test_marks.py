"""Run marks survive concurrent writers (a background load beside fault actions)."""

from __future__ import annotations

import threading
from pathlib import Path

from xorj.chaos import marks
from xorj.chaos.target import Target


def test_concurrent_counts_and_stamps_lose_nothing(tmp_path: Path) -> None:
    target = Target(ledger_dsn="postgresql://x@h/db", env_file=tmp_path / "env.json", run_id="r1")
    barrier = threading.Barrier(8)

    def loader(i: int) -> None:
        barrier.wait()
        for _ in range(25):
            marks.add(target, "loaded", 2)
            marks.fault(target, f"CLASS_{i}")

    threads = [threading.Thread(target=loader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorded = marks.read(target)
    assert recorded["loaded"] == 8 * 25 * 2
    assert {f"fault:CLASS_{i}" for i in range(8)} <= set(recorded)
    first = recorded["fault:CLASS_0"]
    marks.fault(target, "CLASS_0")
    assert marks.read(target)["fault:CLASS_0"] == first  # the first injection is the one that counts
