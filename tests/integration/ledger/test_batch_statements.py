"""The executor's batched ledger steps (daily-limit reservations, write-ahead records, confirmations
of many trades at once, a fan-out's most of all) are set-based: a few statements per batch and step,
whatever the batch's size, not a few per trade. What each trade is told stays its own: one trade over
its vault's limit is refused alone, two trades of one vault in a batch are counted one after the
other, and batches racing over the same vaults approve exactly what the daily limit allows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from xorj.domain.risk import RiskDecision, RiskLimits, RiskRule, VaultLimits
from xorj.domain.trades import Trade, TradeState
from xorj.errors import LeaseLostError
from xorj.ledger import Ledger
from xorj.ledger import transactions as tx
from xorj.ledger.statements import Step
from xorj.ledger.vaults import register_vault

from .helpers import decide_with, intent, raw_tx

BATCH = 60  # trades per batch: 2 in each of 30 vaults


def counting(body: Step[Any], statements: list[str]) -> Step[Any]:
    """``body`` as is, appending the SQL of every statement it runs to ``statements``."""
    try:
        statement = body.send(None)
        while True:
            statements.append(statement.sql)
            try:
                result = yield statement
            except BaseException as exc:  # noqa: BLE001 - thrown into the body, as the runner does
                statement = body.throw(exc)
            else:
                statement = body.send(result)
    except StopIteration as done:
        return done.value


def _admit_and_claim(ledger: Ledger, vaults: list[str], per_vault: int, owner: str = "ex") -> list[Trade]:
    for v, vault in enumerate(vaults):
        for k in range(per_vault):
            ledger.admit_trade(intent(v * 1000 + k, vault=vault))
    return ledger.claim_trades("alpha", owner, limit=len(vaults) * per_vault)


def test_each_batched_step_is_a_few_statements_whatever_the_batch_size(ledger: Ledger):
    claimed = _admit_and_claim(ledger, [f"vault-{v}" for v in range(BATCH // 2)], 2)
    assert len(claimed) == BATCH
    unlimited = RiskLimits(max_daily_trades=1000, max_daily_volume_usd=Decimal(10**9))

    reserve: list[str] = []
    decisions = ledger.run(counting(tx.reserve_daily_shares(
        [tx.Reservation(t.trade_id, "ex", t.vault, Decimal(10), decide_with(unlimited, Decimal(10)), t.fencing_token)
         for t in claimed]), reserve))
    assert all(isinstance(d, RiskDecision) and d.allowed for d in decisions.values()), decisions
    records = [tx.AttemptRecord(t.trade_id, "ex", f"sig-{t.trade_id}", raw_tx(str(t.trade_id)), 100, 50, 7,
                                t.fencing_token) for t in claimed]
    write_ahead: list[str] = []
    attempts = ledger.run(counting(tx.record_attempts(records), write_ahead))
    assert [attempts[r].signature for r in records] == [r.signature for r in records]  # type: ignore[union-attr]
    confirm: list[str] = []
    confirmed = ledger.run(counting(tx.confirm_trades(
        [tx.Confirmation(t.trade_id, "ex", f"sig-{t.trade_id}", t.fencing_token) for t in claimed]), confirm))
    assert all(isinstance(t, Trade) and t.state is TradeState.CONFIRMED for t in confirmed.values()), confirmed

    # one statement per trade and step would be 60 or more each
    assert len(reserve) <= 4, reserve
    assert len(write_ahead) <= 4, write_ahead
    assert len(confirm) <= 6, confirm
    for trade in claimed:
        stored = ledger.get_trade(trade.trade_id)
        assert stored.state is TradeState.CONFIRMED and stored.final_signature == f"sig-{trade.trade_id}"
        assert stored.risk_reserved_usd == Decimal(10) and stored.lease_owner is None
        assert [(a.signature, a.outcome.value) for a in stored.attempts] == [(f"sig-{trade.trade_id}", "LANDED")]
    history = [(e.from_state, e.to_state) for e in ledger.trade_events(claimed[0].trade_id)]
    assert history == [(None, TradeState.PENDING), (TradeState.PENDING, TradeState.SUBMITTED),
                       (TradeState.SUBMITTED, TradeState.CONFIRMED)], history


def test_a_batch_refuses_only_the_trades_over_their_vault_limits(ledger: Ledger):
    ledger.run(register_vault("alpha", "vault-count", vault_object="ns/count", limits=VaultLimits(max_daily_trades=1)))
    ledger.run(register_vault("alpha", "vault-notional", vault_object="ns/notional",
                              limits=VaultLimits(max_trade_notional_usd=Decimal(5))))
    ledger.run(register_vault("alpha", "vault-free", vault_object="ns/free", limits=VaultLimits()))
    claimed = _admit_and_claim(ledger, ["vault-count", "vault-notional", "vault-free"], 2)
    stale, *fresh = claimed
    strategy_limits = RiskLimits(max_daily_trades=1000, max_daily_volume_usd=Decimal(10**9),
                                 max_trade_notional_usd=Decimal(1000))
    batch = [tx.Reservation(t.trade_id, "ex", t.vault, Decimal(10), decide_with(strategy_limits, Decimal(10)),
                            t.fencing_token + (1 if t is stale else 0)) for t in claimed]
    results = ledger.run(tx.reserve_daily_shares(batch))

    assert isinstance(results[batch[0]], LeaseLostError)  # a stale claim is refused alone, counts nothing
    by_vault: dict[str, list[RiskDecision]] = {}
    for check in batch[1:]:
        decision = results[check]
        assert isinstance(decision, RiskDecision), decision
        by_vault.setdefault(check.vault, []).append(decision)
    # two trades of one vault in one batch are counted one after the other: the second sees the first
    count = [d.allowed for d in by_vault["vault-count"]]
    assert sorted(count) == [False, True] or count == [True], by_vault["vault-count"]
    assert {d.rule for d in by_vault["vault-count"] if not d.allowed} <= {RiskRule.MAX_DAILY_TRADES}
    assert all(not d.allowed and d.rule is RiskRule.MAX_TRADE_NOTIONAL for d in by_vault["vault-notional"])
    assert all(d.allowed for d in by_vault["vault-free"]) and len(by_vault["vault-free"]) == 2
    counted = {t.trade_id for t in fresh if ledger.get_trade(t.trade_id).risk_reserved_at is not None}
    approved = {c.trade_id for c in batch[1:] if results[c].allowed}  # type: ignore[union-attr]
    assert counted == approved
    since = datetime.now(UTC) - timedelta(hours=1)
    assert ledger.vault_activity("vault-count", since).trade_count == 1
    assert ledger.vault_activity("vault-notional", since).trade_count == 0
    assert ledger.vault_activity("vault-free", since).trade_count == 2


RACERS = 4
PER_VAULT_LIMIT = 3


def test_racing_batches_over_shared_vaults_approve_exactly_what_the_daily_limit_allows(ledger: Ledger,
                                                                                      ledger_dsn: str):
    vaults = ["vault-a", "vault-b", "vault-c"]
    for r in range(RACERS):
        for v, vault in enumerate(vaults):
            ledger.admit_trade(intent(r * 100 + v, vault=vault))
    limits = RiskLimits(max_daily_trades=PER_VAULT_LIMIT, max_daily_volume_usd=Decimal(10**9))
    # one executor process per batch: its own connection, its own leases, one trade of each vault
    executors = [Ledger.connect(ledger_dsn, apply_migrations=False, max_size=1) for _ in range(RACERS)]
    try:
        claims = [executor.claim_trades("alpha", f"executor-{i}", limit=len(vaults))
                  for i, executor in enumerate(executors)]
        start = threading.Barrier(RACERS)
        decisions: dict[int, RiskDecision] = {}

        def race(i: int) -> None:
            batch = [tx.Reservation(t.trade_id, f"executor-{i}", t.vault, Decimal(10),
                                    decide_with(limits, Decimal(10), seconds=0.05), t.fencing_token) for t in claims[i]]
            executors[i].ping()
            start.wait()
            for check, decision in executors[i].run(tx.reserve_daily_shares(batch)).items():
                assert isinstance(decision, RiskDecision), decision
                decisions[check.trade_id] = decision

        threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for executor in executors:
            executor.close()

    assert len(decisions) == RACERS * len(vaults), decisions
    since = datetime.now(UTC) - timedelta(hours=1)
    for vault in vaults:
        assert ledger.vault_activity(vault, since).trade_count == PER_VAULT_LIMIT, vault
    assert sum(d.allowed for d in decisions.values()) == PER_VAULT_LIMIT * len(vaults)
    assert {d.rule for d in decisions.values() if not d.allowed} == {RiskRule.MAX_DAILY_TRADES}
