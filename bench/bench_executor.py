"""Executor benchmark: trades/s end to end on the local chain with 1 and 4 executors against the
stack's ceiling measured in the same run, p50/p99 latency from claim to first send and from claim to
confirmation (closed loop, and open loop at a fixed offered rate), and a CPU profile of the hot path.

The ceiling: the chain server's rate for pre-built, pre-signed swaps sent straight to it, and the
ledger's rate for the executor's own statements on each trade without any chain (1 and 4 workers).

Starts its own Postgres server and local chain (``xorj dev chain serve``), admits N trades of one
strategy/vault, starts K `xorj executor` processes, and waits until every trade is terminal. The
exactly-once check runs at the end of each run (fills on chain == confirmed trades).

    python bench/bench_executor.py                 # 1 and 4 executors, 200 trades each
    python bench/bench_executor.py --profile       # ... then a CPU profile of one in-process executor
    python bench/bench_executor.py --trades 400 --executors 1 4 --slot-ms 400
    python bench/bench_executor.py --vaults 1 100 1000  # ... plus one strategy fanned out to N vaults
    python bench/bench_executor.py --vaults 1 100 1000 --fanout-only --trades 100

``--vaults N ...``: one strategy with N follower vaults (its own and N-1 registered with
``register_vault``), lead swaps fanned out by ``admit_fanout`` (one trade per vault, one ledger
transaction per lead swap), and each ``--executors`` count signing from one keys directory. Prints
trades/s per (executors, vaults) and, for each run's first fan-out, the time from the lead signal (the
admission's start; its commit is printed too) to the first and to the last follower's write-ahead
attempt record (the executor sends right after it commits), with p50/p99 over the vaults.

The fan-out runs use ``--fanout-concurrency`` trades in flight per executor (default 64): a fan-out's
trades are claimed in one round trip, share one quote and one price read per tick, read their accounts
in shared calls, and are checked, recorded and confirmed in batched ledger transactions. With
``--fanout-only --profile``, one in-process executor is profiled on one lead swap fanned out to the
largest ``--vaults`` count.

Each fan-out run also prints claim to first send (p50/p99), where a confirmed trade's wall time goes per
step (from the executor's "trade timing" log: claim + quote, the rest of the valuation and the risk check,
swap build, sign, daily-limit count with the write-ahead commit, send, confirm) and the machine's load
average at its start and end: the machine may be shared, so compare wall figures only within runs at a
similar load; CPU per trade is the load-independent figure.

Each run also prints what the executors asked the local chain and swap API for (requests per trade,
per method) and the chain server's CPU per method, so the stand-ins' share of a run is visible.

Figures are printed, not asserted: timing goals live here, not in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction

from tests.fixtures.chain import start_local_chain, stop_local_chain
from tests.integration.executor import harness
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
from xorj.chain.http import pooled_transport
from xorj.devenv.postgres import PostgresServer
from xorj.domain.risk import DailyShare, RiskDecision
from xorj.domain.trades import TradeState
from xorj.ledger import Ledger, migrate
from xorj.ledger.records import TradeIntent
from xorj.ledger.statements import Step, rows
from xorj.ledger.vaults import admit_fanout

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


def admit(ledger: Ledger, scenario: Scenario, n: int, offered_rate: float | None = None) -> list[int]:
    """Admit ``n`` trades: all at once, or (open loop) one every ``1 / offered_rate`` seconds whatever
    the executors do. Distinct amounts: two trades quoted in the same block would otherwise build the
    same transaction."""
    return admit_lanes(ledger, [scenario], n, offered_rate)


# The executor's steps in the order a fresh trade passes them (the "trade timing" log's steps_s: seconds
# from the claim to the first time each step ended); "sent" is the first broadcast, "final" the end.
STEP_ORDER = ("quoted", "checked", "built", "signed", "committed", "sent", "final")
STEP_NAMES = {"quoted": "claim + quote", "checked": "rest of the valuation, risk check",
              "built": "swap build (swap API)", "signed": "sign (guard: validity, simulation)",
              "committed": "daily-limit count + write-ahead commit", "sent": "send", "final": "confirm (poll + ledger)"}


def step_timings(log_paths: list[Path]) -> dict[str, list[float]]:
    """Per confirmed trade, the seconds each step took (from the end of the previous one)."""
    out: dict[str, list[float]] = {step: [] for step in STEP_ORDER}
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if '"trade timing"' not in line:
                continue
            record = json.loads(line)
            steps = dict(record.get("steps_s") or {})
            if record.get("state") != "CONFIRMED" or not steps:
                continue
            steps["sent"] = record.get("claim_to_first_send_s")
            steps["final"] = record["claim_to_final_s"]
            previous = 0.0
            for step in STEP_ORDER:
                at = steps.get(step)
                if at is None:
                    break
                out[step].append(at - previous)
                previous = at
    return out


def print_steps(label: str, steps: dict[str, list[float]]) -> None:
    print(f"  {label}: where a confirmed trade's time goes, per step (wall seconds after the previous step ended):")
    for step in STEP_ORDER:
        values = steps.get(step) or []
        if values:
            print(f"    {STEP_NAMES[step]:<40} p50 {1000 * percentile(values, 50):>8.1f} ms  "
                  f"p99 {1000 * percentile(values, 99):>8.1f} ms  mean {1000 * sum(values) / len(values):>8.1f} ms")


def load_average() -> str:
    """The machine's 1/5/15-minute load average (the machine is shared: every figure carries it)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


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


