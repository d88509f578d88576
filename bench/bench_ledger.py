"""Ledger throughput on the local Postgres server: claims/s and transitions/s with 1 and 4 workers.

    python bench/bench_ledger.py [--trades 2000] [--workers 1,4] [--dsn postgresql://...]

Without --dsn it starts its own temporary server (the test settings: fsync off, synchronous_commit on;
see xorj.devenv.postgres) and removes it at the end. For each worker count, a fresh migrated database
gets --trades PENDING trades of one strategy, then worker PROCESSES (each with its own pool of one
connection, as an executor pod would have) run two timed phases, all starting together:

- claims: ``claim_trades(limit=1)`` until the queue is empty: one trade leased per call and
  transaction (SELECT ... FOR UPDATE SKIP LOCKED + lease UPDATE + read of its attempts);
- transitions: for each trade the worker claimed, ``record_attempt`` (the write-ahead record,
  PENDING -> SUBMITTED) then ``confirm_trade`` (SUBMITTED -> CONFIRMED): two transitions, each one
  fenced, audited, notifying transaction.

Figures are wall-clock totals over all workers (first start to last finish). The machine has 2 cores
shared by Postgres and the workers, so 4 workers measure contention more than parallel speed-up.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from xorj.devenv.postgres import PostgresServer
from xorj.ledger import Ledger, TradeIntent, migrate

STRATEGY = "bench"


def say(message: str) -> None:
    print(f"[bench_ledger] {message}", file=sys.stderr, flush=True)


def _worker(dsn: str, owner: str, barrier, results) -> None:
    with Ledger.connect(dsn, apply_migrations=False, max_size=1) as ledger:
        ledger.ping()
        barrier.wait()
        claimed: dict[int, int] = {}  # trade id -> fencing token
        claim_start = time.time()
        while batch := ledger.claim_trades(STRATEGY, owner, limit=1, lease_seconds=600):
            claimed.update({t.trade_id: t.fencing_token for t in batch})
        claim_end = time.time()
        results.put(("claims", owner, claim_start, claim_end, len(claimed)))
        barrier.wait()  # the second phase starts for everyone together too: the phases never overlap
        transition_start = time.time()
        for trade_id, token in claimed.items():
            signature = f"sig-{trade_id}"
            ledger.record_attempt(trade_id, owner, signature, b"\x01" + signature.encode(), 1000, 100,
                                  fencing_token=token)
            ledger.confirm_trade(trade_id, owner, signature, fencing_token=token)
        transition_end = time.time()
        results.put(("transitions", owner, transition_start, transition_end, 2 * len(claimed)))


def run(dsn_for_db, trades: int, workers: int) -> dict[str, float]:
    dsn = dsn_for_db(f"bench_{workers}w")
    migrate(dsn)
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        admit_start = time.perf_counter()
        for n in range(trades):
            ledger.admit_trade(
                TradeIntent(STRATEGY, "vault", f"lead-{n}", "lead", "mintA", "mintB", 1_000 + n)
            )
        admit_rate = trades / (time.perf_counter() - admit_start)

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_worker, args=(dsn, f"worker-{i}", barrier, results)) for i in range(workers)]
    for p in procs:
        p.start()
    rows = [results.get(timeout=600) for _ in range(2 * workers)]
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise SystemExit(f"worker exited with {p.exitcode}")

    figures = {"admissions_per_s_1proc": admit_rate}
    for phase in ("claims", "transitions"):
        mine = [r for r in rows if r[0] == phase]
        done = sum(r[4] for r in mine)
        wall = max(r[3] for r in mine) - min(r[2] for r in mine)
        figures[f"{phase}_per_s"] = done / wall
        figures[f"{phase}_total"] = done
    claimed = [r[4] for r in rows if r[0] == "claims"]
    if sum(claimed) != trades:
        raise SystemExit(f"claimed {sum(claimed)} of {trades} trades")
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        counts = ledger.counts_by_state(STRATEGY)
    if counts[next(s for s in counts if s.value == "CONFIRMED")] != trades:
        raise SystemExit(f"not every trade was confirmed: {counts}")
    figures["per_worker_claims"] = claimed  # type: ignore[assignment]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=2000)
    parser.add_argument("--workers", default="1,4", help="comma-separated worker counts")
    parser.add_argument("--dsn", help="a server to use instead of a temporary one (databases are created on it)")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]

    server = None
    if args.dsn:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        def dsn_for_db(name: str) -> str:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return make_conninfo(args.dsn, dbname=name) if conninfo_to_dict(args.dsn) else args.dsn
    else:
        say("starting a temporary Postgres server")
        server = PostgresServer.temporary()
        server.start()
        dsn_for_db = server.create_database

    try:
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
              "(1/5/15 min; other work on the machine lowers these figures)")
        print(f"ledger throughput, {args.trades} trades per run (claims: limit=1 per call; transitions: "
              "record_attempt + confirm_trade)")
        for workers in worker_counts:
            say(f"{workers} worker process(es): seeding {args.trades} trades, then claiming and transitioning")
            f = run(dsn_for_db, args.trades, workers)
            print(
                f"workers={workers}: claims/s={f['claims_per_s']:.0f} transitions/s={f['transitions_per_s']:.0f} "
                f"(admissions/s from one process while seeding: {f['admissions_per_s_1proc']:.0f}; "
                f"claims per worker: {f['per_worker_claims']})",
                flush=True,
            )
    finally:
        if server is not None:
            server.destroy()


if __name__ == "__main__":
    main()
