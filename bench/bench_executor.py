"""Executor benchmark: trades/s end to end on the local chain with 1 and 4 executors, p50/p99 latency
from claim to first send and from claim to confirmation, and a CPU profile of the hot path.

Starts its own Postgres server and local chain (``xorj dev chain serve``), admits N trades of one
strategy/vault, starts K `xorj executor` processes, and waits until every trade is terminal. The
exactly-once check runs at the end of each run (fills on chain == confirmed trades).

    python bench/bench_executor.py                 # 1 and 4 executors, 200 trades each, then a profile
    python bench/bench_executor.py --trades 400 --executors 1 4 --slot-ms 400 --no-profile

Figures are printed, not asserted: timing goals live here, not in tests.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.chain import start_local_chain, stop_local_chain
from tests.integration.executor.harness import (
    ExecutorProcess,
    InProcessExecutor,
    Scenario,
    assert_chain_matches_ledger,
    balances,
    executor_env,
    successful_fills,
    wait_terminal,
)
from xorj.devenv.postgres import PostgresServer
from xorj.domain.trades import TradeState
from xorj.ledger import Ledger, migrate
from xorj.ledger.records import TradeIntent

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def with_children(pid: int) -> list[int]:
    """``pid`` and its direct children (Postgres: the postmaster and its backends)."""
    out = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def admit(ledger: Ledger, scenario: Scenario, n: int) -> list[int]:
    ids = []
    for i in range(n):
        # distinct amounts: two trades quoted in the same block would otherwise build the same transaction
        result = ledger.admit_trade(TradeIntent(
            strategy=scenario.strategy, vault=scenario.vault, lead_signature=f"bench-{uuid.uuid4().hex}",
            lead_trader="BenchLead111111111111111111111111111111111", input_mint=scenario.input_mint,
            output_mint=scenario.output_mint, amount=1_000_000 + 137 * i, notional_usd=Decimal(1)))
        ids.append(result.trade_id)
    return ids


def timings(log_paths: list[Path]) -> tuple[list[float], list[float]]:
    first, final = [], []
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if '"trade timing"' not in line:
                continue
            record = json.loads(line)
            if record.get("state") != "CONFIRMED":
                continue
            if record.get("claim_to_first_send_s") is not None:
                first.append(record["claim_to_first_send_s"])
            final.append(record["claim_to_final_s"])
    return first, final


# Every run admits its trades to one vault in one day: the daily limits (100 trades by default) would
# refuse half of them, and the bench would measure refusals instead of trades.
BENCH_LIMITS = {"max_daily_trades": 100_000, "max_daily_volume_usd": 100_000_000}


def run(chain, pg: PostgresServer, vault: str, keypair: str, n_trades: int, n_executors: int, concurrency: int,
        workdir: Path) -> dict:
    dsn = pg.create_database(f"bench_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    scenario = Scenario(strategy=f"bench-{n_executors}-{uuid.uuid4().hex[:6]}", vault=vault, keypair_file=keypair,
                        input_mint=chain.mints["USDC"], output_mint=chain.mints["SOL"])
    fills_before, balances_before = successful_fills(chain.rpc_url, vault), balances(chain.rpc_url, scenario)
    env = executor_env(dsn=dsn, scenario=scenario, rpc_url=chain.rpc_url, swap_api_url=chain.swap_api_url,
                       concurrency=concurrency, lease_seconds=10, log_level="INFO", **BENCH_LIMITS)
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        procs = [ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"bench-{i}"}, workdir / f"{scenario.strategy}-{i}.log")
                 for i in range(n_executors)]
        try:
            for p in procs:
                p.port(60)  # started and serving: the clock starts when trades become visible
            chain_pid, pg_pids = chain.process.pid, with_children(pg.pid)
            cpu_before = (cpu_seconds(chain_pid), sum(cpu_seconds(q) for q in pg_pids),
                          sum(cpu_seconds(p.pid) for p in procs))
            started = time.monotonic()
            ids = admit(ledger, scenario, n_trades)
            deadline = started + 60 + n_trades * 2.0
            while True:  # one cheap count per poll, so the bench itself does not load the ledger
                counts = ledger.counts_by_state(scenario.strategy)
                if counts[TradeState.PENDING] + counts[TradeState.SUBMITTED] == 0:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"trades not finished in time: {counts}")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            trades = [ledger.get_trade(i) for i in ids]
            pg_pids = with_children(pg.pid)
            cpu = (cpu_seconds(chain_pid) - cpu_before[0], sum(cpu_seconds(q) for q in pg_pids) - cpu_before[1],
                   sum(cpu_seconds(p.pid) for p in procs) - cpu_before[2])
        finally:
            for p in procs:
                if p.proc.poll() is None:
                    p.sigterm(30)
                p.close()
        assert_chain_matches_ledger(chain.rpc_url, scenario, trades, fills_before, balances_before)
    confirmed = sum(t.state is TradeState.CONFIRMED for t in trades)
    first, final = timings([p.log_path for p in procs])
    return {"executors": n_executors, "trades": n_trades, "confirmed": confirmed, "seconds": elapsed,
            "trades_per_s": n_trades / elapsed,
            "first_send_p50": percentile(first, 50), "first_send_p99": percentile(first, 99),
            "confirm_p50": percentile(final, 50), "confirm_p99": percentile(final, 99),
            "cpu_chain": cpu[0], "cpu_postgres": cpu[1], "cpu_executors": cpu[2]}


def profile(chain, pg: PostgresServer, vault: str, keypair: str, n_trades: int, concurrency: int) -> str:
    """One in-process executor under cProfile (the event-loop thread: quote, swap, sign, send, poll)."""
    dsn = pg.create_database(f"bench_prof_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    scenario = Scenario(strategy=f"bench-prof-{uuid.uuid4().hex[:6]}", vault=vault, keypair_file=keypair,
                        input_mint=chain.mints["USDC"], output_mint=chain.mints["SOL"])
    env = executor_env(dsn=dsn, scenario=scenario, rpc_url=chain.rpc_url, swap_api_url=chain.swap_api_url,
                       concurrency=concurrency, lease_seconds=10, log_level="WARNING", **BENCH_LIMITS)
    # CPU time of the event-loop thread (wall time would count waiting on the chain as cost)
    profiler = cProfile.Profile(time.thread_time)
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        executor = InProcessExecutor(env)
        import threading

        original = executor._main

        def profiled_main() -> None:
            profiler.enable()
            try:
                original()
            finally:
                profiler.disable()

        executor._thread = threading.Thread(target=profiled_main, daemon=True)
        with executor:
            started = time.monotonic()
            ids = admit(ledger, scenario, n_trades)
            wait_terminal(ledger, ids, 60 + n_trades * 2.0)
            elapsed = time.monotonic() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt
    out.write(f"profiled {n_trades} trades in {elapsed:.2f}s wall; event-loop thread CPU {total:.2f}s "
              f"= {1000 * total / n_trades:.2f} ms per trade (ledger calls run in worker threads: not included)\n")
    stats.sort_stats("cumulative").print_stats(28)
    stats.sort_stats("tottime").print_stats(18)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=200)
    parser.add_argument("--executors", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--concurrency", type=int, default=8, help="trades in flight per executor")
    parser.add_argument("--slot-ms", type=int, default=100)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="xorj-bench-executor-"))
    print(f"starting Postgres and the local chain (slot {args.slot_ms} ms) in {workdir}", flush=True)
    pg = PostgresServer.temporary()
    pg.start()
    chain = start_local_chain(workdir / "chain", slot_ms=args.slot_ms, vaults=4)
    try:
        vault, keypair = sorted(chain.vaults.items())[0]
        results = []
        for n in args.executors:
            print(f"run: {args.trades} trades, {n} executor(s) x concurrency {args.concurrency} ...", flush=True)
            results.append(run(chain, pg, vault, str(keypair), args.trades, n, args.concurrency, workdir))
        print()
        print(f"{'executors':>9} {'trades':>6} {'confirmed':>9} {'seconds':>8} {'trades/s':>9} "
              f"{'1st send p50':>12} {'p99':>7} {'confirm p50':>11} {'p99':>7}")
        for r in results:
            print(f"{r['executors']:>9} {r['trades']:>6} {r['confirmed']:>9} {r['seconds']:>8.2f} "
                  f"{r['trades_per_s']:>9.2f} {r['first_send_p50'] * 1000:>10.1f}ms {r['first_send_p99'] * 1000:>5.0f}ms "
                  f"{r['confirm_p50'] * 1000:>9.1f}ms {r['confirm_p99'] * 1000:>5.0f}ms")
        print("(exactly-once verified on chain for every run: fills == confirmed trades, balances moved exactly)")
        print()
        print(f"CPU seconds during each run ({os.cpu_count()} cores; wall x cores is the machine's budget):")
        print(f"{'executors':>9} {'wall':>6} {'chain':>7} {'postgres':>9} {'executors':>10} {'ms CPU/trade (exec)':>20}")
        for r in results:
            print(f"{r['executors']:>9} {r['seconds']:>6.2f} {r['cpu_chain']:>7.2f} {r['cpu_postgres']:>9.2f} "
                  f"{r['cpu_executors']:>10.2f} {1000 * r['cpu_executors'] / r['trades']:>20.1f}")
        if not args.no_profile:
            print()
            print(profile(chain, pg, vault, str(keypair), min(args.trades, 100), args.concurrency))
    finally:
        stop_local_chain(chain)
        pg.destroy()


if __name__ == "__main__":
    main()
