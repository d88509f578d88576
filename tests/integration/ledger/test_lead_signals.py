"""Lead signals in the real ledger (migration 0012): accepted once per (leader, signature) with each
following strategy's trade or skip in the same transaction, the polling cursor never moving back,
racing accepts writing once, and the skip reasons' CHECK list equal to the domain's enum."""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import psycopg

from xorj.domain.copy_signals import CopyDecision, LeadSwap, SkipReason
from xorj.domain.trades import TradeState
from xorj.ledger.lead_signals import FollowerOutcome, LeadSignalStore

LEADER = "LeadTrader1111111111111111111111111111111111"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
SOL = "So11111111111111111111111111111111111111112"


def signal(signature: str = "sig-1", slot: int = 10) -> LeadSwap:
    return LeadSwap(leader=LEADER, signature=signature, slot=slot, block_time=1_800_000_000, sold_mint=USDC,
                    sold_amount=5_000_000, sold_decimals=6, bought_mint=SOL, bought_amount=10**8, bought_decimals=9,
                    sold_balance_before=9_000_000)


def outcomes() -> list[FollowerOutcome]:
    return [FollowerOutcome("ns/copying", "Vault111111111111111111111111111111111111111",
                            CopyDecision(USDC, SOL, 2_000_000, Decimal("2.00"), detail="1 x leader"),
                            copytrade="ns/copy-abc"),
            FollowerOutcome("ns/picky", "Vault222222222222222222222222222222222222222",
                            CopyDecision(USDC, SOL, 0, None, SkipReason.TOKEN_DENIED, "denied"))]


def test_a_signal_is_accepted_once_with_one_trade_or_skip_per_strategy(ledger) -> None:
    store = LeadSignalStore(ledger)
    first = store.accept(signal(), "webhook", outcomes(), advance_cursor=False)
    assert first.accepted and set(first.trade_ids) == {"ns/copying"}
    assert first.skipped == {"ns/picky": SkipReason.TOKEN_DENIED}
    trade = ledger.get_trade(first.trade_ids["ns/copying"])
    assert (trade.state, trade.amount, trade.notional_usd, trade.lead_trader, trade.copytrade) == \
        (TradeState.PENDING, 2_000_000, Decimal("2.00"), LEADER, "ns/copy-abc")
    assert store.cursor(LEADER) is None  # a push source never moves the polling cursor

    again = store.accept(signal(), "poll", outcomes(), advance_cursor=True)
    assert not again.accepted and again.trade_ids == {} and again.skipped == {}
    assert store.cursor(LEADER).cursor_signature == "sig-1"  # polling still moved past it
    [stored] = store.signals(LEADER)
    assert stored.source == "webhook" and stored.sold_balance_before == 9_000_000
    [skip] = store.skips(strategy="ns/picky")
    assert (skip.reason, skip.evented_at) == ("TOKEN_DENIED", None)
    store.mark_evented("ns/picky", LEADER, "sig-1")
    assert store.skips(not_evented=True) == []
    [copy] = store.copies(not_projected=True)
    assert (copy.strategy, copy.trade_id, copy.copytrade) == ("ns/copying", trade.trade_id, "ns/copy-abc")
    store.mark_projected("ns/copying", LEADER, "sig-1")
    assert store.copies(not_projected=True) == []


def test_the_cursor_never_moves_back(ledger) -> None:
    store = LeadSignalStore(ledger)
    store.advance_cursor(LEADER, "sig-new", 50)
    store.advance_cursor(LEADER, "sig-old", 40)
    assert (store.cursor(LEADER).cursor_signature, store.cursor(LEADER).cursor_slot) == ("sig-new", 50)


def test_racing_accepts_write_one_signal_and_one_trade(ledger) -> None:
    store = LeadSignalStore(ledger)
    results = []
    start = threading.Barrier(4)

    def race(source: str) -> None:
        start.wait()
        results.append(store.accept(signal("sig-race"), source, outcomes(), advance_cursor=source == "poll"))

    threads = [threading.Thread(target=race, args=(s,)) for s in ("poll", "webhook", "websocket", "poll")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.accepted for r in results) == 1
    assert sum(len(r.trade_ids) for r in results) == 1
    assert ledger.counts_by_state("ns/copying")[TradeState.PENDING] == 1
    assert len(LeadSignalStore(ledger).signals(LEADER)) == 1


def test_skip_reasons_in_sql_are_the_domains(ledger_dsn) -> None:
    with psycopg.connect(ledger_dsn) as conn:
        definition = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                  "WHERE conname = 'lead_skips_reason_valid'").fetchone()[0]
    assert set(re.findall(r"'([A-Z_]+)'::text", definition)) == {r.value for r in SkipReason}
