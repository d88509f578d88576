"""The executor's batched ledger steps (write-ahead records with their daily-limit counts,
confirmations of many trades at once, a fan-out's most of all) are set-based: a few statements per
batch and step, whatever the batch's size, not a few per trade. What each trade is told stays its own:
one trade over its vault's limit is refused alone (and recorded nowhere), two trades of one vault in a
batch are counted one after the other, and batches racing over the same vaults record exactly what the
daily limit allows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from xorj.domain.risk import DailyShare, RiskLimits, RiskRefusedError, RiskRule, VaultLimits
from xorj.domain.trades import Attempt, Trade, TradeState
from xorj.errors import LeaseLostError, XorjError
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


def _record(trade: Trade, owner: str, share: DailyShare, *, fencing_token: int | None = None) -> tx.AttemptRecord:
    return tx.AttemptRecord(trade.trade_id, owner, f"sig-{trade.trade_id}", raw_tx(str(trade.trade_id)), 100, 50, 7,
                            trade.fencing_token if fencing_token is None else fencing_token, share)


def _verdict(result: Attempt | XorjError) -> RiskRule | None:
    """None for a recorded attempt, the refusing rule for a refused daily share."""
    if isinstance(result, RiskRefusedError):
        return result.decision.rule
    assert isinstance(result, Attempt), result
    return None


def _admit_and_claim(ledger: Ledger, vaults: list[str], per_vault: int, owner: str = "ex") -> list[Trade]:
    for v, vault in enumerate(vaults):
        for k in range(per_vault):
            ledger.admit_trade(intent(v * 1000 + k, vault=vault))
    return ledger.claim_trades("alpha", owner, limit=len(vaults) * per_vault)


def test_each_batched_step_is_a_few_statements_whatever_the_batch_size(ledger: Ledger):
    claimed = _admit_and_claim(ledger, [f"vault-{v}" for v in range(BATCH // 2)], 2)
    assert len(claimed) == BATCH
    unlimited = RiskLimits(max_daily_trades=1000, max_daily_volume_usd=Decimal(10**9))

    records = [_record(t, "ex", DailyShare(Decimal(10), decide_with(unlimited, Decimal(10)))) for t in claimed]
    write_ahead: list[str] = []
    attempts = ledger.run(counting(tx.record_attempts(records), write_ahead))
    assert [attempts[r].signature for r in records] == [r.signature for r in records]  # type: ignore[union-attr]
    confirm: list[str] = []
    confirmed = ledger.run(counting(tx.confirm_trades(
        [tx.Confirmation(t.trade_id, "ex", f"sig-{t.trade_id}", t.fencing_token) for t in claimed]), confirm))
    assert all(isinstance(t, Trade) and t.state is TradeState.CONFIRMED for t in confirmed.values()), confirmed

    # one statement per trade and step would be 60 or more each
    assert len(write_ahead) <= 7, write_ahead  # 4 to write ahead, 3 to count the daily shares
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
    batch = [_record(t, "ex", DailyShare(Decimal(10), decide_with(strategy_limits, Decimal(10))),
                     fencing_token=t.fencing_token + (1 if t is stale else 0)) for t in claimed]
    results = ledger.run(tx.record_attempts(batch))

    assert isinstance(results[batch[0]], LeaseLostError)  # a stale claim is refused alone, counts nothing
    by_vault: dict[str, list[RiskRule | None]] = {}
    for trade, record in zip(claimed[1:], batch[1:], strict=True):
        by_vault.setdefault(trade.vault, []).append(_verdict(results[record]))
    # two trades of one vault in one batch are counted one after the other: the second sees the first
    count = by_vault["vault-count"]
    assert sorted(count, key=str) == [None, RiskRule.MAX_DAILY_TRADES] or count == [None], count
    assert by_vault["vault-notional"] == [RiskRule.MAX_TRADE_NOTIONAL] * 2
    assert by_vault["vault-free"] == [None, None]
    counted = {t.trade_id for t in fresh if ledger.get_trade(t.trade_id).risk_reserved_at is not None}
    recorded = {t.trade_id for t in fresh if ledger.get_trade(t.trade_id).attempts}
    approved = {r.trade_id for r in batch[1:] if _verdict(results[r]) is None}
    assert counted == recorded == approved
    assert all(ledger.get_trade(t).state is TradeState.PENDING for t in {t.trade_id for t in fresh} - approved)
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
        decisions: dict[int, RiskRule | None] = {}

        def race(i: int) -> None:
            batch = [_record(t, f"executor-{i}", DailyShare(Decimal(10), decide_with(limits, Decimal(10), seconds=0.05)))
                     for t in claims[i]]
            executors[i].ping()
            start.wait()
            for record, result in executors[i].run(tx.record_attempts(batch)).items():
                decisions[record.trade_id] = _verdict(result)

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
    assert sum(rule is None for rule in decisions.values()) == PER_VAULT_LIMIT * len(vaults)
    assert set(decisions.values()) == {None, RiskRule.MAX_DAILY_TRADES}
