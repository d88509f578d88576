"""Ledger throughput on the local Postgres server: claims/s and transitions/s with 1 and 4 workers.

    python bench/bench_ledger.py [--trades 2000] [--workers 1,4] [--dsn postgresql://...]
    python bench/bench_ledger.py --fanout-vaults 1 100 1000 [--lead-swaps 5]

Without --dsn it starts its own temporary server (the test settings: fsync off, synchronous_commit on;
see xorj.devenv.postgres) and removes it at the end. For each worker count, a fresh migrated database
gets --trades PENDING trades of one strategy, then worker PROCESSES (each with its own pool of one
connection, as an executor pod would have) run two timed phases, all starting together:

- claims: ``claim_trades(limit=1)`` until the queue is empty: one trade leased per call and
  transaction (SELECT ... FOR UPDATE SKIP LOCKED + lease UPDATE + read of its attempts);
- transitions: for each trade the worker claimed, ``record_attempt`` (the write-ahead record,
  PENDING -> SUBMITTED) then ``confirm_trade`` (SUBMITTED -> CONFIRMED): two transitions, each one
  fenced, audited, notifying transaction.

With --fanout-vaults, it measures instead the admission of one lead swap fanned out to N registered
vaults (``xorj.ledger.vaults.admit_fanout``, one transaction), for each N: --lead-swaps admissions of
new lead swaps, then as many re-admissions of the same swaps (which add nothing). It prints the
median and the slowest wall time of the transaction, commit included, and the mean CPU time it took
in the Postgres backend and in the client (read from /proc: CPU time hardly moves with the machine's
load, wall time does, so on a busy machine CPU is the figure to compare).

Figures are wall-clock totals over all workers (first start to last finish). The machine has 2 cores
shared by Postgres and the workers, so 4 workers measure contention more than parallel speed-up.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
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


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; the server runs here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_fanout(dsn_for_db, vault_count: int, lead_swaps: int) -> dict[str, dict[str, list[float]]]:
    """For ``lead_swaps`` new lead swaps fanned out to ``vault_count`` vaults (the strategy's own and
    ``vault_count - 1`` Vault rows), then for their re-admissions: each admission's wall time, and
    the CPU time it took in the Postgres backend and in this client (seconds). CPU time hardly moves
    with the machine's load; wall time does."""
    import psycopg

    from xorj.domain.risk import VaultLimits
    from xorj.ledger import statements
    from xorj.ledger.vaults import admit_fanout, register_vault

    dsn = dsn_for_db(f"bench_fanout_{vault_count}")
    migrate(dsn)
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        for n in range(vault_count - 1):
            ledger.run(register_vault(STRATEGY, f"vault-{n:05d}", vault_object=f"bench/v{n}", limits=VaultLimits()))
    figures: dict[str, dict[str, list[float]]] = {}
    with psycopg.connect(dsn) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.commit()
        for phase in ("admit", "readmit"):
            figures[phase] = {"wall": [], "server_cpu": [], "client_cpu": []}
            for n in range(lead_swaps):
                template = TradeIntent(STRATEGY, "own-vault", f"lead-{n}", "lead", "mintA", "mintB", 1_000 + n)
                server_cpu, client_cpu, start = _process_cpu_seconds(backend), time.process_time(), time.perf_counter()
                fanned = statements.run(conn, admit_fanout(template))
                conn.commit()
                figures[phase]["wall"].append(time.perf_counter() - start)
                figures[phase]["server_cpu"].append(_process_cpu_seconds(backend) - server_cpu)
                figures[phase]["client_cpu"].append(time.process_time() - client_cpu)
                expected = vault_count if phase == "admit" else 0
                if fanned.created != expected or len(fanned.results) != vault_count:
                    raise SystemExit(f"{phase} of lead-{n}: {fanned.created} created of {len(fanned.results)}, "
                                     f"expected {expected} of {vault_count}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=2000)
    parser.add_argument("--workers", default="1,4", help="comma-separated worker counts")
    parser.add_argument("--dsn", help="a server to use instead of a temporary one (databases are created on it)")
    parser.add_argument("--fanout-vaults", type=int, nargs="*", default=[],
                        help="measure the fan-out admission of one lead swap to each of these vault counts instead")
    parser.add_argument("--lead-swaps", type=int, default=5, help="lead swaps admitted per --fanout-vaults count")
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
        if args.fanout_vaults:
            print(f"fan-out admission of one lead swap (one transaction, commit included), {args.lead_swaps} lead "
                  "swaps per count: wall median / slowest; mean CPU in the Postgres backend + in the client")
            for vault_count in args.fanout_vaults:
                say(f"{vault_count} vaults: registering, then admitting {args.lead_swaps} lead swaps twice")
                figures = run_fanout(dsn_for_db, vault_count, args.lead_swaps)
                print(f"vaults={vault_count}: " + "  ".join(
                    f"{phase} {1000 * statistics.median(f['wall']):.1f} / {1000 * max(f['wall']):.1f} ms "
                    f"(CPU {1000 * statistics.mean(f['server_cpu']):.0f} + {1000 * statistics.mean(f['client_cpu']):.0f} ms)"
                    for phase, f in figures.items()), flush=True)
            return
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
