"""Watcher and trader-history benchmark (issue 14 section 6): detection latency, backfill rate, and a
10,000-wallet TraderPool rescored.

- **Detection latency**, lead transaction confirmed -> follower trade admitted, p50/p99, for each
  source: WebSocket ``logsSubscribe`` (push), a Helius-style webhook, and RPC polling. A real
  ``xorj watcher`` process follows a simulated leader on the local chain with real Postgres.
  "Confirmed" is the moment the chain server announces the leader's transaction at ``confirmed``
  (the bench holds its own ``logsSubscribe`` on the leader: the chain server sends it in the same
  loop pass as the watcher's); "admitted" is the moment the ledger's NOTIFY for the new PENDING trade
  reaches the bench (sent at the commit). In the webhook run the bench plays Helius: it posts the
  delivery when its own notification arrives.
- **Backfill rate**: ``xorj.traders`` backfill (``refresh``) of a wallet with many swaps, transactions/s.
- **Rescoring**: a pool of 10,000 wallets whose history is stored (``trader_swaps``) ranked and
  written to ``trader_scores`` as the operator does it (:func:`xorj.controller.traderpool.reconcile.
  rescore`), the first time and again with nothing new, with a CPU profile of one run.

    python bench/bench_watcher.py                       # everything, defaults below
    python bench/bench_watcher.py --only rescore --profile
    python bench/bench_watcher.py --only detection --signals 40 --slot-ms 400

Goals (printed against, not asserted): push detection p99 < 400 ms (one slot); 10,000-wallet rescore
< 1 s. Figures are printed, not asserted: timing goals live here, not in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp
import httpx
import psycopg
import yaml
from bench_executor import cpu_seconds, percentile, with_children
from solders.pubkey import Pubkey

from tests.fixtures.chain import start_local_chain, stop_local_chain
from tests.integration.watcher.helpers import Leader, WatcherProcess, strategy_doc
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc
from xorj.controller.models import TraderPoolSpec
from xorj.controller.traderpool.reconcile import ranked, rescore
from xorj.devenv.postgres import PostgresServer
from xorj.domain.trader_pool import PoolRanking
from xorj.ledger import Ledger, migrate, statements
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.notify import listen_async
from xorj.ledger.trader_swaps import TraderSwapStore
from xorj.traders.backfill import refresh
from xorj.traders.history import ChainHistory
from xorj.traders.realized import RealizedHistories

PUSH_GOAL_S = 0.4
RESCORE_GOAL_S = 1.0
DAY = 86_400


def progress(text: str) -> None:
    print(f"  .. {text}", flush=True)


def fresh_ledger(pg: PostgresServer, tag: str) -> str:
    dsn = pg.create_database(f"bench_{tag}_{uuid.uuid4().hex[:8]}")
    migrate(dsn)
    return dsn


# ---- detection latency ---------------------------------------------------------------------------


async def _confirmations(ws_url: str, leader: str, seen: dict[str, float], ready: asyncio.Event,
                         on_confirmed=None) -> None:
    """The bench's own logsSubscribe(confirmed) on the leader: signature -> when it was announced."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as socket:
        await socket.send_json({"jsonrpc": "2.0", "id": 1, "method": "logsSubscribe",
                                "params": [{"mentions": [leader]}, {"commitment": "confirmed"}]})
        async for message in socket:
            body = message.json()
            if body.get("id") == 1:
                ready.set()
                continue
            value = body["params"]["result"]["value"]
            if value["err"] is None and value["signature"] not in seen:
                seen[value["signature"]] = time.perf_counter()
                if on_confirmed is not None:
                    asyncio.create_task(on_confirmed(value["signature"]))


