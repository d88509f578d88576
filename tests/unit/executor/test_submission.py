"""Pure parts of the submission algorithm: confirmation depth by size, expiry records, program ids,
the status poll's instants."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj.chain.classify import JUPITER_PROGRAM_ID, TOKEN_PROGRAM_ID
from xorj.chain.errors import RpcRequestError
from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, Trade, TradeState
from xorj.executor.submission import (
    ConfirmationPolicy,
    Submitter,
    next_poll_delay,
    program_ids_of,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _trade(amount: int = 1_000, notional: Decimal | None = Decimal(10)) -> Trade:
    return Trade(trade_id=1, strategy="s", vault="v", lead_signature="l", lead_trader="t", input_mint="a",
                 output_mint="b", amount=amount, max_slippage_bps=None, notional_usd=notional, copytrade=None,
                 state=TradeState.PENDING, reason=None, detail=None, final_signature=None, lease_owner=None,
                 lease_expires_at=None, created_at=NOW, updated_at=NOW, submitted_at=None, finished_at=None)


def _attempt(lvbh: int = 100) -> Attempt:
    return Attempt(attempt_id=1, trade_id=1, attempt_no=1, signature="sig", raw_tx=b"x", last_valid_block_height=lvbh,
                   slippage_bps=100, quote_out_amount=5, outcome=AttemptOutcome.PENDING, reason=None, detail=None,
                   created_at=NOW, resolved_at=None)


def test_confirmation_depth_scales_with_size():
    policy = ConfirmationPolicy(default="confirmed", finalized_from_usd=Decimal(1000), finalized_from_amount=10**9)
    assert policy.required(_trade(notional=Decimal("999.99"))) == "confirmed"
    assert policy.required(_trade(notional=Decimal(1000))) == "finalized"
    assert policy.required(_trade(amount=10**9, notional=None)) == "finalized"
    assert ConfirmationPolicy().required(_trade(notional=Decimal(10) ** 9)) == "confirmed"


def test_expiry_record_names_why_the_rpc_never_took_the_transaction():
    timed_out = Submitter._expired(_attempt(), 151, 0, {ReasonCode.RPC_TIMEOUT: 4}, None)
    assert timed_out.outcome is AttemptOutcome.EXPIRED and timed_out.reason is ReasonCode.BLOCKHASH_EXPIRED
    assert timed_out.detail.startswith("RPC_TIMEOUT: never accepted")
    assert timed_out.send_failure is ReasonCode.RPC_TIMEOUT  # the code travels in its own column
    resolved = dataclasses.replace(_attempt(), outcome=AttemptOutcome.EXPIRED, reason=ReasonCode.BLOCKHASH_EXPIRED,
                                   send_failure=timed_out.send_failure, detail=timed_out.detail)
    assert resolved.decisive_reason is ReasonCode.RPC_TIMEOUT

    refused = RpcRequestError("no funds", reason=ReasonCode.INSUFFICIENT_FUNDS)
    funds = Submitter._expired(_attempt(), 151, 0, {ReasonCode.INSUFFICIENT_FUNDS: 2}, refused)
    assert funds.detail.startswith("INSUFFICIENT_FUNDS: never accepted (no funds)")
    assert funds.send_failure is ReasonCode.INSUFFICIENT_FUNDS

    # once a send was accepted, the expiry is a plain one: the transaction may have been seen
    plain = Submitter._expired(_attempt(), 151, 1, {ReasonCode.RPC_TIMEOUT: 3}, None)
    assert plain.detail.startswith("unseen after expiry") and plain.send_failure is None


def test_program_ids_of_signed_bytes():
    payer = Keypair()
    ixs = [Instruction(Pubkey.from_string(JUPITER_PROGRAM_ID), b"", [AccountMeta(payer.pubkey(), True, True)]),
           Instruction(Pubkey.from_string(TOKEN_PROGRAM_ID), b"", [])]
    tx = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], Hash.new_unique()), [payer])
    assert program_ids_of(bytes(tx)) == (JUPITER_PROGRAM_ID, TOKEN_PROGRAM_ID)


def test_expiry_record_names_its_proof_and_what_was_ignored_on_the_way():
    from xorj.chain.status_batch import StatusReading
    from xorj.domain.expiry import FinalizedPoint

    reading = StatusReading(finalized=FinalizedPoint(slot=1_200, height=201), status=None, status_context_slot=1_232)
    expired = Submitter._expired(_attempt(lvbh=200), 201, 2, {}, None, reading=reading, already_processed=1,
                                 stale_answers=3)
    assert expired.outcome is AttemptOutcome.EXPIRED
    assert expired.detail.startswith("unseen after expiry: finalized height 201 > last valid 200")
    assert "finalized slot 1200, status answered as of slot 1232" in expired.detail
    assert "3 older status answer(s) ignored" in expired.detail
    assert "1 send(s) answered AlreadyProcessed" in expired.detail
    assert expired.send_failure is None
    assert dataclasses.replace(_attempt(), outcome=AttemptOutcome.EXPIRED, reason=ReasonCode.BLOCKHASH_EXPIRED,
                               detail=expired.detail).decisive_reason is ReasonCode.BLOCKHASH_EXPIRED


def _submitter() -> Submitter:
    from xorj.chain.rpc import SolanaRpc
    from xorj.domain.slippage import SlippagePolicy

    # an address nothing listens on: _judge without a second node never calls the RPC
    rpc = SolanaRpc("http://127.0.0.1:9")
    return Submitter(rpc=rpc, swap_api=None, signer=None, ledger=None, policy=SlippagePolicy(), risk=None)  # type: ignore[arg-type]


def test_one_reading_is_judged_live_expired_stale_or_known_in_one_place():
    import asyncio

    from solders.signature import Signature

    from xorj.chain.rpc import SignatureStatus
    from xorj.chain.status_batch import StatusReading
    from xorj.domain.expiry import ExpiryVerdict, FinalizedPoint

    submitter = _submitter()
    attempt = _attempt(lvbh=200)

    def judge(height: int, context_slot: int, status: SignatureStatus | None = None):
        reading = StatusReading(finalized=FinalizedPoint(slot=1_000, height=height), status=status,
                                status_context_slot=context_slot)
        return asyncio.run(submitter._judge(attempt, reading, Signature.default(), ()))

    live = judge(height=200, context_slot=1_000)
    assert live.expiry is ExpiryVerdict.LIVE and live.status is None
    expired = judge(height=201, context_slot=1_000)
    assert expired.expiry is ExpiryVerdict.EXPIRED and not expired.second_node
    # past the window, but the "not found" is as of a slot before the finalized block: no proof
    stale = judge(height=201, context_slot=999)
    assert stale.expiry is ExpiryVerdict.STALE_STATUS
    known = SignatureStatus(slot=990, confirmation="finalized", failure=None)
    found = judge(height=201, context_slot=999, status=known)
    assert found.status is known and found.expiry is None


def test_trades_sent_at_different_times_read_their_statuses_at_the_same_instants():
    interval = 0.2
    sent = [1000.013, 1000.071, 1000.1999]  # three sends within one interval
    instants = {round(now + next_poll_delay(now, interval), 9) for now in sent}
    assert instants == {1000.2}
    for now in sent:
        assert 0 < next_poll_delay(now, interval) <= interval
    assert next_poll_delay(1000.2000001, interval) == pytest.approx(interval, abs=1e-6)  # just past: the next one
