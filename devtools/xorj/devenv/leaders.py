"""``xorj dev leaders``: simulated lead traders trading on the local chain's market, as real swaps signed
by their own keypairs (the decisions are :mod:`xorj.domain.leaders`; this module does the I/O).

Keys: ``STATE_DIR/leaders/<style>.json`` (Solana CLI format, mode 0600), made on first use and funded
through the local chain's ``/admin/fund`` faucet when the wallet holds no SOL (a fresh chain). A key is
never printed or logged; only public keys are.

A tick (see :mod:`xorj.domain.leaders`): the deciding leaders buy the SOL-like token with USDC through
the local Jupiter-compatible swap API, the rest of the market moves the price (``/admin/price``), and
they sell what they bought, in reverse order, so that each leader's round trip is nested inside the
others' and sees only the market's move, not another leader's impact.

Backdated history: before a tick of the history phase, ``/admin/clock`` pins the blockTime of the
blocks from then on to the tick's (past) time and produces a block, so the swaps of that tick land in
a block stamped with it; after the phase the clock goes back to the wall clock. See
docs/trader-history.md "Backdated history".
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction

from xorj.devenv.chain.environment import read_keypair, write_keypair
from xorj.domain.leaders import (
    PROFILES,
    LeaderStyle,
    MarketState,
    RoundTrip,
    decide,
    market_move_bps,
    tick_times,
)
from xorj.errors import XorjError

LAMPORTS_FUNDED = 10 * 10**9  # fees for thousands of swaps
USDC_FUNDED = 10_000_000 * 10**6  # enough for the reckless one's losses over a long run
SLIPPAGE_BPS = 100
SECONDS_PER_DAY = 86_400


class LeaderRunError(XorjError):
    """The local chain or its market refused a step of the run."""


@dataclass(frozen=True)
class LeaderWallet:
    style: LeaderStyle
    keypair: Keypair
    key_file: Path

    @property
    def pubkey(self) -> str:
        return str(self.keypair.pubkey())


def key_dir(state_dir: Path) -> Path:
    return state_dir / "leaders"


def leader_wallets(state_dir: Path, *, create: bool = True) -> list[LeaderWallet]:
    """The leaders' keys under ``state_dir``, made (mode 0600) when missing and ``create``."""
    directory = key_dir(state_dir)
    if create:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    wallets = []
    for style in LeaderStyle:
        path = directory / f"{style.value}.json"
        if not path.exists():
            if not create:
                continue
            write_keypair(path, Keypair())
        wallets.append(LeaderWallet(style, read_keypair(path), path))
    return wallets


@dataclass(frozen=True)
class TickReport:
    tick: int
    block_time: int | None
    move_bps: int
    trades: list[tuple[LeaderStyle, int, int]]  # style, USDC in, USDC out (base units)