# ---- the stack's ceiling: each part alone, measured in the same run ---------------------------------


def chain_ceiling(chain, vaults: list[tuple[str, Path]], n_swaps: int, in_flight: int) -> dict:
    """The chain server's rate for pre-built, pre-signed swaps sent straight to it: ``n_swaps`` swaps
    are quoted, built and signed first (not timed), then sent with ``in_flight`` sends at a time, as
    the executor sends them (no preflight, no node retries). Every send must be accepted."""

    async def measure() -> dict:
        async with httpx.AsyncClient(transport=pooled_transport(), timeout=30) as http:
            keys = [(pubkey, Keypair.from_bytes(bytes(json.loads(Path(path).read_text())))) for pubkey, path in vaults]
            gate = asyncio.Semaphore(in_flight)

            async def build(n: int) -> bytes:
                vault, keypair = keys[n % len(keys)]
                async with gate:
                    quote = (await http.get(chain.swap_api_url + "/quote", params={
                        "inputMint": chain.mints["USDC"], "outputMint": chain.mints["SOL"],
                        "amount": str(1_000_000 + n), "slippageBps": "300"})).json()
                    body = (await http.post(chain.swap_api_url + "/swap",
                                            json={"quoteResponse": quote, "userPublicKey": vault})).json()
                tx = VersionedTransaction.from_bytes(base64.b64decode(body["swapTransaction"]))
                signatures = list(tx.signatures)
                signatures[0] = keypair.sign_message(to_bytes_versioned(tx.message))
                return bytes(VersionedTransaction.populate(tx.message, signatures))

            signed = await asyncio.gather(*(build(n) for n in range(n_swaps)))
            latencies: list[float] = []

            async def send(raw: bytes) -> None:
                async with gate:
                    started = time.perf_counter()
                    answer = (await http.post(chain.rpc_url, json={
                        "jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": [
                            base64.b64encode(raw).decode(), {"encoding": "base64", "skipPreflight": True,
                                                             "maxRetries": 0}]})).json()
                    latencies.append(time.perf_counter() - started)
                if "result" not in answer:
                    raise SystemExit(f"chain ceiling: a pre-built swap was refused: {answer.get('error')}")

            cpu_before = cpu_seconds(chain.process.pid)
            started = time.perf_counter()
            await asyncio.gather(*(send(raw) for raw in signed))
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(chain.process.pid) - cpu_before
        return {"swaps": n_swaps, "seconds": elapsed, "per_s": n_swaps / elapsed, "send_p50": percentile(latencies, 50),
                "send_p99": percentile(latencies, 99), "cpu_ms": 1000 * cpu / n_swaps}

    return asyncio.run(measure())


def ledger_ceiling(pg: PostgresServer, scenario_vault: str, mints: dict[str, str], n_trades: int, workers: int,
                   batch: int) -> dict:
    """The ledger's rate for the executor's own statements on each trade, without any chain: claim
    (``batch`` per round trip), the halt read, the daily-limit reservation, the write-ahead attempt
    record and the confirmation. ``workers`` threads, each with its own one-connection pool, as
    executor processes would have."""
    dsn = pg.create_database(f"bench_ledger_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    strategy = f"bench-ledger-{uuid.uuid4().hex[:6]}"
    scenario = Scenario(strategy=strategy, vault=scenario_vault, keypair_file="-",
                        input_mint=mints["USDC"], output_mint=mints["SOL"])
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        admit(ledger, scenario, n_trades)
    def allow(usage):
        return RiskDecision(True, None, "bench: allowed")

    done = [0] * workers
    ready, finished = [threading.Event() for _ in range(workers)], [threading.Event() for _ in range(workers)]
    # Workers open their sessions before the clock starts and keep them until Postgres' CPU is read
    # (a backend that is gone takes its CPU out of the count).
    go, measured = threading.Event(), threading.Event()

    def work(index: int) -> None:
        owner = f"bench-ledger-{index}"
        with Ledger.connect(dsn, apply_migrations=False, min_size=1, max_size=1) as own:
            own.ping()
            ready[index].set()
            go.wait()
            try:
                while claimed := own.claim_trades(strategy, owner, batch, 30):
                    for trade in claimed:
                        token = trade.fencing_token
                        own.trading_halt()
                        signature = uuid.uuid4().hex * 2
                        own.record_attempt(trade.trade_id, owner, signature, b"\x01" * 600, 1_000, 50, 1,
                                           fencing_token=token, share=DailyShare(Decimal(1), allow))
                        own.confirm_trade(trade.trade_id, owner, signature, fencing_token=token)
                        done[index] += 1
            finally:
                finished[index].set()
                measured.wait(60)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for event in ready:
        event.wait()
    cpu_before = sum(cpu_seconds(q) for q in with_children(pg.pid))
    started = time.perf_counter()
    go.set()
    for event in finished:
        event.wait()
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(q) for q in with_children(pg.pid)) - cpu_before
    measured.set()
    for thread in threads:
        thread.join()
    if sum(done) != n_trades:
        raise SystemExit(f"ledger ceiling: {sum(done)} of {n_trades} trades done")
    return {"workers": workers, "trades": n_trades, "seconds": elapsed, "per_s": n_trades / elapsed,
            "pg_cpu_ms": 1000 * cpu / n_trades}


