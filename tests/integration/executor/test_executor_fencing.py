"""Fencing tokens with the real executor, ledger and chain: an executor paused past its lease while
holding a signed, not yet committed attempt resumes after ANOTHER executor with the SAME identity
(an executor restarted under the same name, or a duplicate of it) claimed the trade. Fenced by the
owner name only, the paused one's write went through: the new claimant's lease is live and its
owner name matches. With fencing tokens it is refused, nothing it signed is sent, and the new
claimant finishes the trade exactly once (fills counted on the chain)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    executor_env,
    rpc,
    wait_terminal,
)
from xorj.domain.trades import AttemptOutcome, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_000_000
EXECUTOR_ID = "executor-same-name"
LEASE_SECONDS = 3
WAIT = 60.0  # generous limit for each step of the choreography (a busy machine)


class PausedPastItsLease:
    """Step hooks for two executors working one trade, in this order:

    1. The first executor to quote the trade (the stale one) signs its attempt and is then paused
       before committing it: its hook blocks its event loop, which stops it as SIGSTOP would (no
       heartbeat, no progress), until ...
    2. ... its lease has run out and the other executor (the new claimant) has claimed the trade
       and quoted it. The stale one then resumes, while the new claimant holds a live lease.
    3. The new claimant waits until the stale one's commit was decided (recorded, or refused and the
       trade dropped), then goes on.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stale: str | None = None
        self.stale_paused = threading.Event()
        self.successor_quoted = threading.Event()
        self.stale_decided: Callable[[], bool] = lambda: False
        self.on_successor_quoted: Callable[[], object] = lambda: None
        self.problems: list[str] = []

    def hook(self, name: str) -> Callable[[str], None]:
        def step(done: str) -> None:
            with self.lock:
                if done == "quoted" and self.stale is None:
                    self.stale = name
                    return
                role = "stale" if name == self.stale else "successor"
            if role == "stale" and done == "signed" and not self.stale_paused.is_set():
                self.stale_paused.set()
                if not self.successor_quoted.wait(WAIT):  # blocks this executor's whole event loop
                    self.problems.append("the other executor never claimed and quoted the trade")
            elif role == "successor" and done == "quoted" and not self.successor_quoted.is_set():
                self.on_successor_quoted()
                self.successor_quoted.set()
                deadline = time.monotonic() + WAIT
                while not self.stale_decided():
                    if time.monotonic() > deadline:
                        self.problems.append("the stale executor's commit was never decided")
                        return
                    time.sleep(0.05)
        return step


def _signatures_signed_by(service) -> list[str]:
    """Every swap transaction this executor signs (its swap guard's signatures, watched)."""
    signed: list[str] = []
    sign = service.swap_guard.sign

    async def watched(*args, **kwargs):
        swap = await sign(*args, **kwargs)
        signed.append(str(swap.signature))
        return swap

    service.swap_guard.sign = watched
    return signed


def _leases_lost(executor, strategy: str) -> float:
    return executor.service.metrics.leases_lost.labels(strategy)._value.get()


def test_an_executor_paused_past_its_lease_is_fenced_after_a_same_name_reclaim(local_chain, ledger, ledger_dsn,
                                                                               scenario, chain_before):
    fills_before, balances_before = chain_before
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, executor_id=EXECUTOR_ID, lease_seconds=LEASE_SECONDS)
    trade_ids: list[int] = []
    plan = PausedPastItsLease()
    with InProcessExecutor(env) as first, InProcessExecutor(env) as second:
        executors = {"first": first, "second": second}
        signed = {}
        for name, executor in executors.items():
            executor.service.submitter.hook = plan.hook(name)  # before any trade exists to claim
            signed[name] = _signatures_signed_by(executor.service)

        def stale_decided() -> bool:
            stale = executors[plan.stale]
            return bool(ledger.get_trade(trade_ids[0]).attempts) or _leases_lost(stale, scenario.strategy) > 0

        plan.stale_decided = stale_decided
        # A new block, so the new claimant's transaction is not byte-identical to the stale one's.
        plan.on_successor_quoted = lambda: local_chain.advance_blocks(2)

        trade_ids += admit(ledger, scenario, 1, AMOUNT)
        assert plan.stale_paused.wait(WAIT), "no executor signed an attempt"
        trades = wait_terminal(ledger, trade_ids, 120)
        stale, successor = plan.stale, ("second" if plan.stale == "first" else "first")
        leases_lost = _leases_lost(executors[stale], scenario.strategy)
    assert plan.problems == []

    [trade] = trades
    assert trade.state is TradeState.CONFIRMED, trade
    # Both executors claimed it under one name: only the token told their claims apart.
    assert {e.actor for e in ledger.trade_events(trade.trade_id) if e.actor} == {EXECUTOR_ID}
    stale_signatures = set(signed[stale])
    assert stale_signatures and not stale_signatures & set(signed[successor])
    # The stale executor's commit was refused: the only attempt is the new claimant's, and it landed.
    [attempt] = trade.attempts
    assert attempt.signature in signed[successor] and attempt.outcome is AttemptOutcome.LANDED
    assert trade.final_signature == attempt.signature
    assert leases_lost >= 1
    # Nothing the stale executor signed reached the chain; the chain holds exactly the one fill.
    statuses = rpc(local_chain.rpc_url, "getSignatureStatuses",
                   [sorted(stale_signatures), {"searchTransactionHistory": True}])["value"]
    assert statuses == [None] * len(stale_signatures)
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)
