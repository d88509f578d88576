"""The asyncio ledger (xorj.ledger.aio) runs the same transaction bodies as the blocking one, on the
real Postgres server: the executor's path with its fencing and idempotent repeats, the errors
classified the same way (a lost connection is unavailable, a broken constraint names itself), and a
task cancelled or cut off mid-transaction writes nothing and leaves the pool usable."""

from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal

import psycopg
import pytest

from xorj.domain.risk import RiskDecision
from xorj.domain.trades import TradeState
from xorj.errors import LeaseLostError, LedgerConstraintError, LedgerUnavailableError
from xorj.ledger import Ledger
from xorj.ledger import transactions as tx
from xorj.ledger.aio import AsyncLedger

from .helpers import intent, raw_tx


def _allow(usage):
    return RiskDecision(True, None, f"allowed at {usage.trade_count} trades today")


def test_the_executor_path_on_the_event_loop_is_fenced_and_repeatable(ledger: Ledger, ledger_dsn: str):
    trade_id = ledger.admit_trade(intent(1)).trade_id

    async def executor_path():
        async with AsyncLedger.for_dsn(ledger_dsn, name="xorj-executor") as on_loop:
            [first] = await on_loop.run(tx.claim_trades("alpha", "ex", 8, 1.0))
            await asyncio.sleep(1.2)  # the first claim's lease runs out; the same owner claims again
            [second] = await on_loop.run(tx.claim_trades("alpha", "ex", 8, 30.0))
            assert second.fencing_token > first.fencing_token
            with pytest.raises(LeaseLostError, match="stale"):
                await on_loop.run(tx.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 100, 50,
                                                    fencing_token=first.fencing_token))
            token = second.fencing_token
            assert not (await on_loop.run(tx.trading_halt())).halted
            decision = await on_loop.run(tx.reserve_daily_share(trade_id, "ex", Decimal(10), _allow,
                                                                fencing_token=token))
            assert decision.allowed
            attempt = await on_loop.run(tx.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 100, 50,
                                                          fencing_token=token))
            # a write whose COMMIT answer was lost is asked again: the repeat changes nothing
            again = await on_loop.run(tx.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 100, 50,
                                                        fencing_token=token))
            assert again == attempt
            assert await on_loop.run(tx.heartbeat({trade_id: token}, "ex", 30.0)) == {trade_id}
            confirmed = await on_loop.run(tx.confirm_trade(trade_id, "ex", "sig-1", fencing_token=token))
            counts = await on_loop.run(tx.counts_by_state("alpha"))
            return attempt, confirmed, counts

    attempt, confirmed, counts = asyncio.run(executor_path())
    assert attempt.attempt_no == 1 and confirmed.state is TradeState.CONFIRMED
    assert counts[TradeState.CONFIRMED] == 1
    # the blocking ledger reads what the asyncio one wrote, audit trail included
    stored = ledger.get_trade(trade_id)
    assert stored.state is TradeState.CONFIRMED and stored.final_signature == "sig-1"
    assert stored.risk_reserved_usd == Decimal(10)
    assert [(e.from_state, e.to_state) for e in ledger.trade_events(trade_id)] == [
        (None, TradeState.PENDING), (TradeState.PENDING, TradeState.SUBMITTED),
        (TradeState.SUBMITTED, TradeState.CONFIRMED)]


def test_a_broken_constraint_names_itself_on_the_event_loop(ledger: Ledger, ledger_dsn: str):
    one = ledger.admit_trade(intent(1)).trade_id
    two = ledger.admit_trade(intent(2)).trade_id
    claims = {t.trade_id: t.fencing_token for t in ledger.claim_trades("alpha", "ex", limit=2)}
    ledger.record_attempt(one, "ex", "sig-1", raw_tx("1"), 100, 50, fencing_token=claims[one])

    async def reuse_signature():
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            await on_loop.run(tx.record_attempt(two, "ex", "sig-1", raw_tx("other"), 100, 50,
                                                fencing_token=claims[two]))

    with pytest.raises(LedgerConstraintError) as caught:
        asyncio.run(reuse_signature())
    assert caught.value.constraint == "attempts_signature_unique"
    assert ledger.get_trade(two).state is TradeState.PENDING


def _blocked_backend_pid(conn: psycopg.Connection, application: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            """SELECT pid FROM pg_stat_activity
                WHERE application_name = %s AND wait_event_type = 'Lock' AND datname = current_database()""",
            (application,)).fetchone()
        if row:
            return row[0]
        time.sleep(0.02)
    raise AssertionError("the ledger transaction never blocked")