def run(chain, pg: PostgresServer, lanes: list[tuple[str, str]], n_trades: int, executors_per_lane: int,
        concurrency: int, workdir: Path, offered_rate: float | None = None) -> dict:
    """One run: each lane is a strategy with its own vault (an executor serves one vault) and
    ``executors_per_lane`` executors; the trades are admitted round-robin over the lanes, all at once
    or at ``offered_rate`` trades/s. Ends with the exactly-once check of every lane on the chain."""
    dsn = pg.create_database(f"bench_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    tag = uuid.uuid4().hex[:6]
    scenarios = [Scenario(strategy=f"bench-{len(lanes)}x{executors_per_lane}-{tag}-{i}", vault=vault,
                          keypair_file=keypair, input_mint=chain.mints["USDC"], output_mint=chain.mints["SOL"])
                 for i, (vault, keypair) in enumerate(lanes)]
    before = [(successful_fills(chain.rpc_url, sc.vault), balances(chain.rpc_url, sc)) for sc in scenarios]
    procs = []
    for sc in scenarios:
        env = executor_env(dsn=dsn, scenario=sc, rpc_url=chain.rpc_url, swap_api_url=chain.swap_api_url,
                           concurrency=concurrency, lease_seconds=10, log_level="INFO", **BENCH_LIMITS)
        procs += [ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"{sc.strategy}-{i}"}, workdir / f"{sc.strategy}-{i}.log")
                  for i in range(executors_per_lane)]
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        try:
            for p in procs:
                p.port(60)  # started and serving: the clock starts when trades become visible
            chain_pid, pg_pids = chain.process.pid, with_children(pg.pid)
            server_before = chain.admin("GET", "/state")
            cpu_before = (cpu_seconds(chain_pid), sum(cpu_seconds(q) for q in pg_pids),
                          sum(cpu_seconds(p.pid) for p in procs))
            started = time.monotonic()
            ids = admit_lanes(ledger, scenarios, n_trades, offered_rate)
            deadline = started + 60 + n_trades * 2.0
            while True:  # one cheap count per poll, so the bench itself does not load the ledger
                counts = ledger.counts_by_state()
                if counts[TradeState.PENDING] + counts[TradeState.SUBMITTED] == 0:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"trades not finished in time: {counts}")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            server_after = chain.admin("GET", "/state")
            trades = [ledger.get_trade(i) for i in ids]
            pg_pids = with_children(pg.pid)
            cpu = (cpu_seconds(chain_pid) - cpu_before[0], sum(cpu_seconds(q) for q in pg_pids) - cpu_before[1],
                   sum(cpu_seconds(p.pid) for p in procs) - cpu_before[2])
        finally:
            for p in procs:
                if p.proc.poll() is None:
                    p.sigterm(30)
                p.close()
        for sc, (fills_before, balances_before) in zip(scenarios, before):
            assert_chain_matches_ledger(chain.rpc_url, sc, [t for t in trades if t.strategy == sc.strategy],
                                        fills_before, balances_before)
    confirmed = sum(t.state is TradeState.CONFIRMED for t in trades)
    first, final = timings([p.log_path for p in procs])
    return {"executors": len(procs), "vaults": len(lanes), "trades": n_trades, "confirmed": confirmed,
            "seconds": elapsed, "trades_per_s": n_trades / elapsed,
            "first_send_p50": percentile(first, 50), "first_send_p99": percentile(first, 99),
            "confirm_p50": percentile(final, 50), "confirm_p99": percentile(final, 99),
            "cpu_chain": cpu[0], "cpu_postgres": cpu[1], "cpu_executors": cpu[2],
            "server": server_delta(server_before, server_after), "steps": step_timings([p.log_path for p in procs])}


