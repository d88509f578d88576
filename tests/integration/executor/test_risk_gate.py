"""The executor's risk gate on the real ledger: workers checking trades of one vault at the same time
take no more than the vault's daily limits allow, and a trade's next attempt is not counted again.
Trades are valued from the local chain (the vault's balances, the mints' decimals) and its price API."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.integration.ledger.helpers import intent, raw_tx
from xorj.chain.jupiter import Quote, QuoteResponse
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc
from xorj.domain.risk import CircuitBreaker, KillSwitch, RiskLimits, RiskRule
from xorj.domain.trades import AttemptOutcome, ReasonCode
from xorj.executor.adapters import ChainValuer, LedgerRiskGate
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


def _gate(ledger: AsyncLedger, owner: str, local_chain) -> LedgerRiskGate:
    valuer = ChainValuer(SolanaRpc(local_chain.rpc_url), JupiterPriceClient(price_api_url_for(local_chain.swap_api_url)))
    return LedgerRiskGate(ledger, strategy="alpha", owner=owner, limits=RiskLimits(max_daily_trades=DAILY_TRADES),
                          kill_switch=KillSwitch(), breaker=CircuitBreaker(), valuer=valuer)


def _on_chain(n: int, vault: str, local_chain):
    # 10 USDC-like tokens of the local market into its SOL-like token, from a funded vault
    return replace(intent(n, vault=vault, amount=10 * 10**6), input_mint=local_chain.mints["USDC"],
                   output_mint=local_chain.mints["SOL"])


def test_concurrent_workers_of_one_vault_stay_within_its_daily_trade_limit(ledger: Ledger, ledger_dsn: str,
                                                                            local_chain):
    vault = local_chain.take_vault()
    for n in range(WORKERS):
        ledger.admit_trade(_on_chain(n, vault, local_chain))
    trades = ledger.claim_trades("alpha", "ex", limit=WORKERS)

    async def every_worker_checks_at_once(trades):
        async with AsyncLedger.for_dsn(ledger_dsn, max_size=WORKERS) as on_loop:
            gate = _gate(on_loop, "ex", local_chain)
            return await asyncio.gather(*(gate.check(trade, QUOTE, fencing_token=trade.fencing_token)
                                           for trade in trades))

    async def check_one(trade, fencing_token):
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            return await _gate(on_loop, "ex", local_chain).check(trade, QUOTE, fencing_token=fencing_token)

    decisions = asyncio.run(every_worker_checks_at_once(trades))
    approved = [trade for trade, decision in zip(trades, decisions) if decision.allowed]
    assert len(approved) == DAILY_TRADES, [d.message for d in decisions]
    assert {d.rule for d in decisions if not d.allowed} == {RiskRule.MAX_DAILY_TRADES}

    # The approved ones are sent; one's transaction expires and its next attempt is checked again.
    for trade in approved:
        signature = f"sig-{trade.trade_id}"
        ledger.record_attempt(trade.trade_id, "ex", signature, raw_tx(signature), 1, 100,
                              fencing_token=trade.fencing_token)
    retried = approved[0]
    ledger.resolve_attempt(f"sig-{retried.trade_id}", "ex", AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED,
                           fencing_token=retried.fencing_token)
    assert asyncio.run(check_one(ledger.get_trade(retried.trade_id), retried.fencing_token)).allowed
    since = datetime.now(UTC) - timedelta(hours=1)
    # counted at the notional computed from the amount and the price: 10 tokens at 1 USD each
    assert ledger.vault_activity(vault, since) == (Decimal(10) * DAILY_TRADES, DAILY_TRADES)


def test_a_halt_wins_over_a_valuation_that_fails_at_the_same_time(ledger: Ledger, ledger_dsn: str, local_chain):
    """The halt is read while the trade is valued; a price source answering garbage at that moment
    must not turn a halted cluster's refusal into a malformed-answer error (or anything else)."""
    vault = local_chain.take_vault()
    ledger.admit_trade(_on_chain(100, vault, local_chain))
    trade = ledger.claim_trades("alpha", "ex", limit=1)[0]

    async def check():
        async with AsyncLedger.for_dsn(ledger_dsn) as on_loop:
            gate = _gate(on_loop, "ex", local_chain)
            return await gate.check(trade, QUOTE, await gate.assess(trade), fencing_token=trade.fencing_token)

    local_chain.set_price_answer('{"usdPrice": [1, 2')
    ledger.set_trading_halt(True, reason="halt under a broken price source", actor="test")
    try:
        decision = asyncio.run(check())
    finally:
        ledger.set_trading_halt(False, reason=None, actor="test")
        local_chain.set_price_answer(None)
    assert not decision.allowed
    assert decision.message == "kill_switch.global: all trading is halted (halt under a broken price source)"
    since = datetime.now(UTC) - timedelta(hours=1)
    assert ledger.vault_activity(vault, since) == (Decimal(0), 0)  # nothing counted
