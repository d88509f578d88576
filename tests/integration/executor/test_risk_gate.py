"""The executor's risk gate on the real ledger: workers recording attempts of one vault's trades at the
same time (the write-ahead transaction decides and counts each trade's daily share) take no more than
the vault's daily limits allow, a trade's next attempt is not counted again, and a halt committed
after the check still stops the record. Trades are valued from the local chain (the vault's balances,
the mints' decimals) and its price API."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.integration.ledger.helpers import intent, raw_tx
from xorj.chain.jupiter import Quote, QuoteResponse
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc
from xorj.domain.risk import (
    CircuitBreaker,
    DailyShare,
    KillSwitch,
    RiskDecision,
    RiskLimits,
    RiskRefusedError,
    RiskRule,
)
from xorj.domain.trades import AttemptOutcome, ReasonCode, TradeState
from xorj.executor.adapters import ChainValuer, LedgerRiskGate, OwnedLedger
from xorj.ledger import Ledger
from xorj.ledger.aio import AsyncLedger

_QUOTE_JSON = {
    "inputMint": "So11111111111111111111111111111111111111112", "inAmount": "1000000",
    "outputMint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "outAmount": "150000",
    "otherAmountThreshold": "148500", "swapMode": "ExactIn", "slippageBps": 100, "priceImpactPct": "0.0012",
    "routePlan": [{"swapInfo": {"ammKey": "Amm1111", "inputMint": "So11111111111111111111111111111111111111112",
                                "outputMint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
                                "inAmount": "1000000", "outAmount": "150000"}, "percent": 100}],
}
QUOTE = Quote(QuoteResponse.model_validate(_QUOTE_JSON), _QUOTE_JSON)
WORKERS = 6
DAILY_TRADES = 3


def _gate(ledger: AsyncLedger, local_chain) -> LedgerRiskGate:
    valuer = ChainValuer(SolanaRpc(local_chain.rpc_url), JupiterPriceClient(price_api_url_for(local_chain.swap_api_url)))
    return LedgerRiskGate(ledger, strategy="alpha", limits=RiskLimits(max_daily_trades=DAILY_TRADES),
                          kill_switch=KillSwitch(), breaker=CircuitBreaker(), valuer=valuer)


def _on_chain(n: int, vault: str, local_chain):
    # 10 USDC-like tokens of the local market into its SOL-like token, from a funded vault
    return replace(intent(n, vault=vault, amount=10 * 10**6), input_mint=local_chain.mints["USDC"],
                   output_mint=local_chain.mints["SOL"])


async def _check_and_record(gate: LedgerRiskGate, owned: OwnedLedger, trade, fencing_token: int,
                            signature: str) -> RiskDecision | None:
    """The executor's way with one attempt: the gate's check, then the write-ahead record that counts
    the trade's daily share. The refusal, from either, or None once recorded."""
    share = await gate.check(trade, QUOTE)
    if isinstance(share, RiskDecision):
        return share
    assert isinstance(share, DailyShare)
    try:
        await owned.for_claim(trade.trade_id, fencing_token).record_attempt(
            trade.trade_id, attempt_no=len(trade.attempts) + 1, signature=signature, raw_tx=raw_tx(signature),
            last_valid_block_height=1, slippage_bps=100, quote_out_amount=None, share=share)
    except RiskRefusedError as refused:
        return refused.decision
    return None