def admit_lanes(ledger: Ledger, scenarios: list[Scenario], n: int, offered_rate: float | None) -> list[int]:
    """:func:`admit`, round-robin over the lanes' strategies."""
    ids = []
    started = time.monotonic()
    for i in range(n):
        if offered_rate:
            time.sleep(max(0.0, started + i / offered_rate - time.monotonic()))
        sc = scenarios[i % len(scenarios)]
        ids.append(ledger.admit_trade(TradeIntent(
            strategy=sc.strategy, vault=sc.vault, lead_signature=f"bench-{uuid.uuid4().hex}",
            lead_trader="BenchLead111111111111111111111111111111111", input_mint=sc.input_mint,
            output_mint=sc.output_mint, amount=1_000_000 + 137 * i, notional_usd=Decimal(1))).trade_id)
    return ids


def server_delta(before: dict, after: dict) -> dict[str, tuple[int, float]]:
    """Requests and chain-server CPU seconds per method between two admin states."""
    out = {}
    for method, count in after.get("requests", {}).items():
        calls = count - before.get("requests", {}).get(method, 0)
        cpu = after.get("requestCpuSeconds", {}).get(method, 0.0) - before.get("requestCpuSeconds", {}).get(method, 0.0)
        if calls:
            out[method] = (calls, cpu)
    return out


def print_server_profile(results: list[dict], labels: list[str] | None = None) -> None:
    print("requests per trade to the local chain and swap API, and the chain server's CPU per call:")
    for n, r in enumerate(results):
        server = r["server"]
        total_calls = sum(c for c, _ in server.values())
        total_cpu = sum(cpu for _, cpu in server.values())
        label = labels[n] if labels else f"{r['vaults']} vault(s), {r['executors']} executor(s)"
        print(f"  {label}: {total_calls / r['trades']:.1f} requests/trade, "
              f"{1000 * total_cpu / r['trades']:.2f} ms chain-server CPU/trade in handlers")
        for method, (calls, cpu) in sorted(server.items(), key=lambda kv: -kv[1][0]):
            print(f"    {method:<26} {calls / r['trades']:>6.2f}/trade {1000 * cpu / calls:>7.3f} ms/call")


def profile(chain, pg: PostgresServer, vault: str, keypair: str, n_trades: int, concurrency: int,
            top: int = 25, fanout: list[tuple[str, str]] | None = None, workdir: Path | None = None) -> str:
    """One in-process executor under cProfile (the event-loop thread: quote, swap, sign, send, poll).
    cProfile counts every resumption of a coroutine as a call: ncalls of ``async def`` functions are
    resumptions, not calls; tottime and cumtime are right. With ``fanout`` (vault, keypair file) pairs:
    one lead swap fanned out to those vaults instead of ``n_trades`` trades of one vault."""
    dsn = pg.create_database(f"bench_prof_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    scenario = Scenario(strategy=f"bench-prof-{uuid.uuid4().hex[:6]}", vault=vault, keypair_file=keypair,
                        input_mint=chain.mints["USDC"], output_mint=chain.mints["SOL"])
    env = executor_env(dsn=dsn, scenario=scenario, rpc_url=chain.rpc_url, swap_api_url=chain.swap_api_url,
                       concurrency=concurrency, lease_seconds=10, log_level="WARNING", **BENCH_LIMITS)
    followers: list[Scenario] = []
    if fanout:
        assert workdir is not None and fanout[0][0] == vault
        followers = [Scenario(strategy=scenario.strategy, vault=v, keypair_file=k, input_mint=scenario.input_mint,
                              output_mint=scenario.output_mint) for v, k in fanout[1:]]
        env["XORJ_VAULT_KEYS_DIR"] = str(harness.keys_directory(workdir / f"keys-{scenario.strategy}",
                                                                [scenario, *followers]))
        del env["XORJ_VAULT_KEYPAIR_FILE"]
        n_trades = len(fanout)
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
        harness.register_vaults(ledger, scenario.strategy, followers)
        with executor:
            started = time.monotonic()
            if fanout:
                ids = [r.trade_id for r in ledger.run(admit_fanout(TradeIntent(
                    strategy=scenario.strategy, vault=vault, lead_signature=f"bench-lead-{uuid.uuid4().hex}",
                    lead_trader="BenchLead111111111111111111111111111111111", input_mint=scenario.input_mint,
                    output_mint=scenario.output_mint, amount=1_000_000, notional_usd=Decimal(1)),
                    actor="bench")).results.values()]
            else:
                ids = admit(ledger, scenario, n_trades)
            wait_terminal(ledger, ids, 60 + n_trades * 2.0)
            elapsed = time.monotonic() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt
    out.write(f"profiled {n_trades} trades in {elapsed:.2f}s wall; event-loop thread CPU {total:.2f}s "
              f"= {1000 * total / n_trades:.2f} ms per trade (ledger calls run in worker threads: not included)\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ---- many vaults per strategy: lead swaps fanned out by the ledger ----------------------------------


def first_sends(strategy: str, lead_signature: str) -> Step[list[float]]:
    """Epoch seconds of each of the lead swap's trades' first write-ahead attempt record: the executor
    records it and sends right after the commit, so it is the send's time within a commit."""
    found = yield from rows("""SELECT extract(epoch FROM min(a.created_at))::float8 AS at
                                 FROM attempts a JOIN trades t ON t.id = a.trade_id
                                WHERE t.strategy = %s AND t.lead_signature = %s
                                GROUP BY t.id""", (strategy, lead_signature))
    return sorted(float(r["at"]) for r in found)


CHECK_THREADS = 8  # the exactly-once reads of 1,000 vaults, five RPC calls each, overlapped


def pool_check_reads() -> None:
    """The harness's assertion reads open one HTTP client per call (fine for a test's few vaults); the
    bench reads 1,000 vaults before and after each run, so they share one pooled client here."""
    client = httpx.Client(transport=httpx.HTTPTransport(limits=httpx.Limits(max_connections=CHECK_THREADS)),
                          timeout=30)

    def rpc(url: str, method: str, params: list | None = None):
        answer = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).json()
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    harness.rpc = rpc


