"""The executor's write-ahead records of trades signed together go to the ledger in one transaction
(WriteAheadBatcher over xorj.ledger.transactions.record_attempts, on the real Postgres ledger), each
trade learning its own record's fate: two trades that signed byte-identical transactions (one
signature) get one record and one attempts_signature_unique refusal, as when recorded alone."""

from __future__ import annotations

import asyncio

import psycopg

from tests.integration.ledger.helpers import intent, raw_tx
from xorj.domain.trades import TradeState
from xorj.errors import LedgerConstraintError
from xorj.executor.adapters import OwnedLedger
from xorj.ledger import Ledger
from xorj.ledger.aio import AsyncLedger


def _xmins(dsn: str, trade_ids: list[int]) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("SELECT xmin::text FROM attempts WHERE trade_id = ANY(%s)",
                                               (trade_ids,))}


def _record_all(dsn: str, claims, signatures: list[str]) -> list[BaseException | None]:
    async def record():
        async with AsyncLedger.for_dsn(dsn) as on_loop:
            owned = OwnedLedger(on_loop, "ex", write_ahead_window=0.05)
            ports = [owned.for_claim(t.trade_id, t.fencing_token) for t in claims]
            return await asyncio.gather(*(
                port.record_attempt(t.trade_id, attempt_no=1, signature=sig, raw_tx=raw_tx(sig),
                                    last_valid_block_height=100, slippage_bps=50, quote_out_amount=None)
                for port, t, sig in zip(ports, claims, signatures, strict=True)), return_exceptions=True)

    return asyncio.run(record())


def test_records_signed_together_commit_once(ledger: Ledger, ledger_dsn: str):
    for n in range(5):
        ledger.admit_trade(intent(n))
    claims = ledger.claim_trades("alpha", "ex", limit=5)
    outcomes = _record_all(ledger_dsn, claims, [f"sig-{t.trade_id}" for t in claims])
    assert outcomes == [None] * 5
    assert len(_xmins(ledger_dsn, [t.trade_id for t in claims])) == 1
    assert {ledger.get_trade(t.trade_id).state for t in claims} == {TradeState.SUBMITTED}


def test_a_shared_signature_in_a_batch_refuses_only_the_second_trade(ledger: Ledger, ledger_dsn: str):
    for n in range(3):
        ledger.admit_trade(intent(n))
    claims = ledger.claim_trades("alpha", "ex", limit=3)
    signatures = ["sig-a", "sig-same", "sig-same"]
    outcomes = _record_all(ledger_dsn, claims, signatures)
    assert outcomes[0] is None
    refused = [o for o in outcomes[1:] if o is not None]
    assert len(refused) == 1 and isinstance(refused[0], LedgerConstraintError)
    assert refused[0].constraint == "attempts_signature_unique"
    states = [ledger.get_trade(t.trade_id).state for t in claims]
    assert states.count(TradeState.SUBMITTED) == 2 and states.count(TradeState.PENDING) == 1
