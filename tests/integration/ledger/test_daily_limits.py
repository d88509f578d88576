"""Daily risk limits: the check and the count of an approved trade are one step per vault, so
executors checking trades of one vault at the same time cannot all take its last slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from xorj.domain.risk import DailyUsage, RiskDecision, RiskLimits, RiskRule
from xorj.domain.trades import AttemptOutcome, ReasonCode
from xorj.errors import LeaseLostError
from xorj.ledger import Ledger

from .helpers import claimed, current_token, decide_with, intent, raw_tx

RACERS = 8
# How long each racer's decision takes: longer than it takes every racer to read the usage, so
# without serialisation they would all decide on the same usage.
DECISION_SECONDS = 0.05


def _today() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def _in_thread(fn: Callable[[], RiskDecision]) -> tuple[threading.Thread, list[RiskDecision]]:
    out: list[RiskDecision] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    "limits, notional, approved, rule",
    [
        (RiskLimits(max_daily_trades=3), Decimal(10), 3, RiskRule.MAX_DAILY_TRADES),
        (RiskLimits(max_daily_volume_usd=Decimal(1000)), Decimal(400), 2, RiskRule.MAX_DAILY_VOLUME),
    ],
    ids=["trade-count", "volume"],
)
def test_racing_executors_approve_exactly_what_the_daily_limit_allows(
    ledger: Ledger, ledger_dsn: str, limits: RiskLimits, notional: Decimal, approved: int, rule: RiskRule
):
    for n in range(RACERS):
        ledger.admit_trade(intent(n, notional_usd=notional))
    # One executor process per trade: its own connection, its own lease.
    executors = [Ledger.connect(ledger_dsn, apply_migrations=False, max_size=1) for _ in range(RACERS)]
    try:
        claims = [executor.claim_trades("alpha", f"executor-{i}", limit=1) for i, executor in enumerate(executors)]
        start = threading.Barrier(RACERS)
        decisions: dict[int, RiskDecision] = {}

        def race(i: int) -> None:
            [trade] = claims[i]
            executors[i].ping()
            start.wait()
            decisions[trade.trade_id] = executors[i].reserve_daily_share(
                trade.trade_id, f"executor-{i}", notional, decide_with(limits, notional, seconds=DECISION_SECONDS), fencing_token=current_token(executors[i], trade.trade_id)
            )

        threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for executor in executors:
            executor.close()

    assert len(decisions) == RACERS
    allowed = sorted(tid for tid, decision in decisions.items() if decision.allowed)
    refused = {decision.rule for decision in decisions.values() if not decision.allowed}
    assert len(allowed) == approved, f"{len(allowed)} of {RACERS} racing trades approved, limit allows {approved}"
    assert refused == {rule}
    assert [tid for tid in sorted(decisions) if ledger.get_trade(tid).risk_reserved_at is not None] == allowed
    assert ledger.vault_activity("vault-1", _today()) == (notional * approved, approved)


def test_a_trade_is_counted_once_however_often_it_is_checked(ledger: Ledger):
    limits = RiskLimits(max_daily_trades=2)
    decide = decide_with(limits, Decimal(10))
    first, second, third = (claimed(ledger, n) for n in range(3))

    assert ledger.reserve_daily_share(first, "ex", Decimal(10), decide, fencing_token=current_token(ledger, first)).allowed
    reserved_at = ledger.get_trade(first).risk_reserved_at
    # Checked again before any send (its swap could not be prepared), then after a send whose
    # transaction expired: the same trade each time, not a new one.
    assert ledger.reserve_daily_share(first, "ex", Decimal(10), decide, fencing_token=current_token(ledger, first)).allowed
    ledger.record_attempt(first, "ex", "sig-1", raw_tx("1"), 1, 100, fencing_token=current_token(ledger, first))
    ledger.resolve_attempt("sig-1", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, fencing_token=current_token(ledger, first))
    assert ledger.reserve_daily_share(first, "ex", Decimal(10), decide, fencing_token=current_token(ledger, first)).allowed
    assert ledger.get_trade(first).risk_reserved_at == reserved_at
    assert ledger.vault_activity("vault-1", _today()) == (Decimal(10), 1)

    assert ledger.reserve_daily_share(second, "ex", Decimal(10), decide, fencing_token=current_token(ledger, second)).allowed
    refusal = ledger.reserve_daily_share(third, "ex", Decimal(10), decide, fencing_token=current_token(ledger, third))
    assert (refusal.allowed, refusal.rule) == (False, RiskRule.MAX_DAILY_TRADES)
    assert refusal.message == "max_daily_trades: 3 trades today > limit 2"
    assert ledger.get_trade(third).risk_reserved_at is None


def test_an_approved_trade_that_fails_before_any_send_frees_its_slot(ledger: Ledger):
    decide = decide_with(RiskLimits(max_daily_trades=1), Decimal(10))
    unsent, waiting = claimed(ledger, 1), claimed(ledger, 2)
    assert ledger.reserve_daily_share(unsent, "ex", Decimal(10), decide, fencing_token=current_token(ledger, unsent)).allowed
    assert not ledger.reserve_daily_share(waiting, "ex", Decimal(10), decide, fencing_token=current_token(ledger, waiting)).allowed
    ledger.fail_trade(unsent, "ex", ReasonCode.QUOTE_UNAVAILABLE, "no route", fencing_token=current_token(ledger, unsent))
    assert ledger.reserve_daily_share(waiting, "ex", Decimal(10), decide, fencing_token=current_token(ledger, waiting)).allowed


def test_volume_counts_the_notional_the_trade_was_approved_at(ledger: Ledger):
    # Admitted without a notional: the executor priced it, and that price is what the day used up.
    priced = claimed(ledger, 1, notional_usd=None)
    limits = RiskLimits(max_daily_volume_usd=Decimal(500))
    assert ledger.reserve_daily_share(priced, "ex", Decimal(300), decide_with(limits, Decimal(300)), fencing_token=current_token(ledger, priced)).allowed
    assert ledger.vault_activity("vault-1", _today()) == (Decimal(300), 1)
    second = claimed(ledger, 2)
    refusal = ledger.reserve_daily_share(second, "ex", Decimal(300), decide_with(limits, Decimal(300)),
                                         fencing_token=current_token(ledger, second))
    assert refusal.rule is RiskRule.MAX_DAILY_VOLUME


def test_vaults_are_serialised_separately(ledger: Ledger):
    limits = RiskLimits(max_daily_trades=1)
    holder, waiter = claimed(ledger, 1), claimed(ledger, 2)
    other_vault = claimed(ledger, 3, vault="vault-2")
    deciding, release = threading.Event(), threading.Event()

    def decide_when_released(usage: DailyUsage) -> RiskDecision:
        deciding.set()
        assert release.wait(30)
        return decide_with(limits, Decimal(10))(usage)

    holding, holder_decision = _in_thread(lambda: ledger.reserve_daily_share(holder, "ex", Decimal(10),
                                                                             decide_when_released, fencing_token=current_token(ledger, holder)))
    assert deciding.wait(30)  # the holder is inside its vault-1 check-and-reserve
    waiting, waiter_decision = _in_thread(lambda: ledger.reserve_daily_share(waiter, "ex", Decimal(10),
                                                                             decide_with(limits, Decimal(10)), fencing_token=current_token(ledger, waiter)))
    # Another vault's check neither waits for vault-1's nor sees its usage.
    started = time.monotonic()
    assert ledger.reserve_daily_share(other_vault, "ex", Decimal(10), decide_with(limits, Decimal(10)), fencing_token=current_token(ledger, other_vault)).allowed
    assert time.monotonic() - started < 5
    waiting.join(0.5)
    assert waiting.is_alive(), "a second check of vault-1 must wait for the first to commit"

    release.set()
    holding.join(30)
    waiting.join(30)
    assert holder_decision[0].allowed
    assert waiter_decision[0].rule is RiskRule.MAX_DAILY_TRADES
    assert ledger.vault_activity("vault-1", _today()) == (Decimal(10), 1)
    assert ledger.vault_activity("vault-2", _today()) == (Decimal(10), 1)


def test_only_the_lease_holder_can_reserve(ledger: Ledger):
    trade_id = claimed(ledger, 1, owner="holder")
    with pytest.raises(LeaseLostError, match="reserve_daily_share on trade .* another executor"):
        ledger.reserve_daily_share(trade_id, "intruder", Decimal(10), decide_with(RiskLimits(), Decimal(10)), fencing_token=current_token(ledger, trade_id))
    assert ledger.get_trade(trade_id).risk_reserved_at is None
    assert ledger.vault_activity("vault-1", _today()) == (Decimal(0), 0)