@pytest.mark.parametrize("cut", ["backend_terminated", "task_cancelled"])
def test_a_write_cut_off_mid_transaction_writes_nothing_and_the_pool_recovers(ledger: Ledger, ledger_dsn: str,
                                                                              cut: str):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    [claim] = ledger.claim_trades("alpha", "ex", limit=1)
    events_before = ledger.trade_events(trade_id)
    application = f"xorj-async-{cut}"

    with psycopg.connect(ledger_dsn, autocommit=True) as blocker, psycopg.connect(ledger_dsn, autocommit=True) as admin:
        # The audit row is record_attempt's last write: hold its table, so the transaction has
        # already inserted the attempt and moved the trade when it waits here.
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE trade_events IN SHARE ROW EXCLUSIVE MODE")

        async def cut_off():
            # one connection: the call after the cut must get a working one from the same pool
            async with AsyncLedger.for_dsn(ledger_dsn, max_size=1, name=application) as on_loop:
                write = asyncio.create_task(on_loop.run(tx.record_attempt(
                    trade_id, "ex", "sig-1", raw_tx("1"), 10, 100, fencing_token=claim.fencing_token)))
                pid = await asyncio.to_thread(_blocked_backend_pid, admin, application)
                if cut == "backend_terminated":
                    await asyncio.to_thread(admin.execute, "SELECT pg_terminate_backend(%s)", (pid,))
                else:
                    write.cancel()
                outcome = (await asyncio.gather(write, return_exceptions=True))[0]
                await asyncio.to_thread(blocker.execute, "ROLLBACK")
                after = await on_loop.run(tx.get_trade(trade_id))
                return outcome, after

        outcome, after = asyncio.run(cut_off())

    expected = LedgerUnavailableError if cut == "backend_terminated" else asyncio.CancelledError
    assert isinstance(outcome, expected), f"expected {expected.__name__}, got {outcome!r}"
    assert after.state is TradeState.PENDING and after.attempts == ()
    assert ledger.trade_events(trade_id) == events_before


def test_an_unreachable_ledger_is_unavailable_within_the_acquire_timeout():
    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def call():
        async with AsyncLedger.for_dsn(f"postgresql://xorj@127.0.0.1:{port}/ledger", acquire_timeout=1.0) as on_loop:
            began = time.monotonic()
            with pytest.raises(LedgerUnavailableError):
                await on_loop.run(tx.trading_halt())
            return time.monotonic() - began

    assert asyncio.run(call()) < 5.0


def test_concurrent_claims_on_the_event_loop_never_hand_a_trade_out_twice(ledger: Ledger, ledger_dsn: str):
    for n in range(40):
        ledger.admit_trade(intent(n))

    async def claimers():
        async with AsyncLedger.for_dsn(ledger_dsn, max_size=4) as on_loop:
            batches = await asyncio.gather(*(on_loop.run(tx.claim_trades("alpha", f"ex-{i}", 5, 30.0))
                                             for i in range(8)))
        return [t.trade_id for batch in batches for t in batch]

    claimed = asyncio.run(claimers())
    assert len(claimed) == 40 and len(set(claimed)) == 40


def _xmins(ledger_dsn: str, trade_ids: list[int]) -> set[str]:
    """The transactions that wrote the attempts of ``trade_ids`` (Postgres' xmin of each row)."""
    with psycopg.connect(ledger_dsn) as conn:
        return {row[0] for row in conn.execute("SELECT xmin::text FROM attempts WHERE trade_id = ANY(%s)",
                                               (trade_ids,))}


def test_write_ahead_records_of_a_batch_commit_in_one_transaction_and_a_refusal_is_its_own(
        ledger: Ledger, ledger_dsn: str):
    for n in range(4):
        ledger.admit_trade(intent(n))
    claimed = ledger.claim_trades("alpha", "ex", limit=4)
    fresh, stale = claimed[:3], claimed[3]
    ledger.release(stale.trade_id, "ex", fencing_token=stale.fencing_token)
    [again] = ledger.claim_trades("alpha", "ex-2", limit=1)  # the stale claim's trade is someone else's now
    assert again.trade_id == stale.trade_id
    batch = [tx.AttemptRecord(t.trade_id, "ex", f"sig-{t.trade_id}", raw_tx(str(t.trade_id)), 100, 50, None,
                              t.fencing_token) for t in [*claimed]]

    async def record():
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            return await on_loop.run(tx.record_attempts(batch))

    results = asyncio.run(record())
    assert isinstance(results[batch[3]], LeaseLostError)
    assert [results[r].signature for r in batch[:3]] == [f"sig-{t.trade_id}" for t in fresh]
    assert len(_xmins(ledger_dsn, [t.trade_id for t in fresh])) == 1  # one transaction, one commit
    assert all(ledger.get_trade(t.trade_id).state is TradeState.SUBMITTED for t in fresh)
    assert ledger.get_trade(stale.trade_id).attempts == ()
    # the same batch again (its commit's answer lost): nothing new is written
    assert asyncio.run(record())[batch[0]] == results[batch[0]]
    assert len(ledger.get_trade(fresh[0].trade_id).attempts) == 1
