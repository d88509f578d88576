"""The work queue: SKIP LOCKED claims, leases, heartbeats, takeover of expired leases, fencing."""

from __future__ import annotations

import collections
import multiprocessing
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.errors import InvalidInputError, LeaseLostError
from xorj.ledger import Ledger

from .helpers import claim_and_finish_worker, claim_once_worker, current_token, intent, raw_tx

CLAIMER_PROCESSES = 8


def _run_processes(target, args_per_process, tmp_path: Path, lead_seconds: float = 3.0) -> list[list[int]]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + lead_seconds  # all processes imported and connected, then go together
    outs = [tmp_path / f"claimed-{i}" for i in range(len(args_per_process))]
    procs = [ctx.Process(target=target, args=(*args, start_at, str(out))) for args, out in zip(args_per_process, outs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return [[int(line) for line in out.read_text().split()] for out in outs]


def test_concurrent_claimer_processes_never_claim_the_same_trade(ledger: Ledger, ledger_dsn, tmp_path):
    trade_ids = {ledger.admit_trade(intent(n)).trade_id for n in range(300)}
    ledger.admit_trade(intent(1, strategy="other"))  # another strategy's trade is never claimed

    per_process = _run_processes(
        claim_and_finish_worker,
        [(ledger_dsn, "alpha", f"executor-{i}") for i in range(CLAIMER_PROCESSES)],
        tmp_path,
    )

    all_claims = [tid for claims in per_process for tid in claims]
    duplicates = [tid for tid, n in collections.Counter(all_claims).items() if n > 1]
    assert duplicates == [], f"trades claimed more than once: {duplicates[:10]}"
    assert set(all_claims) == trade_ids
    assert sum(1 for claims in per_process if claims) >= 2, "the claimers did not actually run concurrently"
    assert ledger.counts_by_state("alpha") == {
        TradeState.PENDING: 0, TradeState.SUBMITTED: 0, TradeState.CONFIRMED: 300, TradeState.FAILED: 0
    }
    for tid in list(trade_ids)[:20]:
        trade = ledger.get_trade(tid)
        assert len(trade.attempts) == 1 and trade.final_signature == trade.attempts[0].signature
    assert ledger.counts_by_state("other")[TradeState.PENDING] == 1


def test_claims_are_oldest_first_and_skip_live_leases(ledger: Ledger):
    ids = [ledger.admit_trade(intent(n)).trade_id for n in range(5)]
    first = ledger.claim_trades("alpha", "ex-a", limit=2)
    second = ledger.claim_trades("alpha", "ex-b", limit=10)
    assert [t.trade_id for t in first] == ids[:2]
    assert [t.trade_id for t in second] == ids[2:]
    assert all(t.lease_owner == "ex-a" and t.lease_expires_at is not None for t in first)
    assert ledger.claim_trades("alpha", "ex-c", limit=10) == []


def test_expired_lease_hands_the_trade_over_exactly_once_and_fences_the_old_owner(ledger: Ledger, ledger_dsn, tmp_path):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    [claim] = ledger.claim_trades("alpha", "old-owner", limit=1, lease_seconds=1.0)
    old_token = claim.fencing_token
    ledger.record_attempt(trade_id, "old-owner", "sig-1", raw_tx("1"), 777, 100, quote_out_amount=5000,
                          fencing_token=old_token)
    time.sleep(1.3)  # the old owner stops heartbeating (paused, partitioned or dead)
    before = ledger.get_trade(trade_id)
    events_before = ledger.trade_events(trade_id)

    per_process = _run_processes(
        claim_once_worker, [(ledger_dsn, "alpha", f"taker-{i}") for i in range(CLAIMER_PROCESSES)], tmp_path
    )
    winners = [i for i, claims in enumerate(per_process) if claims]
    assert len(winners) == 1, f"handed over to {len(winners)} claimers: {per_process}"
    assert per_process[winners[0]] == [trade_id]
    new_owner = f"taker-{winners[0]}"

    taken = ledger.get_trade(trade_id)
    assert taken.lease_owner == new_owner
    # Recovery resumes the stored attempt: the exact signed bytes are handed to the new owner.
    [attempt] = taken.attempts
    assert (attempt.signature, attempt.raw_tx, attempt.last_valid_block_height) == ("sig-1", raw_tx("1"), 777)
    assert attempt.quote_out_amount == 5000 and attempt.outcome is AttemptOutcome.PENDING

    # Every write of the old owner is fenced and changes nothing.
    assert ledger.heartbeat({trade_id: old_token}, "old-owner") == set()
    with pytest.raises(LeaseLostError, match="another executor"):
        ledger.resolve_attempt("sig-1", "old-owner", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, fencing_token=old_token)
    with pytest.raises(LeaseLostError):
        ledger.confirm_trade(trade_id, "old-owner", "sig-1", fencing_token=old_token)
    with pytest.raises(LeaseLostError):
        ledger.fail_trade(trade_id, "old-owner", ReasonCode.RPC_TIMEOUT, fencing_token=old_token)
    with pytest.raises(LeaseLostError):
        ledger.record_attempt(trade_id, "old-owner", "sig-2", raw_tx("2"), 900, 150, fencing_token=old_token)
    assert ledger.release(trade_id, "old-owner", fencing_token=old_token) is False
    after = ledger.get_trade(trade_id)
    assert (after.state, after.attempts, after.lease_owner) == (before.state, before.attempts, new_owner)
    assert ledger.trade_events(trade_id) == events_before

    # The new owner finishes it with the stored attempt.
    confirmed = ledger.confirm_trade(trade_id, new_owner, "sig-1", fencing_token=current_token(ledger, trade_id))
    assert confirmed.state is TradeState.CONFIRMED and confirmed.final_signature == "sig-1"
    assert confirmed.attempts[0].outcome is AttemptOutcome.LANDED
    # The old owner repeating the same confirmation is a harmless no-op; anything else stays fenced.
    assert ledger.confirm_trade(trade_id, "old-owner", "sig-1", fencing_token=old_token).state is TradeState.CONFIRMED
    with pytest.raises(LeaseLostError, match="already CONFIRMED"):
        ledger.fail_trade(trade_id, "old-owner", ReasonCode.RPC_TIMEOUT, fencing_token=old_token)


def test_a_write_after_the_lease_expired_is_fenced_even_without_a_new_owner(ledger: Ledger):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    ledger.claim_trades("alpha", "slow", limit=1, lease_seconds=0.5)
    time.sleep(0.7)
    with pytest.raises(LeaseLostError, match="expired or was released"):
        ledger.record_attempt(trade_id, "slow", "sig-1", raw_tx("1"), 1, 1, fencing_token=current_token(ledger, trade_id))
    assert ledger.get_trade(trade_id).attempts == ()


def test_heartbeats_keep_the_lease_and_release_hands_it_back(ledger: Ledger):
    a = ledger.admit_trade(intent(1)).trade_id
    b = ledger.admit_trade(intent(2)).trade_id
    leases = {t.trade_id: t.fencing_token for t in ledger.claim_trades("alpha", "ex", limit=2, lease_seconds=1.0)}
    assert sorted(leases) == sorted([a, b])
    for _ in range(3):
        time.sleep(0.5)
        assert ledger.heartbeat(leases, "ex", lease_seconds=1.0) == {a, b}
    assert ledger.claim_trades("alpha", "other", limit=5) == []
    assert ledger.heartbeat(leases, "intruder") == set()

    assert ledger.release(a, "ex", fencing_token=leases[a]) is True
    assert ledger.heartbeat(leases, "ex", lease_seconds=1.0) == {b}
    assert [t.trade_id for t in ledger.claim_trades("alpha", "other", limit=5)] == [a]


def test_lease_arguments_are_validated(ledger: Ledger):
    with pytest.raises(InvalidInputError, match="owner"):
        ledger.claim_trades("alpha", "", limit=1)
    with pytest.raises(InvalidInputError, match="lease_seconds"):
        ledger.claim_trades("alpha", "ex", limit=1, lease_seconds=0)
    with pytest.raises(InvalidInputError, match="limit"):
        ledger.claim_trades("alpha", "ex", limit=0)


def test_find_stale_reports_unowned_non_terminal_trades(ledger: Ledger):
    never_claimed = ledger.admit_trade(intent(1)).trade_id
    expired = ledger.admit_trade(intent(2)).trade_id
    live = ledger.admit_trade(intent(3)).trade_id
    done = ledger.admit_trade(intent(4)).trade_id
    ledger.claim_trades("alpha", "ex", limit=4, lease_seconds=60)
    ledger.release(expired, "ex", fencing_token=current_token(ledger, expired))
    ledger.fail_trade(done, "ex", ReasonCode.RISK_LIMIT, "kill switch", fencing_token=current_token(ledger, done))
    ledger.release(never_claimed, "ex", fencing_token=current_token(ledger, never_claimed))

    assert ledger.find_stale(grace=timedelta(minutes=5)) == []  # all became unowned just now
    stale = ledger.find_stale(grace=timedelta(0))
    assert sorted(t.trade_id for t in stale) == sorted([never_claimed, expired])
    assert live not in {t.trade_id for t in stale}
    assert ledger.find_stale(grace=timedelta(0), strategy="other") == []


def test_cancel_fences_the_executor_holding_a_pending_trade(ledger: Ledger):
    trade_id = ledger.admit_trade(intent(1)).trade_id
    ledger.claim_trades("alpha", "ex", limit=1)
    cancelled = ledger.cancel_trade(trade_id, "CopyTrade deleted")
    assert (cancelled.state, cancelled.reason, cancelled.lease_owner) == (TradeState.FAILED, ReasonCode.CANCELLED, None)
    with pytest.raises(LeaseLostError, match="already FAILED"):
        ledger.record_attempt(trade_id, "ex", "sig-1", raw_tx("1"), 1, 1, fencing_token=current_token(ledger, trade_id))
    assert ledger.cancel_trade(trade_id, "again").state is TradeState.FAILED  # idempotent


def test_cancel_pending_takes_a_strategys_unsent_trades_only(ledger: Ledger):
    pending = [ledger.admit_trade(intent(n)).trade_id for n in range(3)]
    leased = ledger.admit_trade(intent(10)).trade_id
    sent = ledger.admit_trade(intent(11)).trade_id
    other = ledger.admit_trade(intent(12, strategy="other")).trade_id
    ledger.claim_trades("alpha", "ex", limit=10)  # every alpha trade leased to one executor
    ledger.record_attempt(sent, "ex", "sig-sent", raw_tx("sent"), 1, 1, fencing_token=current_token(ledger, sent))  # SUBMITTED: a transaction is out

    cancelled = ledger.cancel_pending("alpha", "strategy deleted")

    assert sorted(cancelled) == sorted([*pending, leased])
    for trade_id in cancelled:
        trade = ledger.get_trade(trade_id)
        assert (trade.state, trade.reason, trade.lease_owner) == (TradeState.FAILED, ReasonCode.CANCELLED, None)
    with pytest.raises(LeaseLostError, match="already FAILED"):  # the executor holding one is fenced
        ledger.record_attempt(leased, "ex", "sig-late", raw_tx("late"), 1, 1, fencing_token=current_token(ledger, leased))
    assert ledger.get_trade(sent).state is TradeState.SUBMITTED
    assert ledger.get_trade(other).state is TradeState.PENDING
    assert ledger.cancel_pending("alpha", "again") == []


def test_concurrent_claiming_threads_in_one_process(ledger: Ledger):
    ids = {ledger.admit_trade(intent(n)).trade_id for n in range(60)}
    got: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def claimer(owner: str) -> None:
        barrier.wait()
        while batch := ledger.claim_trades("alpha", owner, limit=2):
            with lock:
                got.extend(t.trade_id for t in batch)

    threads = [threading.Thread(target=claimer, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)