class LocalMarket:
    """The local chain's JSON-RPC, swap API and admin API, all under the one base URL of ``rpc_url``."""

    def __init__(self, rpc_url: str, http: httpx.AsyncClient) -> None:
        base = rpc_url.rstrip("/")
        self.rpc_url = base + "/"
        self.swap_url = base + "/swap/v1"
        self.admin_url = base + "/admin"
        self.http = http
        self.mints: dict[str, str] = {}

    async def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise LeaderRunError(f"{what}: HTTP {response.status_code}, not JSON") from None
        if response.status_code != 200:
            raise LeaderRunError(f"{what}: HTTP {response.status_code}: {body.get('error', body)}")
        return body

    async def admin(self, path: str, body: Any = None) -> Any:
        if body is None:
            response = await self.http.get(self.admin_url + path)
        else:
            response = await self.http.post(self.admin_url + path, json=body)
        return await self._json(response, f"admin {path}")

    async def rpc(self, method: str, *params: Any) -> Any:
        answer = await self._json(await self.http.post(self.rpc_url, json={
            "jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}), method)
        if "error" in answer:
            raise LeaderRunError(f"{method}: {answer['error'].get('message', answer['error'])}")
        return answer["result"]

    async def connect(self) -> None:
        state = await self.admin("/state")
        mints = state.get("mints") or {}
        if "USDC" not in mints or "SOL" not in mints:
            raise LeaderRunError("admin /state: the local market lists no USDC and SOL mints (an older chain?)")
        self.mints = {"USDC": mints["USDC"], "SOL": mints["SOL"]}

    async def fund_if_empty(self, wallet: LeaderWallet) -> bool:
        if (await self.rpc("getBalance", wallet.pubkey, {"commitment": "processed"}))["value"] > 0:
            return False
        await self.admin("/fund", {"pubkey": wallet.pubkey, "lamports": LAMPORTS_FUNDED,
                                   "tokens": {"USDC": USDC_FUNDED, "SOL": 0}})
        return True

    async def price(self) -> float:
        return float((await self.admin("/state"))["price"])

    async def move_price(self, bps: int) -> None:
        await self.admin("/price", {"bps": bps})

    async def pin_clock(self, block_time: int | None) -> int:
        return int((await self.admin("/clock", {"blockTime": block_time}))["blockTime"])

    async def swap(self, wallet: LeaderWallet, input_symbol: str, output_symbol: str, amount: int) -> tuple[str, int]:
        """One swap signed by the wallet's own key, sent with preflight; (signature, amount out)."""
        quote = await self._json(await self.http.get(self.swap_url + "/quote", params={
            "inputMint": self.mints[input_symbol], "outputMint": self.mints[output_symbol],
            "amount": str(amount), "slippageBps": str(SLIPPAGE_BPS)}), "quote")
        body = await self._json(await self.http.post(self.swap_url + "/swap", json={
            "quoteResponse": quote, "userPublicKey": wallet.pubkey, "wrapAndUnwrapSol": True}), "swap")
        tx = VersionedTransaction.from_bytes(base64.b64decode(body["swapTransaction"]))
        signatures = list(tx.signatures)
        signatures[0] = wallet.keypair.sign_message(to_bytes_versioned(tx.message))
        signed = VersionedTransaction.populate(tx.message, signatures)
        signature = await self.rpc("sendTransaction", base64.b64encode(bytes(signed)).decode(),
                                   {"encoding": "base64"})
        return str(signature), int(quote["outAmount"])

    async def wait_confirmed(self, signatures: list[str], timeout: float = 30.0) -> None:
        """Wait until every signature is confirmed (or fail naming how many are not)."""
        deadline = time.monotonic() + timeout
        pending = list(signatures)
        while pending:
            still: list[str] = []
            for start in range(0, len(pending), 256):  # getSignatureStatuses takes at most 256
                chunk = pending[start:start + 256]
                statuses = (await self.rpc("getSignatureStatuses", chunk,
                                           {"searchTransactionHistory": True}))["value"]
                for signature, status in zip(chunk, statuses, strict=True):
                    if status and status.get("err") is not None:
                        raise LeaderRunError(f"leader swap {signature} failed on chain: {status['err']}")
                    if not status or status.get("confirmationStatus") not in ("confirmed", "finalized"):
                        still.append(signature)
            pending = still
            if pending and time.monotonic() > deadline:
                raise LeaderRunError(f"{len(pending)} leader swaps not confirmed after {timeout}s")
            if pending:
                await asyncio.sleep(0.05)


async def run_tick(market: LocalMarket, wallets: list[LeaderWallet], seed: int, tick: int,
                   block_time: int | None, sent: list[str]) -> TickReport:
    """One tick; ``block_time``: pin the clock to it first (history phase), None: wall clock."""
    if block_time is not None:
        await market.pin_clock(block_time)
    move = market_move_bps(seed, tick)
    state = MarketState(tick=tick, price_usd=await market.price(), next_move_bps=move)
    decided: list[tuple[LeaderWallet, RoundTrip]] = []
    for wallet in wallets:
        trip = decide(PROFILES[wallet.style], seed, state)
        if trip is not None:
            decided.append((wallet, trip))
    bought: list[tuple[LeaderWallet, RoundTrip, int]] = []
    for wallet, trip in decided:
        signature, sol_out = await market.swap(wallet, "USDC", "SOL", trip.usdc_in)
        sent.append(signature)
        bought.append((wallet, trip, sol_out))
    await market.move_price(move)
    trades = []
    for wallet, trip, sol_out in reversed(bought):  # nested round trips: no leader pays another's impact
        signature, usdc_out = await market.swap(wallet, "SOL", "USDC", sol_out)
        sent.append(signature)
        trades.append((wallet.style, trip.usdc_in, usdc_out))
    return TickReport(tick, block_time, move, trades)


def _describe(report: TickReport) -> str:
    when = "now" if report.block_time is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(report.block_time))
    parts = [f"{style.value} {(out - inp) / 10**6:+.2f} USD on {inp / 10**6:.0f}" for style, inp, out in report.trades]
    return f"tick {report.tick} ({when}) market {report.move_bps:+d} bps: " + ("; ".join(parts) or "no trades")


async def run_leaders(rpc_url: str, state_dir: Path, *, seed: int, history_days: float, history_ticks: int,
                      rate_per_minute: float, duration_s: float, progress: Callable[[str], None],
                      now: Callable[[], float] = time.time, sleep: Callable[[float], Any] = asyncio.sleep) -> int:
    """The history phase (``history_ticks`` ticks backdated over the last ``history_days`` days), then
    live ticks at ``rate_per_minute`` for ``duration_s`` seconds. Returns the number of swaps sent."""
    wallets = leader_wallets(state_dir)
    sent: list[str] = []
    async with httpx.AsyncClient(timeout=30.0) as http:
        market = LocalMarket(rpc_url, http)
        await market.connect()
        for wallet in wallets:
            funded = await market.fund_if_empty(wallet)
            progress(f"leader {wallet.style.value} {wallet.pubkey}{' (funded)' if funded else ''}")
        tick = 0
        if history_ticks > 0 and history_days > 0:
            end = int(now()) - 60
            times = tick_times(end - int(history_days * SECONDS_PER_DAY), end, history_ticks)
            try:
                for block_time in times:
                    report = await run_tick(market, wallets, seed, tick, block_time, sent)
                    tick += 1
                    if tick % 20 == 0 or tick == len(times):
                        progress(f"history {tick}/{len(times)}: " + _describe(report))
            finally:
                await market.pin_clock(None)
            await market.wait_confirmed(sent)
            progress(f"history done: {len(sent)} swaps over {history_days:g} days")
        if duration_s > 0 and rate_per_minute > 0:
            interval = 60.0 / rate_per_minute
            stop_at = time.monotonic() + duration_s
            while time.monotonic() < stop_at:
                report = await run_tick(market, wallets, seed, tick, None, sent)
                tick += 1
                progress(_describe(report))
                await sleep(max(0.0, min(interval, stop_at - time.monotonic())))
            await market.wait_confirmed(sent)
    return len(sent)