def run_fanout(chain, pg: PostgresServer, vaults: list[tuple[str, str]], n_leads: int, executors: int,
               concurrency: int, workdir: Path) -> dict:
    """One strategy with ``len(vaults)`` vaults (the first is its own, the rest registered Vaults),
    ``n_leads`` lead swaps each fanned out in one transaction, ``executors`` executors signing from one
    keys directory. Measures trades/s, and the first fan-out's lead signal to first and last follower
    send. Ends with the exactly-once check of every vault on the chain."""
    dsn = pg.create_database(f"bench_fan_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    strategy = f"bench-fan-{len(vaults)}x{executors}-{uuid.uuid4().hex[:6]}"
    scenarios = [Scenario(strategy=strategy, vault=vault, keypair_file=keypair, input_mint=chain.mints["USDC"],
                          output_mint=chain.mints["SOL"]) for vault, keypair in vaults]
    own = scenarios[0]
    keys = harness.keys_directory(workdir / f"keys-{strategy}", scenarios)
    print(f"  reading {len(scenarios)} vaults' fills and balances before the run ...", flush=True)
    with ThreadPoolExecutor(CHECK_THREADS) as pool:  # one RPC connection per call: overlap them
        before = list(pool.map(lambda sc: (successful_fills(chain.rpc_url, sc.vault), balances(chain.rpc_url, sc)),
                               scenarios))
    env = executor_env(dsn=dsn, scenario=own, rpc_url=chain.rpc_url, swap_api_url=chain.swap_api_url,
                       concurrency=concurrency, lease_seconds=10, log_level="INFO", vault_keys_dir=str(keys),
                       **BENCH_LIMITS)
    del env["XORJ_VAULT_KEYPAIR_FILE"]
    procs = [ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"{strategy}-{i}"}, workdir / f"{strategy}-{i}.log")
             for i in range(executors)]
    n_trades = n_leads * len(vaults)
    leads = [f"bench-lead-{uuid.uuid4().hex}" for _ in range(n_leads)]
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        started_registering = time.monotonic()
        harness.register_vaults(ledger, strategy, scenarios[1:])
        registering = time.monotonic() - started_registering
        try:
            for p in procs:
                p.port(60)
            cpu_before = (cpu_seconds(chain.process.pid), sum(cpu_seconds(q) for q in with_children(pg.pid)),
                          sum(cpu_seconds(p.pid) for p in procs))
            load_at_start = load_average()
            started = time.monotonic()
            admissions = []  # (epoch at the admission's start, at its commit)
            ids: list[int] = []
            for i, lead in enumerate(leads):
                signalled = time.time()
                fanned = ledger.run(admit_fanout(TradeIntent(
                    strategy=strategy, vault=own.vault, lead_signature=lead,
                    lead_trader="BenchLead111111111111111111111111111111111", input_mint=own.input_mint,
                    output_mint=own.output_mint, amount=1_000_000 + 137 * i, notional_usd=Decimal(1)),
                    actor="bench"))
                admissions.append((signalled, time.time()))
                ids += [r.trade_id for r in fanned.results.values()]
            if len(ids) != n_trades:
                raise SystemExit(f"fan-out admitted {len(ids)} trades, expected {n_trades}")
            deadline = started + 60 + n_trades * 2.0
            reported = started
            while True:
                counts = ledger.counts_by_state()
                open_trades = counts[TradeState.PENDING] + counts[TradeState.SUBMITTED]
                if open_trades == 0:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"trades not finished in time: {counts}")
                if time.monotonic() - reported > 10:
                    reported = time.monotonic()
                    print(f"  {n_trades - open_trades}/{n_trades} terminal after {reported - started:.0f}s", flush=True)
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            load_at_end = load_average()
            pg_pids = with_children(pg.pid)
            cpu = (cpu_seconds(chain.process.pid) - cpu_before[0], sum(cpu_seconds(q) for q in pg_pids) - cpu_before[1],
                   sum(cpu_seconds(p.pid) for p in procs) - cpu_before[2])
            sends = ledger.run(first_sends(strategy, leads[0]))
            trades = [ledger.get_trade(i) for i in ids]
        finally:
            for p in procs:
                if p.proc.poll() is None:
                    p.sigterm(30)
                p.close()
    print(f"  exactly-once check of {len(scenarios)} vaults on the chain ...", flush=True)
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        list(pool.map(lambda sc, was: assert_chain_matches_ledger(chain.rpc_url, sc, [t for t in trades if t.vault == sc.vault],
                                                                  *was), scenarios, before))
    signalled, committed = admissions[0]
    per_vault = [at - signalled for at in sends]
    claim_first, _ = timings([p.log_path for p in procs])
    return {"load": load_at_end, "load_start": load_at_start, "steps": step_timings([p.log_path for p in procs]),
            "claim_first_p50": percentile(claim_first, 50), "claim_first_p99": percentile(claim_first, 99),
            "executors": executors, "vaults": len(vaults), "leads": n_leads, "trades": n_trades,
            "confirmed": sum(t.state is TradeState.CONFIRMED for t in trades), "seconds": elapsed,
            "trades_per_s": n_trades / elapsed, "register_s": registering,
            "admit_s": committed - signalled, "admit_mean_s": sum(b - a for a, b in admissions) / n_leads,
            "first_send_s": per_vault[0] if per_vault else float("nan"),
            "last_send_s": per_vault[-1] if per_vault else float("nan"), "sent": len(per_vault),
            "send_p50": percentile(per_vault, 50), "send_p99": percentile(per_vault, 99),
            "cpu_chain": cpu[0], "cpu_postgres": cpu[1], "cpu_executors": cpu[2]}