async def _admissions(dsn: str, admitted: dict[int, float], ready: asyncio.Event) -> None:
    """trade id -> when the ledger's NOTIFY for its admission (state PENDING) arrived."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await listen_async(conn, "trades")
        ready.set()
        async for notify in conn.notifies():
            data = json.loads(notify.payload)
            if data["state"] == "PENDING":
                admitted.setdefault(int(data["trade_id"]), time.perf_counter())


def detection(chain, pg: PostgresServer, mode: str, signals: int, poll_interval: float, workdir: Path) -> dict:
    """``signals`` lead swaps, one at a time at a random phase; each one's confirmed -> admitted."""
    dsn = fresh_ledger(pg, f"detect_{mode}")
    leader = Leader(chain)
    vault = chain.take_vault()
    strategies = workdir / f"strategies-{mode}.yaml"
    strategies.write_text(yaml.safe_dump_all([strategy_doc("bench", f"follow-{mode}", vault, [leader.pubkey],
                                                           sizing={"mode": "fixedUsd", "fixedUsd": 1})]))
    token = "bench-webhook-" + uuid.uuid4().hex
    ws_url = chain.rpc_url.replace("http://", "ws://")
    env = {"XORJ_LEDGER_DSN": dsn, "XORJ_RPC_URL": chain.rpc_url,
           "XORJ_PRICE_API_URL": price_api_url_for(chain.swap_api_url),
           "XORJ_WATCHER_STRATEGIES_FILE": str(strategies), "XORJ_WATCHER_HTTP_HOST": "127.0.0.1",
           "XORJ_WATCHER_HTTP_PORT": "0", "XORJ_LOG_LEVEL": "WARNING",
           "XORJ_WATCHER_CASH_MINTS": f'["{chain.mints["USDC"]}"]',
           # push runs: polling only as the gap filler, far apart, so the push source is what is timed
           "XORJ_WATCHER_POLL_INTERVAL_SECONDS": str(poll_interval if mode == "poll" else 300)}
    if mode == "websocket":
        env["XORJ_WATCHER_WS_URL"] = ws_url
    if mode == "webhook":
        env["XORJ_WATCHER_WEBHOOK_TOKEN"] = token

    async def scenario(port: int) -> tuple[list[float], dict]:
        await leader.fund()
        confirmed: dict[str, float] = {}
        admitted: dict[int, float] = {}
        ws_ready, listen_ready = asyncio.Event(), asyncio.Event()
        http = httpx.AsyncClient(timeout=10)

        async def deliver_webhook(signature: str) -> None:
            await http.post(f"http://127.0.0.1:{port}/webhook", headers={"Authorization": token},
                            json=[{"signature": signature, "feePayer": leader.pubkey, "type": "SWAP"}])

        tasks = [asyncio.create_task(_confirmations(ws_url, leader.pubkey, confirmed, ws_ready,
                                                    deliver_webhook if mode == "webhook" else None)),
                 asyncio.create_task(_admissions(dsn, admitted, listen_ready))]
        try:
            await asyncio.wait_for(asyncio.gather(ws_ready.wait(), listen_ready.wait()), 30)
            await asyncio.sleep(2.0)  # the watcher's first polling round (the baseline cursor) and subscriptions
            signatures = []
            rng = random.Random(7)
            for i in range(signals):
                await asyncio.sleep(rng.uniform(0.0, max(1.0, poll_interval)))  # a random phase
                signatures.append(await leader.swap("USDC", "SOL", (2 + i % 5) * 10**6))
                if (i + 1) % 10 == 0:
                    progress(f"{mode}: {i + 1}/{signals} lead swaps")
            deadline = time.monotonic() + 60
            while len(admitted) < signals and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            for task in tasks:
                task.cancel()
            await http.aclose()
        with Ledger.connect(dsn, apply_migrations=False) as ledger:
            by_signature = {}
            for trade_id, at in admitted.items():
                trade = ledger.get_trade(trade_id)
                by_signature[trade.lead_signature] = at
        latencies = [by_signature[s] - confirmed[s] for s in signatures if s in by_signature and s in confirmed]
        missing = [s for s in signatures if s not in by_signature]
        return latencies, {"missing": len(missing)}

    watcher = WatcherProcess(env, workdir / f"watcher-{mode}.log")
    try:
        port = watcher.port(60)
        latencies, extra = asyncio.run(scenario(port))
    finally:
        watcher.kill()
    return {"mode": mode, "signals": signals, "measured": len(latencies), "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "max": max(latencies, default=float("nan")), **extra}


# ---- backfill --------------------------------------------------------------------------------------


def backfill(chain, pg: PostgresServer, swaps: int, concurrency: int, want_profile: bool, top: int) -> dict:
    """A leader makes ``swaps`` swaps (sent in bursts, then confirmed), then one backfill reads them
    (under cProfile with ``want_profile``: CPU time, so waiting on the chain is not counted)."""
    profiler = cProfile.Profile(time.process_time) if want_profile else None
    dsn = fresh_ledger(pg, "backfill")
    leader = Leader(chain)

    async def make_history() -> None:
        from xorj.devenv.leaders import LocalMarket

        await leader.fund()
        async with httpx.AsyncClient(timeout=30) as http:
            market = LocalMarket(chain.rpc_url, http)
            await market.connect()
            sent: list[str] = []
            for i in range(swaps):
                # buys and sells of SOL: every other swap sells part of what the last one bought
                pair = ("USDC", "SOL", 3 * 10**6 + i) if i % 2 == 0 else ("SOL", "USDC", 10**6 + i)
                signature, _ = await market.swap(leader.wallet, *pair)
                sent.append(signature)
                if (i + 1) % 100 == 0:
                    await market.wait_confirmed(sent[-100:])
                    progress(f"backfill: {i + 1}/{swaps} leader swaps made")
            await market.wait_confirmed(sent)

    async def read() -> tuple[float, float, object]:
        async with SolanaRpc(chain.rpc_url) as rpc:
            prices = JupiterPriceClient(price_api_url_for(chain.swap_api_url))
            try:
                with Ledger.connect(dsn, apply_migrations=False) as ledger:
                    store = TraderSwapStore(ledger)
                    started, cpu = time.perf_counter(), time.process_time()
                    if profiler is not None:
                        profiler.enable()
                    result = await refresh(leader.pubkey, ChainHistory(rpc, concurrency=concurrency), prices, store)
                    if profiler is not None:
                        profiler.disable()
                    return time.perf_counter() - started, time.process_time() - cpu, result
            finally:
                await prices.close()

    asyncio.run(make_history())
    state_before = chain.admin("GET", "/state")
    seconds, cpu_here, result = asyncio.run(read())
    state_after = chain.admin("GET", "/state")
    calls = {m: state_after["requests"].get(m, 0) - state_before["requests"].get(m, 0)
             for m in ("getTransaction", "getSignaturesForAddress")}
    cpu = {m: state_after.get("requestCpuSeconds", {}).get(m, 0.0) - state_before.get("requestCpuSeconds", {}).get(m, 0.0)
           for m in calls}
    profile_text = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
        profile_text = out.getvalue()
    return {"read": result.read, "swaps": result.swaps, "recorded": result.recorded, "seconds": seconds,
            "per_s": result.read / seconds, "calls": calls, "server_cpu": cpu, "concurrency": concurrency,
            "cpu_here": cpu_here, "profile": profile_text}


# ---- rescoring a 10,000-wallet pool ---------------------------------------------------------------


def store_history(dsn: str, wallets: int, swaps_per_wallet: int, seed: int = 3) -> list[str]:
    """``wallets`` wallets with ``swaps_per_wallet`` stored swaps each (buy SOL with USDC, then sell it),
    spread over the last 90 days, written with COPY (the bench's setup, not timed)."""
    rng = random.Random(seed)
    usdc, sol = "EPjFWdd5AufqSSo8ZYsKDVmBv8hLTpgqAdcTRrVw1Vtd", "So11111111111111111111111111111111111111112"
    names = [str(Pubkey.new_unique()) for _ in range(wallets)]
    now = time.time()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY trader_swaps (wallet, signature, slot, slot_index, block_time, kind, sold_mint, "
                      "sold_amount, sold_decimals, bought_mint, bought_amount, bought_decimals, value_usd, "
                      "priced_at) FROM STDIN") as copy:
            for w, wallet in enumerate(names):
                skill = rng.gauss(0.002, 0.01)
                start = now - 100 * DAY
                held_sol, held_cost = 0, 0.0
                for i in range(swaps_per_wallet):
                    at = start + (i + rng.random()) * (99 * DAY / swaps_per_wallet)
                    when = datetime.fromtimestamp(at, UTC)
                    signature = f"s{w:05d}x{i:04d}" + "1" * 70
                    if i % 2 == 0:
                        usd = rng.lognormvariate(5.5, 0.8)
                        held_sol, held_cost = int(usd / 150 * 10**9) + 1, usd
                        copy.write_row((wallet, signature, 1000 + i, 0, when, "SWAP", usdc, int(usd * 10**6) + 1, 6,
                                        sol, held_sol, 9, Decimal(f"{usd:.6f}"), when))
                    else:
                        usd = held_cost * (1 + rng.gauss(skill, 0.05))
                        copy.write_row((wallet, signature, 1000 + i, 0, when, "SWAP", sol, held_sol, 9,
                                        usdc, int(max(usd, 0.01) * 10**6) + 1, 6, Decimal(f"{max(usd, 0.01):.6f}"),
                                        when))
        # the cursor each wallet's refresh would have left (TraderSwapStore.record writes it with the rows)
        with cur.copy("COPY trader_history_cursors (wallet, cursor_signature, cursor_slot) FROM STDIN") as copy:
            for w, wallet in enumerate(names):
                copy.write_row((wallet, f"s{w:05d}x{swaps_per_wallet - 1:04d}" + "1" * 70, 1000 + swaps_per_wallet))
        conn.commit()
    return names


def add_swaps(dsn: str, wallets: list[str]) -> None:
    """One more (buy) swap for each of ``wallets``, recorded now with its cursor (as TraderSwapStore.record)."""
    usdc, sol = "EPjFWdd5AufqSSo8ZYsKDVmBv8hLTpgqAdcTRrVw1Vtd", "So11111111111111111111111111111111111111112"
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO trader_swaps (wallet, signature, slot, slot_index, block_time, kind, sold_mint, "
                        "sold_amount, sold_decimals, bought_mint, bought_amount, bought_decimals, value_usd, priced_at) "
                        "VALUES (%s, %s, 999999, 0, %s, 'SWAP', %s, 1000000, 6, %s, 6600000, 9, 1, %s)",
                        [(w, f"new{i:05d}" + "2" * 70, now, usdc, sol, now) for i, w in enumerate(wallets)])
        cur.executemany("UPDATE trader_history_cursors SET cursor_signature = %s, cursor_slot = 999999, "
                        "updated_at = now() WHERE wallet = %s",
                        [(f"new{i:05d}" + "2" * 70, w) for i, w in enumerate(wallets)])
        conn.commit()


def rescoring(pg: PostgresServer, wallets: int, swaps_per_wallet: int, repeat: int, want_profile: bool,
              top: int) -> dict:
    dsn = fresh_ledger(pg, "rescore")
    progress(f"rescore: storing {wallets:,} wallets x {swaps_per_wallet} swaps ...")
    names = store_history(dsn, wallets, swaps_per_wallet)
    spec = TraderPoolSpec.model_validate({"wallets": names[:1], "window": {"days": 90}})
    cash = frozenset({"EPjFWdd5AufqSSo8ZYsKDVmBv8hLTpgqAdcTRrVw1Vtd"})
    samples = []
    profile_text = ""
    histories = RealizedHistories()  # the operator's, kept between rescorings

    async def timed_runs() -> PoolRanking:  # as the operator runs it: ledger on the loop, CPU on a thread
        async with AsyncLedger.for_dsn(dsn) as on_loop:
            for n in range(repeat):
                if n == repeat - 1:  # new swaps for 1 % of the wallets before the last run
                    add_swaps(dsn, names[:: 100])
                pg_before = {p: cpu_seconds(p) for p in with_children(pg.pid)}
                wall, cpu = time.perf_counter(), time.process_time()
                ranking = await rescore(on_loop, histories, names, spec, cash, time.time())
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                # backends alive at the end (one that exited meanwhile reads 0: left out; a new one from 0)
                pg_cpu = sum(max(0.0, cpu_seconds(p) - pg_before.get(p, 0.0)) for p in with_children(pg.pid))
                samples.append((wall, cpu, pg_cpu, histories.realized_last))
                progress(f"rescore {n + 1}/{repeat}: {samples[-1][0]:.3f} s, "
                         f"{histories.realized_last:,} wallets realized")
        return ranking

    ranking = asyncio.run(timed_runs())
    with Ledger.connect(dsn, apply_migrations=False) as ledger:
        written = ledger.run(statements.one("SELECT count(*) AS n FROM trader_scores"))["n"]  # what was written
        if want_profile:  # the reads and the CPU part in this one thread (a profile sees no worker thread)
            profiler = cProfile.Profile()
            profiler.enable()
            ranked(histories.history(TraderSwapStore(ledger), names, cash_mints=cash), spec, time.time())
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
            profile_text = out.getvalue()
    return {"wallets": wallets, "swaps": wallets * swaps_per_wallet, "runs": samples, "eligible": ranking.eligible,
            "written": written, "profile": profile_text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["detection", "backfill", "rescore"], action="append")
    parser.add_argument("--signals", type=int, default=40, help="lead swaps timed per detection source")
    parser.add_argument("--modes", nargs="+", default=["websocket", "webhook", "poll"])
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the polling run's interval (the default)")
    parser.add_argument("--slot-ms", type=int, default=400, help="the local chain's slot (mainnet: ~400 ms)")
    parser.add_argument("--backfill-swaps", type=int, default=1000)
    parser.add_argument("--backfill-concurrency", type=int, default=8)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--swaps-per-wallet", type=int, default=120,
                        help="stored swaps per wallet (120: 60 round trips, past the Trust Score's 50 trades)")
    parser.add_argument("--repeat", type=int, default=4, help="rescorings: the first, then again, the last after "
                        "new swaps")
    parser.add_argument("--profile", action="store_true", help="CPU profiles of the backfill and of one rescoring")
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    only = set(args.only or ["detection", "backfill", "rescore"])

    workdir = Path(tempfile.mkdtemp(prefix="xorj-bench-watcher-"))
    print(f"starting Postgres{' and the local chain (slot ' + str(args.slot_ms) + ' ms)' if only - {'rescore'} else ''}"
          f" in {workdir} ({os.cpu_count()} cores)", flush=True)
    pg = PostgresServer.temporary()
    pg.start()
    chain = None
    results: dict = {}
    try:
        if only - {"rescore"}:
            chain = start_local_chain(workdir / "chain", slot_ms=args.slot_ms, vaults=len(args.modes) + 2)
        if "detection" in only:
            results["detection"] = []
            for mode in args.modes:
                print(f"detection: {args.signals} lead swaps through {mode} ...", flush=True)
                results["detection"].append(detection(chain, pg, mode, args.signals, args.poll_interval, workdir))
        if "backfill" in only:
            print(f"backfill: a wallet with {args.backfill_swaps} swaps ...", flush=True)
            results["backfill"] = backfill(chain, pg, args.backfill_swaps, args.backfill_concurrency, args.profile,
                                           args.profile_top)
        if "rescore" in only:
            print(f"rescore: a pool of {args.wallets:,} wallets ...", flush=True)
            results["rescore"] = rescoring(pg, args.wallets, args.swaps_per_wallet, args.repeat, args.profile,
                                           args.profile_top)
    finally:
        if chain is not None:
            stop_local_chain(chain)
        pg.destroy()

    print()
    for r in results.get("detection", []):
        goal = f"  (goal p99 < {PUSH_GOAL_S * 1000:.0f} ms: {'met' if r['p99'] < PUSH_GOAL_S else 'MISSED'})" \
            if r["mode"] != "poll" else f"  (poll interval {args.poll_interval:g} s)"
        print(f"detection {r['mode']:>9}: confirmed -> admitted p50 {r['p50'] * 1000:7.1f} ms  p99 "
              f"{r['p99'] * 1000:7.1f} ms  max {r['max'] * 1000:7.1f} ms  ({r['measured']}/{r['signals']} timed, "
              f"{r['missing']} not admitted){goal}")
    if "backfill" in results:
        b = results["backfill"]
        print(f"backfill: {b['read']} transactions ({b['swaps']} swaps) in {b['seconds']:.2f} s = "
              f"{b['per_s']:.0f} transactions/s (concurrency {b['concurrency']}); chain calls "
              + ", ".join(f"{m} {n} ({1000 * b['server_cpu'][m] / max(n, 1):.2f} ms server CPU each)"
                          for m, n in b["calls"].items()))
        print(f"  the backfill's own CPU: {b['cpu_here']:.2f} s = {1000 * b['cpu_here'] / max(b['read'], 1):.1f} ms "
              "per transaction")
        if b["profile"]:
            print(b["profile"])
    if "rescore" in results:
        r = results["rescore"]
        for n, (wall, cpu, pg_cpu, realized) in enumerate(r["runs"]):
            label = "first (nothing kept yet)" if n == 0 else \
                "after new swaps of 1 % of the wallets" if n == len(r["runs"]) - 1 else "again, nothing new"
            print(f"rescore {label}: {r['wallets']:,} wallets, {r['swaps']:,} stored swaps, {realized:,} realized: "
                  f"{wall:.3f} s wall, CPU {cpu:.3f} s here + {pg_cpu:.3f} s Postgres (goal < {RESCORE_GOAL_S:g} s: "
                  f"{'met' if wall < RESCORE_GOAL_S else 'MISSED'})")
        print(f"  {r['eligible']:,} eligible; {r['written']:,} trader_scores rows")
        if r["profile"]:
            print(r["profile"])


if __name__ == "__main__":
    main()
