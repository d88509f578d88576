"""The operator's handlers share one small ledger pool: a busy ledger makes them wait their turn, never
fail. 50 Vault reconciles and CopyTrade admissions at once on 2 connections, each transaction slowed
by the real server (a trigger sleeps in it), take longer than the acquire timeout: all finish and
none is "ledger unavailable" (before the queue, the callers past the timeout failed and kopf retried
them). A real outage still fails every caller, queued or not, as unavailable within about the acquire
timeout, with the pool's reason (or, for a connection lent unchecked a moment before, the lost
session's), and the ledger answers again once the server is back; connections
that are all stuck fail the queued callers the same way instead of keeping them forever."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from lightkube import KubeConfig
from lightkube.config.models import Cluster, User

from xorj.controller import metrics
from xorj.controller.freshness import WatchFreshness
from xorj.controller.kube import Kube
from xorj.controller.runtime import Runtime
from xorj.controller.settings import OperatorSettings
from xorj.domain.risk import VaultLimits
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger, migrate, transactions, vaults
from xorj.ledger.aio import AsyncLedger

from ..ledger.helpers import intent

pytestmark = pytest.mark.postgres

POOL = 2
ACQUIRE_TIMEOUT = 0.5  # short, so the load below takes many times longer than it
UNAVAILABLE = "ledger unavailable: no database connection (PoolTimeout)"  # the pool's reason, as before
VAULTS_STRATEGY = "ns/fleet"


def _runtime(ledger: Ledger, dsn: str) -> Runtime:
    # the API server is never reached: these are the handlers' ledger calls
    nowhere = KubeConfig.from_one(cluster=Cluster(server="http://127.0.0.1:9"), user=User()).get()
    kube = Kube(nowhere, WatchFreshness(stale_after=60))
    on_loop = AsyncLedger.for_dsn(dsn, max_size=POOL, acquire_timeout=ACQUIRE_TIMEOUT, name="xorj-operator-aio")
    return Runtime(settings=OperatorSettings(ledger_dsn=dsn), kube=kube, async_ledger=on_loop, ledger=ledger,
                   freshness=kube.freshness, identity="test/1")


def _vault_key(n: int) -> str:
    return f"Vault{n:04d}" + "1" * 34


async def _reconcile_vault(rt: Runtime, n: int) -> None:
    """The Vault reconcile's ledger call (xorj.controller.vault.reconcile)."""
    registration = await rt.ledger_run(vaults.register_vault(VAULTS_STRATEGY, _vault_key(n), vault_object=f"ns/v{n}",
                                                             limits=VaultLimits()))
    assert registration.conflict is None


async def _admit(rt: Runtime, n: int) -> None:
    """The CopyTrade admission's ledger calls (xorj.controller.copytrade.reconcile): fan out, read back."""
    fanned = await rt.ledger_run(vaults.admit_fanout(intent(n, strategy="ns/alpha", vault="OwnVault1"),
                                                     actor="operator/test/1"))
    trade = await rt.ledger_run(transactions.get_trade(fanned.results["OwnVault1"].trade_id))
    assert trade.lead_signature == f"leadsig-{n}"


def _errors() -> float:
    return sum(metrics.LEDGER_ERRORS.labels(op)._value.get()
               for op in ("register_vault", "admit_fanout", "get_trade"))


