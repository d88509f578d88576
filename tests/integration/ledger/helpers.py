"""Helpers for the ledger tests, importable by worker processes started with the 'spawn' method."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from xorj.domain.risk import DailyUsage, RiskDecision, RiskLimits, TradeRisk, check_trade
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger, TradeIntent, migrate
from xorj.ledger.aio import AsyncLedger


def intent(n: int = 1, *, strategy: str = "alpha", vault: str = "vault-1", amount: int = 1_000_000,
           notional_usd: Decimal | None = Decimal(10)) -> TradeIntent:
    return TradeIntent(
        strategy=strategy,
        vault=vault,
        lead_signature=f"leadsig-{n}",
        lead_trader="LeadTrader1111",
        input_mint="So11111111111111111111111111111111111111112",
        output_mint="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        amount=amount,
        max_slippage_bps=100,
        notional_usd=notional_usd,
        copytrade=f"default/ct-{n}",
    )


def on_the_loop(ledger: Ledger, *, name: str = "xorj-test-aio") -> AsyncLedger:
    """An asyncio ledger (not open yet) on the database of a test's blocking ``ledger``: the same
    connection string, for the code that runs its transactions on the event loop."""
    return AsyncLedger.for_dsn(ledger._pool.conninfo, name=name)


def claimed(ledger: Ledger, n: int = 1, owner: str = "ex", **kwargs) -> int:
    """Admit trade ``n`` (:func:`intent` with ``kwargs``) and lease it to ``owner``; its id."""
    trade = intent(n, **kwargs)
    trade_id = ledger.admit_trade(trade).trade_id
    assert trade_id in {t.trade_id for t in ledger.claim_trades(trade.strategy, owner, limit=100)}
    return trade_id


def current_token(ledger: Ledger, trade_id: int) -> int:
    """The fencing token of the trade's latest claim: what its current holder presents with each write."""
    token = ledger.get_trade(trade_id).fencing_token
    assert token is not None, f"trade {trade_id} was never claimed"
    return token


def raw_tx(tag: str) -> bytes:
    """Stand-in signed transaction bytes (the ledger stores them opaquely)."""
    return b"\x01signed:" + tag.encode()


def claim_and_finish_worker(dsn: str, strategy: str, owner: str, start_at: float, out_path: str) -> None:
    """Claim trades until none is left; for each, write-ahead an attempt then confirm it. Writes the
    claimed ids, one per line, to ``out_path``."""
    claimed: list[int] = []
    with Ledger.connect(dsn, apply_migrations=False, max_size=1) as ledger:
        while time.time() < start_at:
            time.sleep(0.001)
        idle_rounds = 0
        while idle_rounds < 3:
            trades = ledger.claim_trades(strategy, owner, limit=3, lease_seconds=120)
            if not trades:
                idle_rounds += 1
                time.sleep(0.02)
                continue
            idle_rounds = 0
            for trade in trades:
                claimed.append(trade.trade_id)
                signature = f"tx-{trade.trade_id}-{owner}"
                ledger.record_attempt(trade.trade_id, owner, signature, raw_tx(signature), 1000, 100,
                                      fencing_token=trade.fencing_token)
                ledger.confirm_trade(trade.trade_id, owner, signature, fencing_token=trade.fencing_token)
    Path(out_path).write_text("".join(f"{i}\n" for i in claimed))


def claim_once_worker(dsn: str, strategy: str, owner: str, start_at: float, out_path: str) -> None:
    """One claim call at ``start_at``; writes the claimed ids to ``out_path``."""
    with Ledger.connect(dsn, apply_migrations=False, max_size=1) as ledger:
        ledger.ping()
        while time.time() < start_at:
            time.sleep(0.0005)
        trades = ledger.claim_trades(strategy, owner, limit=10, lease_seconds=60)
    Path(out_path).write_text("".join(f"{t.trade_id}\n" for t in trades))


def migrate_worker(dsn: str, directory: str | None, start_at: float, out_path: str) -> None:
    """Run the migrations at ``start_at``; writes the versions this process applied to ``out_path``."""
    while time.time() < start_at:
        time.sleep(0.0005)
    applied = migrate(dsn, directory=Path(directory)) if directory else migrate(dsn)
    Path(out_path).write_text(",".join(str(v) for v in applied))


def wait_until_available(ledger: Ledger, timeout: float = 30.0) -> float:
    """Seconds until the ledger answers again (raises if it does not within ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if ledger.ping():
            return time.monotonic() - start
        time.sleep(0.1)
    raise LedgerUnavailableError(f"ledger still unavailable after {timeout}s")


def decide_with(limits: RiskLimits, notional: Decimal, *, seconds: float = 0.0) -> Callable[[DailyUsage], RiskDecision]:
    """The executor's daily-limit decision for a trade of ``notional`` under ``limits``, taking
    ``seconds`` (so racing reservations overlap unless the ledger serialises them)."""
    risk = TradeRisk(notional_usd=notional, vault_value_usd=Decimal(0), output_position_usd=None)

    def decide(usage: DailyUsage) -> RiskDecision:
        time.sleep(seconds)
        return check_trade(limits, risk, usage)

    return decide


def ledger_as(dsn: str) -> Ledger:
    """A ledger client under ``dsn``'s login (a namespace's executor login, say), migrating nothing."""
    return Ledger.connect(dsn, apply_migrations=False, max_size=2)


def refused(conn: psycopg.Connection, statement: str, params: tuple = ()) -> psycopg.Error:
    """Run ``statement`` as the connection's role and return the error Postgres refused it with."""
    with pytest.raises(psycopg.Error) as refusal:
        conn.execute(statement, params)  # an autocommit connection: one transaction per statement
    return refusal.value