def print_fanout(results: list[dict]) -> None:
    print("many vaults per strategy (one strategy; each lead swap fanned out to every vault in one ledger "
          "transaction; executors sign from one keys directory):")
    print(f"{'vaults':>6} {'executors':>9} {'leads':>5} {'trades':>6} {'confirmed':>9} {'seconds':>8} {'trades/s':>9} "
          f"{'ms CPU/trade (exec, chain, pg)':>31}")
    for r in results:
        cpu = "/".join(f"{1000 * r[k] / r['trades']:.1f}" for k in ("cpu_executors", "cpu_chain", "cpu_postgres"))
        print(f"{r['vaults']:>6} {r['executors']:>9} {r['leads']:>5} {r['trades']:>6} {r['confirmed']:>9} "
              f"{r['seconds']:>8.2f} {r['trades_per_s']:>9.2f} {cpu:>31}")
    print("first lead swap of each run: lead signal (admission start) to each follower's first send "
          "(its write-ahead attempt record; goal for 1,000 vaults: last send within 400 ms):")
    print(f"{'vaults':>6} {'executors':>9} {'register':>9} {'admission':>10} {'1st send':>9} {'last send':>10} "
          f"{'p50':>8} {'p99':>8} {'sent':>5}")
    for r in results:
        print(f"{r['vaults']:>6} {r['executors']:>9} {r['register_s']:>8.2f}s {r['admit_s'] * 1000:>8.1f}ms "
              f"{r['first_send_s'] * 1000:>7.1f}ms {r['last_send_s'] * 1000:>8.1f}ms {r['send_p50'] * 1000:>6.1f}ms "
              f"{r['send_p99'] * 1000:>6.1f}ms {r['sent']:>5}")
    for r in results:
        print(f"{r['vaults']} vaults, {r['executors']} executor(s), concurrency {r.get('concurrency', '?')}: claim to "
              f"first send p50 {r['claim_first_p50'] * 1000:.1f} ms p99 {r['claim_first_p99'] * 1000:.1f} ms "
              f"({r['load_start']} at start, {r['load']} at end)")
        print_steps(f"{r['vaults']} vaults", r["steps"])
    print("(exactly-once verified on chain for every vault of every run: fills == confirmed trades)")