@pytest.mark.parametrize("batched", [False, True], ids=["a-transaction-each", "one-batch"])
def test_concurrent_workers_of_one_vault_stay_within_its_daily_trade_limit(ledger: Ledger, ledger_dsn: str,
                                                                            local_chain, batched: bool):
    """Each worker records its trade's attempt in its own transaction (they race for the vault's lock),
    or all of them in one batch of the write-ahead (the batch counts them in order)."""
    vault = local_chain.take_vault()
    for n in range(WORKERS):
        ledger.admit_trade(_on_chain(n, vault, local_chain))
    trades = ledger.claim_trades("alpha", "ex", limit=WORKERS)

    async def every_worker_at_once(trades):
        async with AsyncLedger.for_dsn(ledger_dsn, max_size=WORKERS) as on_loop:
            gate = _gate(on_loop, local_chain)
            shared = OwnedLedger(on_loop, "ex", write_ahead_window=0.5, crowd=lambda: WORKERS)
            return await asyncio.gather(*(
                _check_and_record(gate, shared if batched else OwnedLedger(on_loop, "ex"), trade,
                                  trade.fencing_token, f"sig-{trade.trade_id}")
                for trade in trades))

    async def check_again(trade, fencing_token):
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            return await _check_and_record(_gate(on_loop, local_chain), OwnedLedger(on_loop, "ex"), trade,
                                           fencing_token, f"sig-{trade.trade_id}-again")

    refusals = asyncio.run(every_worker_at_once(trades))
    recorded = [trade for trade, refusal in zip(trades, refusals) if refusal is None]
    assert len(recorded) == DAILY_TRADES, [r.message for r in refusals if r is not None]
    assert {r.rule for r in refusals if r is not None} == {RiskRule.MAX_DAILY_TRADES}
    for trade, refusal in zip(trades, refusals):  # a refused trade has no attempt and nothing counted
        after = ledger.get_trade(trade.trade_id)
        assert (after.state, after.risk_reserved_at is None) == (
            (TradeState.PENDING, True) if refusal else (TradeState.SUBMITTED, False))

    # One recorded attempt expires and the trade's next attempt is checked again: not counted twice.
    retried = recorded[0]
    ledger.resolve_attempt(f"sig-{retried.trade_id}", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                           fencing_token=retried.fencing_token)
    assert asyncio.run(check_again(ledger.get_trade(retried.trade_id), retried.fencing_token)) is None
    since = datetime.now(UTC) - timedelta(hours=1)
    # counted at the notional computed from the amount and the price: 10 tokens at 1 USD each
    assert ledger.vault_activity(vault, since) == (Decimal(10) * DAILY_TRADES, DAILY_TRADES)


def test_a_halt_committed_after_the_check_refuses_the_write_ahead_record(ledger: Ledger, ledger_dsn: str,
                                                                         local_chain):
    """The halt is read again by the transaction that would record the attempt: a trade checked (and
    signed) before the halt committed is still refused, and nothing of it is recorded or counted."""
    vault = local_chain.take_vault()
    ledger.admit_trade(_on_chain(200, vault, local_chain))
    trade = ledger.claim_trades("alpha", "ex", limit=1)[0]

    async def check_halt_then_record():
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            share = await _gate(on_loop, local_chain).check(trade, QUOTE)
            assert isinstance(share, DailyShare)
            ledger.set_trading_halt(True, reason="halted between check and record", actor="test")
            with pytest.raises(RiskRefusedError) as refused:
                await OwnedLedger(on_loop, "ex").for_claim(trade.trade_id, trade.fencing_token).record_attempt(
                    trade.trade_id, attempt_no=1, signature="sig-halted", raw_tx=raw_tx("sig-halted"),
                    last_valid_block_height=1, slippage_bps=100, quote_out_amount=None, share=share)
            return refused.value.decision

    try:
        decision = asyncio.run(check_halt_then_record())
    finally:
        ledger.set_trading_halt(False, reason=None, actor="test")
    assert decision.rule is RiskRule.GLOBAL_KILL_SWITCH
    assert decision.message == "kill_switch.global: all trading is halted (halted between check and record)"
    after = ledger.get_trade(trade.trade_id)
    assert (after.state, after.attempts, after.risk_reserved_at) == (TradeState.PENDING, (), None)


def test_a_halt_wins_over_a_valuation_that_fails_at_the_same_time(ledger: Ledger, ledger_dsn: str, local_chain):
    """The halt is read while the trade is valued; a price source answering garbage at that moment
    must not turn a halted cluster's refusal into a malformed-answer error (or anything else)."""
    vault = local_chain.take_vault()
    ledger.admit_trade(_on_chain(100, vault, local_chain))
    trade = ledger.claim_trades("alpha", "ex", limit=1)[0]

    async def check():
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            gate = _gate(on_loop, local_chain)
            return await gate.check(trade, QUOTE, await gate.assess(trade))

    local_chain.set_price_answer('{"usdPrice": [1, 2')
    ledger.set_trading_halt(True, reason="halt under a broken price source", actor="test")
    try:
        decision = asyncio.run(check())
    finally:
        ledger.set_trading_halt(False, reason=None, actor="test")
        local_chain.set_price_answer(None)
    assert isinstance(decision, RiskDecision) and not decision.allowed
    assert decision.message == "kill_switch.global: all trading is halted (halt under a broken price source)"
    since = datetime.now(UTC) - timedelta(hours=1)
    assert ledger.vault_activity(vault, since) == (Decimal(0), 0)  # nothing counted
