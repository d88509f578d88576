"""Ledger outages: a server restart or crash mid-run loses nothing committed and the pool recovers;
a connection killed mid-transaction is LedgerUnavailableError and leaves no partial write."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from xorj.domain.trades import TradeState
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger, migrate

from .helpers import intent, raw_tx, wait_until_available

STEPS = ("admitted", "submitted", "confirmed")


class Writers:
    """Threads driving trades through admit -> claim -> write-ahead attempt -> confirm, recording the
    last step each trade had acknowledged (the call returned). A LedgerUnavailableError abandons the
    trade: its last step's fate is unknown, so only acknowledged steps are asserted on."""

    def __init__(self, ledger: Ledger, threads: int = 3) -> None:
        self.ledger = ledger
        self.acked: dict[int, tuple[int, str]] = {}  # lead number -> (trade id, last acknowledged step)
        self.unavailable_errors = 0
        self.slowest_failure = 0.0  # seconds a call took to give up during the outage
        self.acked_times: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _ack(self, n: int, trade_id: int, step: str) -> None:
        with self._lock:
            self.acked[n] = (trade_id, step)
            self.acked_times.append(time.monotonic())

    def _run(self, index: int) -> None:
        n = index * 1_000_000
        owner = f"writer-{index}"
        while not self._stop.is_set():
            n += 1
            began = time.monotonic()
            try:
                trade_id = self.ledger.admit_trade(intent(n, strategy=owner)).trade_id
                self._ack(n, trade_id, "admitted")
                [claimed] = self.ledger.claim_trades(owner, owner, limit=1, lease_seconds=600)
                assert claimed.trade_id == trade_id
                signature = f"sig-{n}"
                self.ledger.record_attempt(trade_id, owner, signature, raw_tx(signature), 100, 50,
                                           fencing_token=claimed.fencing_token)
                self._ack(n, trade_id, "submitted")
                self.ledger.confirm_trade(trade_id, owner, signature, fencing_token=claimed.fencing_token)
                self._ack(n, trade_id, "confirmed")
            except LedgerUnavailableError:
                with self._lock:
                    self.unavailable_errors += 1
                    self.slowest_failure = max(self.slowest_failure, time.monotonic() - began)
                time.sleep(0.05)
                # The abandoned trade may hold a lease; a fresh strategy name keeps claims unambiguous.
                owner = f"writer-{index}-{n}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["crash", "fast_shutdown"])
def test_server_restart_mid_run_loses_nothing_committed_and_the_pool_recovers(disposable_postgres_server, how):
    server = disposable_postgres_server
    dsn = server.create_database("ledger")
    migrate(dsn)
    with Ledger.connect(dsn, max_size=4, acquire_timeout=2.0) as ledger:
        writers = Writers(ledger)
        writers.start()
        try:
            time.sleep(1.5)
            if how == "crash":
                server.kill()  # SIGKILL to postmaster and backends: in-flight transactions die
            else:
                server.stop()  # fast shutdown: sessions aborted, checkpoint
            down_at = time.monotonic()
            time.sleep(1.0)
            server.start()
            recovery = wait_until_available(ledger, timeout=30)
            time.sleep(1.5)
        finally:
            writers.stop()

        assert writers.unavailable_errors > 0, "the outage was not noticed by the writers"
        assert any(t > down_at + 1.0 for t in writers.acked_times), "no write succeeded after the restart"
        assert recovery < 30
        # Calls fail fast with the typed error (acquire timeout 2 s) instead of hanging.
        assert writers.slowest_failure < 15, writers.slowest_failure
        print(f"{how}: {writers.unavailable_errors} LedgerUnavailableError, slowest {writers.slowest_failure:.1f}s, "
              f"ledger answering {recovery:.1f}s after the server was started again")
        lost = []
        for n, (trade_id, step) in writers.acked.items():
            trade = ledger.get_trade(trade_id)
            reached = {"PENDING": 0, "SUBMITTED": 1, "CONFIRMED": 2}[trade.state.value]
            if reached < STEPS.index(step) or trade.lead_signature != f"leadsig-{n}":
                lost.append((n, step, trade.state))
            if step != "admitted":
                assert trade.attempts and trade.attempts[0].signature == f"sig-{n}"
        assert lost == [], f"acknowledged writes lost: {lost[:10]}"
        confirmed = sum(1 for _, step in writers.acked.values() if step == "confirmed")
        assert confirmed > 10


def _blocked_backend_pid(conn: psycopg.Connection, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            """SELECT pid FROM pg_stat_activity
                WHERE application_name = 'xorj-ledger' AND wait_event_type = 'Lock'
                  AND datname = current_database()"""
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.02)
    raise AssertionError("the ledger transaction never blocked")


@pytest.mark.parametrize("operation", ["admit", "record_attempt"])
def test_backend_terminated_mid_transaction_is_unavailable_and_writes_nothing(ledger: Ledger, ledger_dsn, operation):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    [claim] = ledger.claim_trades("alpha", "ex", limit=1)
    events_before = ledger.trade_events(trade_id)

    with psycopg.connect(ledger_dsn, autocommit=True) as blocker, psycopg.connect(ledger_dsn, autocommit=True) as admin:
        # The audit row is the last write of both operations: hold its table so the ledger's
        # transaction has already written the trade / attempt when it waits here.
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE trade_events IN SHARE ROW EXCLUSIVE MODE")
        outcome: list[BaseException | object] = []

        def write() -> None:
            try:
                if operation == "admit":
                    outcome.append(ledger.admit_trade(intent(2)))
                else:
                    outcome.append(ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 10, 100,
                                                         fencing_token=claim.fencing_token))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        pid = _blocked_backend_pid(admin)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(10)
        blocker.execute("ROLLBACK")

    [result] = outcome
    assert isinstance(result, LedgerUnavailableError), f"expected LedgerUnavailableError, got {result!r}"
    # No partial write: neither the trade/attempt rows nor any audit row of the killed transaction.
    assert ledger.find_trade(intent(2).key) is None
    trade = ledger.get_trade(trade_id)
    assert trade.state is TradeState.PENDING and trade.attempts == ()
    assert ledger.trade_events(trade_id) == events_before
    # The pool lends a fresh connection for the next call.
    assert ledger.admit_trade(intent(3)).created