def test_50_handlers_on_2_connections_wait_their_turn_and_none_is_ledger_unavailable(ledger: Ledger,
                                                                                       ledger_dsn: str):
    with psycopg.connect(ledger_dsn, autocommit=True) as admin:
        # a loaded ledger: every write to the vault registry or the trades takes 40 ms more
        admin.execute("""
            CREATE FUNCTION test_slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.04); RETURN NULL; END $$;
            CREATE TRIGGER test_slow_vaults AFTER INSERT OR UPDATE ON vaults
                FOR EACH STATEMENT EXECUTE FUNCTION test_slow_write();
            CREATE TRIGGER test_slow_trades AFTER INSERT ON trades
                FOR EACH STATEMENT EXECUTE FUNCTION test_slow_write();""")
    rt = _runtime(ledger, ledger_dsn)
    errors_before = _errors()

    async def at_once():
        await rt.async_ledger.open()
        try:
            began = time.monotonic()
            outcomes = await asyncio.gather(*(_reconcile_vault(rt, n) for n in range(25)),
                                            *(_admit(rt, n) for n in range(25)), return_exceptions=True)
            return outcomes, time.monotonic() - began
        finally:
            await rt.async_ledger.close()

    outcomes, took = asyncio.run(at_once())
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert failures == [], f"{len(failures)} of 50 failed, e.g. {failures[0]!r}"
    # the load was real: far longer than a caller could have waited in the pool's own queue
    assert took > 3 * ACQUIRE_TIMEOUT, took
    assert _errors() == errors_before
    assert len(ledger.run(vaults.list_vaults(VAULTS_STRATEGY))) == 25
    with psycopg.connect(ledger_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM trades WHERE strategy = 'ns/alpha'").fetchone()[0] == 25


@pytest.mark.slow
def test_an_outage_fails_every_queued_handler_as_unavailable_in_about_the_timeout_and_then_recovers(
        disposable_postgres_server):
    server = disposable_postgres_server
    dsn = server.create_database("ledger")
    migrate(dsn)
    with Ledger.connect(dsn, apply_migrations=False, max_size=1) as blocking:
        rt = _runtime(blocking, dsn)

        async def timed(call):
            began = time.monotonic()
            try:
                await call
            except LedgerUnavailableError as exc:
                return str(exc), time.monotonic() - began
            return "ok", time.monotonic() - began

        async def through_an_outage():
            await rt.async_ledger.open()
            try:
                await _reconcile_vault(rt, 0)  # the ledger answers
                await asyncio.to_thread(server.stop)
                during = await asyncio.gather(*(timed(_reconcile_vault(rt, n)) for n in range(1, 51)))
                await asyncio.to_thread(server.start)
                deadline = time.monotonic() + 30  # the pool reconnects in the background, with backoff
                while True:
                    outcome, _ = await timed(_reconcile_vault(rt, 100))
                    if outcome == "ok" or time.monotonic() > deadline:
                        return during, outcome
                    await asyncio.sleep(0.25)
            finally:
                await rt.async_ledger.close()

        during, after = asyncio.run(through_an_outage())
    # The pool's reason, except for the calls that drew a connection lent a moment before the stop:
    # those are lent unchecked (xorj.ledger.pool.CHECK_BYPASS_SECONDS) and fail on the lost session,
    # unavailable all the same; at most one per connection before the pool drops it.
    lost_session = [outcome for outcome, _ in during if outcome != UNAVAILABLE]
    assert all(outcome.startswith("ledger unavailable: ") for outcome in lost_session), lost_session
    assert len(lost_session) <= POOL, lost_session
    assert len(lost_session) < len(during)
    slowest = max(took for _, took in during)
    # each waited about one acquire timeout (the holders in the pool, the queued ones for progress)
    assert slowest < 4 * ACQUIRE_TIMEOUT, slowest
    assert after == "ok", f"the ledger did not answer within 30 s of the server's restart: {after}"


def test_when_every_connection_is_stuck_the_queued_handlers_fail_as_unavailable(ledger: Ledger, ledger_dsn: str):
    rt = _runtime(ledger, ledger_dsn)
    with psycopg.connect(ledger_dsn, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE vaults IN ACCESS EXCLUSIVE MODE")  # both connections wait on it

        async def stuck():
            await rt.async_ledger.open()
            try:
                calls = [asyncio.create_task(_reconcile_vault(rt, n)) for n in range(10)]
                began = time.monotonic()
                done, _ = await asyncio.wait(calls, timeout=10 * ACQUIRE_TIMEOUT, return_when=asyncio.FIRST_EXCEPTION)
                await asyncio.sleep(3 * ACQUIRE_TIMEOUT)  # time enough for every queued call to give up
                failed_by = time.monotonic() - began
                await asyncio.to_thread(blocker.execute, "ROLLBACK")  # the stuck ones go on
                outcomes = await asyncio.gather(*calls, return_exceptions=True)
                return done, failed_by, outcomes
            finally:
                await rt.async_ledger.close()

        done, failed_by, outcomes = asyncio.run(stuck())
    assert done, f"no queued call gave up within {failed_by:.1f} s"
    unavailable = [o for o in outcomes if isinstance(o, LedgerUnavailableError)]
    assert [str(o) for o in unavailable] == [UNAVAILABLE] * 8  # the queued ones
    assert outcomes.count(None) == POOL  # the two holding the connections finished once the lock went