def fanout_runs(chain, pg: PostgresServer, args: argparse.Namespace, workdir: Path) -> list[dict]:
    pool_check_reads()
    all_vaults = [(v, str(k)) for v, k in sorted(chain.vaults.items())]
    results = []
    for n_vaults in args.vaults:
        n_leads = max(1, args.trades // n_vaults)
        for n in args.executors:
            print(f"fan-out run: {n_leads} lead swap(s) x {n_vaults} vault(s) = {n_leads * n_vaults} trades, "
                  f"{n} executor(s) x concurrency {args.fanout_concurrency} ...", flush=True)
            results.append({**run_fanout(chain, pg, all_vaults[:n_vaults], n_leads, n, args.fanout_concurrency,
                                         workdir), "concurrency": args.fanout_concurrency})
            print_fanout(results[-1:])  # each run's figures as it ends: a long run cut short keeps them
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, default=200)
    parser.add_argument("--executors", type=int, nargs="+", default=[1, 4])
    # 16: a trade is in flight about 400 ms from claim to confirmation on the local chain, so 4 executors
    # with 8 each could not pass 80 trades/s (Little's law) whatever their CPU; the run would measure
    # the in-flight cap, not the executor
    parser.add_argument("--concurrency", type=int, default=16, help="trades in flight per executor")
    parser.add_argument("--slot-ms", type=int, default=100)
    parser.add_argument("--vault-lanes", type=int, nargs="*", default=[4],
                        help="also run N vaults (N strategies, one executor each) for each N given")
    parser.add_argument("--offered-rate", type=float, default=None,
                        help="open-loop run's trades/s (default: half the 1-executor run's measured rate)")
    parser.add_argument("--no-open-loop", action="store_true", help="skip the open-loop run")
    parser.add_argument("--profile", action="store_true",
                        help="after the runs, profile one in-process executor and print its top functions")
    parser.add_argument("--profile-top", type=int, default=25, help="how many functions the profile lists")
    parser.add_argument("--vaults", type=int, nargs="*", default=[],
                        help="also run one strategy fanned out to N vaults (1..1000) with each --executors count, "
                             "for each N given; max(1, trades // N) lead swaps per run")
    parser.add_argument("--fanout-concurrency", type=int, default=64,
                        help="trades in flight per executor in the --vaults runs (a fan-out's trades are "
                             "claimed, checked, recorded and confirmed in batches: up to this many at once)")
    parser.add_argument("--fanout-only", action="store_true",
                        help="run only the --vaults runs (no ceiling, single-vault, lane or open-loop runs)")
    args = parser.parse_args()
    if any(not 1 <= n <= 1000 for n in args.vaults):
        parser.error("--vaults: each N must be between 1 and 1000 (the local chain seeds at most 1000 vaults)")
    if args.fanout_only and not args.vaults:
        parser.error("--fanout-only needs --vaults")

    workdir = Path(tempfile.mkdtemp(prefix="xorj-bench-executor-"))
    print(f"starting Postgres and the local chain (slot {args.slot_ms} ms) in {workdir}", flush=True)
    pg = PostgresServer.temporary()
    pg.start()
    seeding = time.monotonic()
    chain = start_local_chain(workdir / "chain", slot_ms=args.slot_ms,
                              vaults=min(1000, max([4, *args.vault_lanes, *args.vaults]) + 3))
    print(f"local chain seeded with {len(chain.vaults)} funded vaults in {time.monotonic() - seeding:.1f}s", flush=True)
    try:
        if args.fanout_only:
            fanout = fanout_runs(chain, pg, args, workdir)
            print()
            print_fanout(fanout)
            if args.profile:
                vaults = [(v, str(k)) for v, k in sorted(chain.vaults.items())][:max(args.vaults)]
                print()
                print(f"profile of one in-process executor (concurrency {args.fanout_concurrency}) on one lead "
                      f"swap fanned out to {len(vaults)} vaults:")
                print(profile(chain, pg, vaults[0][0], vaults[0][1], len(vaults), args.fanout_concurrency,
                              args.profile_top, fanout=vaults, workdir=workdir))
            return
        all_vaults = sorted(chain.vaults.items())
        (vault, keypair), ceiling_vaults = all_vaults[0], all_vaults[-3:]
        print(f"ceiling: {args.trades} pre-signed swaps straight to the chain server ...", flush=True)
        chain_top = chain_ceiling(chain, ceiling_vaults, args.trades, 16)
        ledger_tops = []
        for workers in (1, 4):
            print(f"ceiling: the executor's ledger statements for {args.trades} trades, {workers} worker(s) ...",
                  flush=True)
            ledger_tops.append(ledger_ceiling(pg, vault, chain.mints, args.trades, workers, args.concurrency))
        one_lane = [(vault, str(keypair))]
        results = []
        for n in args.executors:
            print(f"run: {args.trades} trades, 1 vault, {n} executor(s) x concurrency {args.concurrency} ...", flush=True)
            results.append(run(chain, pg, one_lane, args.trades, n, args.concurrency, workdir))
        for n in args.vault_lanes:
            lanes = [(v, str(k)) for v, k in all_vaults[:n]]
            print(f"run: {args.trades} trades, {n} vaults, one executor each x concurrency {args.concurrency} ...",
                  flush=True)
            results.append(run(chain, pg, lanes, args.trades, 1, args.concurrency, workdir))
        offered = args.offered_rate or results[0]["trades_per_s"] / 2
        open_loop = None
        if not args.no_open_loop:
            print(f"open loop: {args.trades} trades offered at {offered:.1f}/s to 1 executor ...", flush=True)
            open_loop = run(chain, pg, one_lane, args.trades, 1, args.concurrency, workdir, offered_rate=offered)

        print()
        print("the stack's ceiling (each part alone, this run):")
        print(f"  chain server: {chain_top['per_s']:.1f} pre-signed swaps/s ({chain_top['swaps']} sent, 16 in flight; "
              f"send p50 {chain_top['send_p50'] * 1000:.1f} ms p99 {chain_top['send_p99'] * 1000:.1f} ms; "
              f"server CPU {chain_top['cpu_ms']:.2f} ms/swap)")
        for top in ledger_tops:
            print(f"  ledger: {top['per_s']:.1f} trades/s with {top['workers']} worker(s) (claim in batches of "
                  f"{args.concurrency}, halt read, daily reservation, write-ahead attempt, confirm; "
                  f"Postgres CPU {top['pg_cpu_ms']:.2f} ms/trade)")
        ceiling = min(chain_top["per_s"], max(top["per_s"] for top in ledger_tops))
        print(f"  ceiling: {ceiling:.1f} trades/s (the slower part)")
        print()
        print("executor runs (an executor serves one vault: N vaults run N strategies with one executor each; "
              "one strategy with many vaults: --vaults):")
        print(f"{'vaults':>6} {'executors':>9} {'trades':>6} {'confirmed':>9} {'seconds':>8} {'trades/s':>9} {'of ceiling':>10} "
              f"{'1st send p50':>12} {'p99':>7} {'confirm p50':>11} {'p99':>7}")
        for r in results:
            print(f"{r['vaults']:>6} {r['executors']:>9} {r['trades']:>6} {r['confirmed']:>9} {r['seconds']:>8.2f} "
                  f"{r['trades_per_s']:>9.2f} {100 * r['trades_per_s'] / ceiling:>9.1f}% "
                  f"{r['first_send_p50'] * 1000:>10.1f}ms {r['first_send_p99'] * 1000:>5.0f}ms "
                  f"{r['confirm_p50'] * 1000:>9.1f}ms {r['confirm_p99'] * 1000:>5.0f}ms")
        print("(exactly-once verified on chain for every run: fills == confirmed trades, balances moved exactly)")
        if open_loop:
            print()
            print(f"open loop, 1 executor, {offered:.1f} trades/s offered: claim to first send p50 "
                  f"{open_loop['first_send_p50'] * 1000:.1f} ms p99 {open_loop['first_send_p99'] * 1000:.1f} ms; "
                  f"claim to confirmed p50 {open_loop['confirm_p50'] * 1000:.1f} ms p99 "
                  f"{open_loop['confirm_p99'] * 1000:.1f} ms")
            print_steps("open loop", open_loop["steps"])
        print()
        print(f"CPU seconds during each run ({os.cpu_count()} cores; wall x cores is the machine's budget):")
        print(f"{'vaults':>6} {'executors':>9} {'wall':>6} {'chain':>7} {'postgres':>9} {'executors':>10} {'ms CPU/trade (exec)':>20}")
        for r in results:
            print(f"{r['vaults']:>6} {r['executors']:>9} {r['seconds']:>6.2f} {r['cpu_chain']:>7.2f} {r['cpu_postgres']:>9.2f} "
                  f"{r['cpu_executors']:>10.2f} {1000 * r['cpu_executors'] / r['trades']:>20.1f}")
        print()
        print_server_profile(results + ([open_loop] if open_loop else []),
                             [f"{r['vaults']} vault(s), {r['executors']} executor(s)" for r in results]
                             + ([f"open loop at {offered:.1f}/s, 1 executor"] if open_loop else []))
        if args.vaults:
            fanout = fanout_runs(chain, pg, args, workdir)
            print()
            print_fanout(fanout)
        if args.profile:
            print()
            print(profile(chain, pg, vault, str(keypair), min(args.trades, 100), args.concurrency, args.profile_top))
    finally:
        stop_local_chain(chain)
        pg.destroy()


if __name__ == "__main__":
    main()
