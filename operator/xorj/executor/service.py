"""The executor service: claims its strategy's trades, runs the exactly-once algorithm on each with
bounded concurrency, heartbeats the leases, serves /metrics and /healthz, and on SIGTERM finishes
its work within a grace period or hands it back (releases the leases; the next owner resumes the
stored attempts from their stored bytes).

It claims when its strategy's trades are admitted (the ledger's NOTIFY at the admission's commit
wakes it), when a slot of its own frees, and every ``claim_interval_seconds`` anyway: a notification
is a wake-up call, not the record, and one sent while the listener was away is simply lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from xorj.chain.jupiter import JupiterClient
from xorj.chain.keyring import Keyring
from xorj.chain.keys import VaultKey
from xorj.chain.prices import JupiterPriceClient
from xorj.chain.rpc import PreflightSettings, RpcTimeouts, SolanaRpc
from xorj.chain.swap_check import SwapLimits
from xorj.chain.swap_guard import SwapGuard
from xorj.domain.risk import BreakerState, BreakerStatus, KillSwitch
from xorj.domain.trades import Trade, TradeState
from xorj.errors import (
    InvalidInputError,
    LeaseLostError,
    LedgerError,
    LedgerUnavailableError,
)
from xorj.executor.adapters import (
    ChainValuer,
    LedgerRiskGate,
    NoClaimPorts,
    OwnedLedger,
)
from xorj.executor.metrics import ExecutorMetrics
from xorj.executor.ports import Signer
from xorj.executor.settings import ExecutorSettings
from xorj.executor.signing import KeyringSigner, SignerClient, keyring_of
from xorj.executor.submission import STEPS, ConfirmationPolicy, SubmissionSettings, Submitter
from xorj.ledger import transactions as tx
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.notify import AsyncAdmissionListener
from xorj.ledger.pool_metrics import LedgerPoolCollector
from xorj.ledger.records import AlertSeverity

log = logging.getLogger("xorj.executor")
# the ledger sessions of executors carry this application_name (chaos actions find them by it)
LEDGER_APPLICATION_NAME = "xorj-executor"
# Least time between two claims woken by admissions. Single trades admitted back to back (hundreds a
# second) would otherwise each cost every executor of the strategy a claim transaction, all but one
# of them empty; 10 ms apart they are claimed a few at a time. A fan-out is one admission: its
# trades are claimed at once. A freed slot is not held back.
ADMISSION_CLAIM_GAP = 0.01
# An admission-woken claim also waits, up to this long, for the trades this executor is preparing to
# send (group commit): trades admitted while others prepare are claimed together when those are done,
# and go through the batched steps as one crowd, instead of each alone, a few ms apart. An idle
# executor claims at once.
ADMISSION_CLAIM_HOLD = 0.05


async def hold_for_crowd(preparing: Callable[[], int], stop: asyncio.Future[Any], *, until: float,
                         poll: float = 0.002) -> None:
    """Return when nothing is being prepared, ``stop`` is done, or the monotonic clock reaches
    ``until``, whichever comes first (the admission claim's group commit, ADMISSION_CLAIM_HOLD)."""
    while preparing() > 0 and not stop.done() and time.monotonic() < until:
        await asyncio.sleep(poll)


def ledger_pool_size(concurrency: int) -> int:
    """Ledger connections for ``concurrency`` trades in flight: their batched transactions (checks,
    write-ahead records, confirmations) run side by side, and the heartbeat must not wait behind them."""
    return min(16, max(4, concurrency // 8))


class SigkillHook:
    """Test-only: ``XORJ_TEST_SIGKILL_AFTER=step[:n]`` kills this process with SIGKILL right after
    the n-th time (default 1st) the algorithm completes ``step``. Nothing is flushed or cleaned up:
    that is the point. ``XORJ_TEST_RAISE_AFTER=step`` instead raises an unexpected RuntimeError every
    time ``step`` completes (a stand-in for a bug: the poison-trade path)."""

    def __init__(self, spec: str | None, raise_spec: str | None = None) -> None:
        self.step: str | None = None
        self.nth = 1
        self.seen = 0
        self.raise_step: str | None = None
        if spec:
            step, _, nth = spec.partition(":")
            if step not in STEPS:
                raise InvalidInputError(f"XORJ_TEST_SIGKILL_AFTER: step must be one of {', '.join(STEPS)}, got {step!r}")
            self.step = step
            self.nth = int(nth) if nth else 1
        if raise_spec:
            if raise_spec not in STEPS:
                raise InvalidInputError(f"XORJ_TEST_RAISE_AFTER: step must be one of {', '.join(STEPS)}, "
                                        f"got {raise_spec!r}")
            self.raise_step = raise_spec

    def __call__(self, step: str) -> None:
        if step == self.step:
            self.seen += 1
            if self.seen >= self.nth:
                os.kill(os.getpid(), signal.SIGKILL)
        if step == self.raise_step:
            raise RuntimeError(f"test: injected crash after step {step!r}")


@dataclass
class _Work:
    trade_id: int
    fencing_token: int  # of the claim this work runs under; every write presents it
    task: asyncio.Task[None]


class ExecutorService:
    def __init__(self, settings: ExecutorSettings, *, key: VaultKey | None = None, keyring: Keyring | None = None,
                 ledger: AsyncLedger | None = None, signer: Signer | None = None) -> None:
        self.settings = settings
        self.owner = settings.executor_id
        if keyring is None and signer is None:
            keyring = keyring_of(settings, key)  # None with a signer socket: the keys are not here
        self._own_ledger = ledger is None
        # Executors never migrate: their namespace login may not change the schema (the operator does).
        # The pool opens in run(), on the event loop that uses it.
        self.ledger = ledger or AsyncLedger.for_dsn(settings.ledger_dsn.get_secret_value(),
                                                    max_size=ledger_pool_size(settings.concurrency),
                                                    name=LEDGER_APPLICATION_NAME)
        self.metrics = ExecutorMetrics(settings.strategy)
        self.metrics.concurrency_limit.labels(settings.strategy).set(settings.concurrency)
        self.metrics.registry.register(LedgerPoolCollector("xorj_executor", self.ledger))
        self.rpc = SolanaRpc(settings.rpc_url_with_key(),
                             timeouts=RpcTimeouts(read=settings.rpc_timeout_seconds, send=settings.send_timeout_seconds),
                             preflight=PreflightSettings(skip_preflight=settings.skip_preflight,
                                                         preflight_commitment=settings.preflight_commitment))
        self.confirm_rpc = SolanaRpc(settings.status_confirm_rpc_url,
                                     timeouts=RpcTimeouts(read=settings.rpc_timeout_seconds,
                                                          send=settings.send_timeout_seconds),
                                     ) if settings.status_confirm_rpc_url else None
        self.swap_api = JupiterClient(
            settings.swap_api_url, timeout=settings.swap_api_timeout_seconds,
            api_key=settings.swap_api_key.get_secret_value() if settings.swap_api_key else None)
        # The batchers on the way to a first send (quotes, valuation, swap checks, write-ahead with
        # its daily-limit count) stop waiting for more trades once every trade that could join a
        # tick has.
        crowd = self._preparing
        self.swap_guard = SwapGuard(self.rpc, SwapLimits(
            max_compute_unit_limit=settings.swap_max_compute_unit_limit,
            max_compute_unit_price_micro_lamports=settings.swap_max_compute_unit_price_micro_lamports,
            max_priority_fee_lamports=settings.swap_max_priority_fee_lamports), crowd=crowd)
        self.prices = JupiterPriceClient(
            settings.effective_price_api_url, timeout=settings.price_api_timeout_seconds,
            api_key=settings.swap_api_key.get_secret_value() if settings.swap_api_key else None)
        policy = settings.slippage_policy()
        self.risk = LedgerRiskGate(
            self.ledger, strategy=settings.strategy,
            limits=settings.risk_limits(),
            kill_switch=KillSwitch(global_halt=settings.global_halt, strategy_paused=settings.paused),
            breaker=settings.circuit_breaker(),
            valuer=ChainValuer(self.rpc, self.prices, valued_mints=settings.valued_mints,
                               cash_mints=settings.cash_mints, crowd=crowd),
            notional_tolerance=settings.notional_tolerance,
            on_breaker=self._breaker_changed,
            on_halt=lambda halted: self.metrics.halted.labels(settings.strategy).set(1 if halted else 0),
            crowd=crowd)
        self.metrics.paused.labels(settings.strategy).set(1 if settings.paused else 0)
        self.signer: Signer = signer or (
            KeyringSigner(keyring, self.swap_guard) if keyring is not None
            else SignerClient(str(settings.signer_socket), timeout=settings.signer_timeout_seconds))
        self.port = OwnedLedger(self.ledger, self.owner, on_result=self._ledger_result, strategy=settings.strategy,
                                crowd=crowd)
        # A template: each trade's work runs a copy with the ports of its claim (see _handle).
        self.submitter = Submitter(
            rpc=self.rpc, swap_api=self.swap_api, signer=self.signer, ledger=NoClaimPorts(), policy=policy,
            risk=self.risk,
            settings=SubmissionSettings(
                poll_interval=settings.poll_interval_seconds,
                rebroadcast_interval=settings.rebroadcast_interval_seconds,
                confirmation=ConfirmationPolicy(default=settings.confirmation_commitment,
                                                finalized_from_usd=settings.finalized_from_usd)),
            observer=self.metrics, hook=SigkillHook(settings.test_sigkill_after, settings.test_raise_after),
            confirm_rpc=self.confirm_rpc, crowd=crowd)
        self._work: dict[int, _Work] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._admitted = asyncio.Event()  # a trade of our strategy was admitted (the ledger's NOTIFY)
        self.listening = False  # the listener is connected: admissions wake the claim loop
        self._last_ledger_ok = time.monotonic()
        self._last_loop_tick = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None
        self._ledger_down_since: float | None = None
        self._breaker_opened_at: datetime | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ---- callbacks ---------------------------------------------------------------------------

    def _preparing(self) -> int:
        """The trades that may still prepare an attempt: claimed (counted from the claim, before their
        tasks first run, so a claimed batch is one crowd) and not following a sent attempt."""
        return len(self._work) - self.submitter.following

    def _ledger_result(self, ok: bool) -> None:
        self.metrics.ledger_ok(ok)
        now = time.monotonic()
        if not ok:
            if self._ledger_down_since is None:
                self._ledger_down_since = now
            return
        self._last_ledger_ok = now
        if self._ledger_down_since is not None:
            outage = now - self._ledger_down_since
            self._ledger_down_since = None
            # written once the ledger is back (it cannot be written while it is away)
            self._alert("LEDGER_UNAVAILABLE", AlertSeverity.CRITICAL,
                        f"executor {self.owner} lost the ledger for {outage:.1f}s; work resumed from the ledger")

    def _breaker_changed(self, status: BreakerStatus) -> None:
        self.metrics.set_breaker(status.state)
        if status.state is BreakerState.OPEN and self._breaker_opened_at != status.opened_at:
            self._breaker_opened_at = status.opened_at
            self._alert("BREAKER_OPEN", AlertSeverity.CRITICAL,
                        f"circuit breaker open ({status.trip}); new trades refused until "
                        f"{status.reopens_at.isoformat() if status.reopens_at else '?'}")

    def _alert(self, kind: str, severity: AlertSeverity, message: str) -> None:
        async def write() -> None:
            try:
                await self.ledger.run(tx.raise_alert(kind, severity, message, strategy=self.settings.strategy))
            except LedgerError as exc:
                log.warning("could not write alert", extra={"kind": kind, "error": str(exc)})
        log.warning("alert", extra={"kind": kind, "alert_message": message})
        task = asyncio.create_task(write())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stop requested: no new claims; finishing in-flight trades",
                     extra={"in_flight": len(self._work), "grace_seconds": self.settings.shutdown_grace_seconds})
        self._stopping.set()

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.request_stop)
        if self._own_ledger:
            await self.ledger.open()
        await self._start_http()
        log.info("executor started", extra={"strategy": self.settings.strategy, "executor_id": self.owner,
                                            "signer": self.signer.describe(), "concurrency": self.settings.concurrency,
                                            "http_port": self.bound_port})
        background = [asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
                      asyncio.create_task(self._ledger_counts_loop(), name="ledger-counts"),
                      asyncio.create_task(self._admissions_loop(), name="admissions")]
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.close()
        log.info("executor stopped", extra={"executor_id": self.owner})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.rpc.close()
        if self.confirm_rpc is not None:
            await self.confirm_rpc.close()
        await self.swap_api.close()
        await self.prices.close()
        await self.signer.close()
        if self._own_ledger:
            await self.ledger.close()

    # ---- claiming ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = self.settings.claim_interval_seconds
        claimed_at = 0.0
        while not self._stopping.is_set():
            self._last_loop_tick = claimed_at = time.monotonic()
            # cleared before claiming: a slot freed or a trade admitted from now on wakes the wait below
            self._slot_freed.clear()
            self._admitted.clear()
            free = self.settings.concurrency - len(self._work)
            if free > 0:
                try:
                    trades = await self.ledger.run(tx.claim_trades(self.settings.strategy, self.owner, free,
                                                                   self.settings.lease_seconds))
                    self._ledger_result(True)
                    backoff = self.settings.claim_interval_seconds
                except LedgerError as exc:
                    self._ledger_result(False)
                    log.warning("claim failed", extra={"error": str(exc)})
                    trades = []
                    backoff = min(5.0, backoff * 2)
                for trade in trades:
                    if self._stopping.is_set():
                        # claimed while stopping: hand back at once
                        assert trade.fencing_token is not None, "a claimed trade carries its claim's fencing token"
                        await self._release(trade.trade_id, trade.fencing_token)
                        continue
                    self._start(trade)
                if trades and len(trades) == free:
                    continue  # there may be more: ask again at once
            stop, freed = asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._slot_freed.wait())
            wakes = [stop, freed]
            if free > 0:  # with no free slot an admission changes nothing: a freed slot wakes us
                wakes.append(asyncio.ensure_future(self._admitted.wait()))
            try:
                await asyncio.wait(wakes, timeout=backoff, return_when=asyncio.FIRST_COMPLETED)
                if self._admitted.is_set() and not stop.done() and not freed.done():
                    woken = time.monotonic()
                    await asyncio.wait([stop], timeout=claimed_at + ADMISSION_CLAIM_GAP - woken)
                    await hold_for_crowd(self._preparing, stop, until=woken + ADMISSION_CLAIM_HOLD)
            finally:
                for wake in wakes:
                    wake.cancel()

    async def _admissions_loop(self) -> None:
        """Wake the claim loop when a trade of our strategy is admitted. The listener has its own
        session (LISTEN is per session); lost, it reconnects with back-off, and the claim loop polls
        meanwhile. Reconnected, it wakes the claim loop once: admissions while it was away were missed."""
        backoff = 0.5
        while True:
            try:
                async with AsyncAdmissionListener(self.settings.ledger_dsn.get_secret_value(),
                                                  strategy=self.settings.strategy,
                                                  application_name=f"{LEDGER_APPLICATION_NAME}-listener") as listener:
                    if not self.listening:
                        log.info("listening for admissions", extra={"strategy": self.settings.strategy})
                    self.listening, backoff = True, 0.5
                    self._admitted.set()
                    async for _ in listener:
                        self._admitted.set()
            except Exception as exc:  # the claim loop's polling does not depend on this one
                if self.listening:
                    log.warning("admission listener lost; claiming on the interval until it is back",
                                extra={"error": f"{type(exc).__name__}: {exc}"})
                self.listening = False
            await asyncio.sleep(backoff)
            backoff = min(10.0, backoff * 2)

    def _start(self, trade: Trade) -> None:
        assert trade.fencing_token is not None, "a claimed trade carries its claim's fencing token"
        current = self._work.get(trade.trade_id)
        if current is not None and not current.task.done():
            # Our own lease ran out (a pause, a ledger outage) and we claimed the trade again: the
            # running task works under the old claim, whose writes the ledger now refuses. Stop it and
            # resume from the ledger under the new claim (everything it may have sent is write-ahead).
            log.warning("trade claimed again while its old work was running: restarting it under the new claim",
                        extra={"trade_id": trade.trade_id, "old_fencing_token": current.fencing_token,
                               "fencing_token": trade.fencing_token})
            current.task.cancel()
        self.metrics.trade_claimed(trade.trade_id)
        task = asyncio.create_task(self._handle(trade), name=f"trade-{trade.trade_id}")
        self._work[trade.trade_id] = _Work(trade.trade_id, trade.fencing_token, task)
        self.metrics.set_in_flight(len(self._work))
        log.info("trade claimed", extra={"trade_id": trade.trade_id, "state": trade.state.value,
                                         "attempts": len(trade.attempts)})

    async def _handle(self, trade: Trade) -> None:
        backoff = 0.5
        claimed: Trade | None = trade  # fresh from the claim's transaction; a retry re-reads
        token = trade.fencing_token
        assert token is not None
        # The algorithm's ports for this claim: every write presents this claim's fencing token.
        submitter = self.submitter.with_ports(ledger=self.port.for_claim(trade.trade_id, token))
        this_task = asyncio.current_task()
        try:
            while True:
                try:
                    await submitter.run(trade.trade_id, claimed)
                    return
                except LeaseLostError as exc:
                    self.metrics.leases_lost.labels(self.settings.strategy).inc()
                    log.warning("lease lost: dropping trade", extra={"trade_id": trade.trade_id, "error": str(exc)})
                    return
                except LedgerUnavailableError as exc:
                    # Nothing is sent unless its attempt is known committed: wait for the ledger and
                    # resume from what it says (our lease, if it ran out meanwhile, fences us).
                    claimed = None
                    log.warning("ledger unavailable mid-trade; will resume from the ledger",
                                extra={"trade_id": trade.trade_id, "error": str(exc)})
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("trade handler crashed; handing the trade back", extra={"trade_id": trade.trade_id})
            await self._record_crash(trade.trade_id, token, exc)
        finally:
            work = self._work.get(trade.trade_id)
            if work is not None and work.task is this_task:  # not the work of a newer claim
                del self._work[trade.trade_id]
                self.metrics.trade_released(trade.trade_id)
            self.metrics.set_in_flight(len(self._work))
            self._slot_freed.set()

    async def _record_crash(self, trade_id: int, fencing_token: int, exc: Exception) -> None:
        """Count the crash in the ledger and hand the trade back; at the limit the ledger FAILs it
        with POISON_TRADE (a bug must not make a trade be reclaimed, and crash, forever)."""
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        try:
            trade = await self.ledger.run(tx.record_crash(trade_id, self.owner, detail,
                                                          poison_after=self.settings.poison_after_crashes,
                                                          fencing_token=fencing_token))
        except LeaseLostError:
            return  # another executor has it now; it will count its own crashes
        except LedgerError as exc2:
            log.warning("could not record the crash (the lease will expire)",
                        extra={"trade_id": trade_id, "error": str(exc2)})
            return
        if trade.state is TradeState.FAILED:
            self.metrics.trade_finished(trade_id, TradeState.FAILED, trade.reason)
            log.error("poison trade FAILED", extra={"trade_id": trade_id, "crashes": trade.crash_count})

    async def _release(self, trade_id: int, fencing_token: int) -> None:
        try:
            await self.ledger.run(tx.release(trade_id, self.owner, fencing_token=fencing_token))
        except LedgerError as exc:
            log.warning("could not release lease (it will expire)", extra={"trade_id": trade_id, "error": str(exc)})

    async def _drain(self) -> None:
        """After stop: let in-flight trades finish within the grace period, then hand back the rest."""
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        while self._work and time.monotonic() < deadline:
            await asyncio.wait([w.task for w in self._work.values()], timeout=max(0.0, deadline - time.monotonic()))
        remaining = list(self._work.values())
        for work in remaining:
            work.task.cancel()
        await asyncio.gather(*(w.task for w in remaining), return_exceptions=True)
        for work in remaining:
            await self._release(work.trade_id, work.fencing_token)
        if remaining:
            log.info("handed back unfinished trades", extra={"trade_ids": [w.trade_id for w in remaining]})

    # ---- leases ------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            leases = {trade_id: work.fencing_token for trade_id, work in self._work.items()}
            ids = list(leases)
            if not ids:
                last_ok = time.monotonic()
                continue
            try:
                held = await self.ledger.run(tx.heartbeat(leases, self.owner, self.settings.lease_seconds))
                self._ledger_result(True)
                last_ok = time.monotonic()
            except LedgerError as exc:
                self._ledger_result(False)
                log.warning("heartbeat failed", extra={"error": str(exc)})
                if time.monotonic() - last_ok < self.settings.lease_seconds:
                    continue
                held = set()  # our leases have run out by now: assume every trade was taken over
            for trade_id in ids:
                work = self._work.get(trade_id)
                if trade_id in held or work is None or work.task.done() or work.fencing_token != leases[trade_id]:
                    continue
                if await self._finished_in_ledger(trade_id):
                    continue  # it just became terminal (which ends the lease): its task is wrapping up
                self.metrics.leases_lost.labels(self.settings.strategy).inc()
                log.warning("lease lost: stopping work on trade", extra={"trade_id": trade_id})
                work.task.cancel()

    async def _finished_in_ledger(self, trade_id: int) -> bool:
        try:
            trade = await self.ledger.run(tx.get_trade(trade_id))
        except LedgerError:
            return False
        return trade.state.is_terminal

    async def _ledger_counts_loop(self) -> None:
        while True:
            try:
                counts = await self.ledger.run(tx.counts_by_state(self.settings.strategy))
                self.metrics.set_ledger_counts(counts)
                self._ledger_result(True)
                with contextlib.suppress(LedgerError):
                    await self.risk.breaker_status()
            except LedgerError:
                self._ledger_result(False)
            await asyncio.sleep(5.0)

    # ---- HTTP --------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, object]]:
        now = time.monotonic()
        ledger_age = now - self._last_ledger_ok
        loop_age = now - self._last_loop_tick
        checks = {
            "ledger": ledger_age < max(3 * self.settings.lease_seconds, 30.0),
            "claim_loop": self._stopping.is_set() or loop_age < 30.0,
        }
        ok = all(checks.values())
        body: dict[str, object] = {"ok": ok, "checks": checks, "in_flight": len(self._work),
                "stopping": self._stopping.is_set(), "executor_id": self.owner, "strategy": self.settings.strategy,
                "listening": self.listening,
                "seconds_since_ledger_ok": round(ledger_age, 3)}
        return ok, body

    async def _start_http(self) -> None:
        app = web.Application()

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.metrics.registry),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            ok, body = self.health()
            return web.Response(status=200 if ok else 503, text=json.dumps(body), content_type="application/json")

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        if self.settings.http_port_file is not None:
            tmp = self.settings.http_port_file.with_suffix(".tmp")
            tmp.write_text(str(self.bound_port))
            tmp.replace(self.settings.http_port_file)
