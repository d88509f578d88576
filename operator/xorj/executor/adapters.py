"""Adapters between the submission algorithm's ports and the real parts: the Postgres ledger on the
event loop (:class:`~xorj.ledger.aio.AsyncLedger` running :mod:`xorj.ledger.transactions`), and the
risk gate over :mod:`xorj.domain.risk`, whose daily limits the ledger checks and counts atomically
per vault, in the attempt's write-ahead transaction.

Fencing: the algorithm works on one claim of one trade at a time. The ledger port it is given for that
work (:meth:`OwnedLedger.for_claim`) carries that claim's fencing token and presents it with every
write (the daily-limit count included), so a task that outlived its claim (a pause past its lease, then a
re-claim, even by this same executor) has every write refused with :class:`LeaseLostError`. The token
is bound when the work starts, never taken from a trade read later: a fresh read carries the newest
claim's token, which would let the stale task through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import NoReturn, TypeVar

from xorj.chain.account_batch import AccountReads
from xorj.chain.errors import MalformedAnswerError
from xorj.chain.holdings import NATIVE_SOL_MINT, MintInfo, read_mints, read_vault
from xorj.chain.jupiter import Quote
from xorj.chain.prices import PriceSource, TokenPrice
from xorj.chain.rpc import SolanaRpc
from xorj.chain.ticks import Crowd, TickBatcher
from xorj.domain.risk import (
    BreakerStatus,
    CircuitBreaker,
    DailyShare,
    DailyUsage,
    KillSwitch,
    RiskDecision,
    RiskLimits,
    RiskRule,
    TradeRisk,
    check_trade,
    globally_halted,
)
from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, Trade
from xorj.domain.valuation import (
    DEFAULT_NOTIONAL_TOLERANCE,
    MintBalance,
    Valuation,
    ValuationError,
    decimals_agree,
    notional_disagreement,
    prices_needed,
    value_trade,
)
from xorj.errors import LeaseLostError, LedgerError, LedgerUnavailableError, XorjError
from xorj.executor.ports import RiskAssessment, TradeValuer
from xorj.executor.settings import DEFAULT_CASH_MINTS
from xorj.ledger import transactions as tx
from xorj.ledger.aio import AsyncLedger
from xorj.ledger.records import AlertSeverity, NewAlert, TradingHalt
from xorj.ledger.statements import Step
from xorj.redaction import redact_urls

log = logging.getLogger("xorj.executor")
_R = TypeVar("_R")

# How long the first write-ahead record of a batch waits for others (write_ahead_batcher): short next
# to a send's round trip, long enough for the records of trades signed in the same tick.
WRITE_AHEAD_WINDOW = 0.002

# The most trades one batched ledger transaction (LedgerTick) carries: more wait for the next one, which
# runs at the same time on another pooled connection. Each step of a batch is a few set-based statements
# whatever its size (xorj.ledger.transactions.record_attempts with its daily-limit counts, confirm_trades), so a
# batch may be large; the bound keeps one refused statement's retry (each key alone) small.
LEDGER_BATCH = 256

# Which trade failures also go to the alert outbox (written in the same transaction as the failure).
FAILURE_ALERTS: dict[ReasonCode, tuple[str, AlertSeverity]] = {
    ReasonCode.SLIPPAGE_EXCEEDED: ("ONCHAIN_FAILURE", AlertSeverity.WARNING),
    ReasonCode.PROGRAM_ERROR: ("ONCHAIN_FAILURE", AlertSeverity.CRITICAL),
    ReasonCode.INSUFFICIENT_FUNDS: ("ONCHAIN_FAILURE", AlertSeverity.CRITICAL),
    ReasonCode.RPC_TIMEOUT: ("RPC_FAILURE", AlertSeverity.WARNING),
    ReasonCode.RPC_ERROR: ("RPC_FAILURE", AlertSeverity.WARNING),
    ReasonCode.MALFORMED_RESPONSE: ("RPC_FAILURE", AlertSeverity.CRITICAL),
    ReasonCode.QUOTE_UNAVAILABLE: ("RPC_FAILURE", AlertSeverity.WARNING),
    # the swap API answered something the vault must not sign: someone may be attacking it
    ReasonCode.SWAP_REJECTED: ("SWAP_REJECTED", AlertSeverity.CRITICAL),
    ReasonCode.QUOTE_REJECTED: ("QUOTE_REJECTED", AlertSeverity.CRITICAL),
    # an executor was handed another vault's trade: a misconfiguration or an attack, never signed
    ReasonCode.VAULT_MISMATCH: ("VAULT_MISMATCH", AlertSeverity.CRITICAL),
}


class OwnedLedger:
    """The ledger as one executor (``owner``) sees it; :meth:`for_claim` gives the algorithm's port
    for one claim of one trade."""

    def __init__(self, ledger: AsyncLedger, owner: str, on_result: Callable[[bool], None] | None = None,
                 strategy: str | None = None, write_ahead_window: float = WRITE_AHEAD_WINDOW,
                 crowd: Crowd | None = None) -> None:
        self.ledger = ledger
        self.owner = owner
        self.strategy = strategy
        self._on_result = on_result or (lambda ok: None)
        # Only trades that are not following a sent attempt write one ahead or re-read their trade
        # (the algorithm's round starts with that read): they are the crowd of those ticks.
        self.write_ahead = write_ahead_batcher(self, window=write_ahead_window, crowd=crowd)
        # a fan-out's trades confirm and re-read at about the same time: one transaction per tick
        self.confirmations: LedgerTick[tx.Confirmation, Trade] = LedgerTick(
            self.run, tx.confirm_trades, window=write_ahead_window)
        self.reads: LedgerTick[int, Trade] = LedgerTick(self.run, tx.get_trades, window=write_ahead_window,
                                                        crowd=crowd)

    def for_claim(self, trade_id: int, fencing_token: int) -> ClaimedTradeLedger:
        return ClaimedTradeLedger(self, trade_id, fencing_token)

    async def run(self, body: Step[_R]) -> _R:
        """One ledger transaction, reporting whether the ledger answered."""
        try:
            result = await self.ledger.run(body)
        except LedgerUnavailableError:
            self._on_result(False)
            raise
        self._on_result(True)
        return result


_K = TypeVar("_K", bound=Hashable)


class LedgerTick(TickBatcher[_K, _R | XorjError]):
    """The ledger writes (or reads) of one kind that this executor's trades make within ``window``
    seconds of each other go to the ledger in one transaction (``batch_body``: each key's result,
    or the refusal of that key alone): one commit instead of one per trade. Each trade still learns
    its own result, once that commit has returned. When the batch's transaction fails on a database
    error other than a lost connection (a broken constraint, a deadlock between two batches), each
    key is written again alone, so only the key at fault gets the error. A lost connection fails
    every key of the batch: each trade resumes from what the ledger says, as after any lost write."""

    def __init__(self, run: Callable[[Step[dict[_K, _R | XorjError]]], Awaitable[dict[_K, _R | XorjError]]],
                 batch_body: Callable[[list[_K]], Step[dict[_K, _R | XorjError]]], *, window: float,
                 max_batch: int = LEDGER_BATCH, crowd: Crowd | None = None) -> None:
        super().__init__(window=window, crowd=crowd)
        self._run = run
        self._batch_body = batch_body
        self.max_batch = max_batch

    async def answer(self, keys: list[_K]) -> dict[_K, _R | XorjError]:
        # A transaction's statements run one after the other: a large tick is split into several
        # transactions that run side by side on the pool's connections.
        chunks = [keys[i:i + self.max_batch] for i in range(0, len(keys), self.max_batch)]
        answers: dict[_K, _R | XorjError] = {}
        for part in await asyncio.gather(*(self._answer(chunk) for chunk in chunks)):
            answers.update(part)
        return answers

    async def _answer(self, keys: list[_K]) -> dict[_K, _R | XorjError]:
        try:
            return await self._run(self._batch_body(keys))
        except LedgerUnavailableError:
            raise
        except LedgerError:
            if len(keys) == 1:
                raise
        alone = await asyncio.gather(*(self._run(self._batch_body([key])) for key in keys), return_exceptions=True)
        answers: dict[_K, _R | XorjError] = {}
        for key, result in zip(keys, alone, strict=True):
            if isinstance(result, XorjError):
                answers[key] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                answers[key] = result[key]
        return answers

    async def one(self, key: _K) -> _R:
        result = await self.read(key)
        if isinstance(result, XorjError):
            raise result
        return result


def write_ahead_batcher(owned: OwnedLedger, *, window: float,
                        crowd: Crowd | None = None) -> LedgerTick[tx.AttemptRecord, Attempt]:
    """The write-ahead records of trades signed in the same tick, in one transaction
    (:func:`xorj.ledger.transactions.record_attempts`); a trade sends only once its record's commit
    has returned. Two trades that signed byte-identical transactions (one signature) break the
    batch's constraint: each record is then made alone, and only the second is refused."""
    return LedgerTick(owned.run, tx.record_attempts, window=window, crowd=crowd)


class NoClaimPorts:
    """The ports of the executor's template submitter, which only :meth:`Submitter.with_ports` copies
    run: work on a trade always runs with the ports of its claim, so any call here is a bug."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{name}: no claim is bound; run the algorithm with the ports of a claim (for_claim)")


class ClaimedTradeLedger:
    """The algorithm's ledger port (:class:`xorj.executor.ports.TradeLedger`) for one claim of one
    trade: async, and every write fenced by the owner's lease AND the claim's fencing token."""

    def __init__(self, owned: OwnedLedger, trade_id: int, fencing_token: int) -> None:
        self.owned = owned
        self.trade_id = trade_id
        self.fencing_token = fencing_token

    def _check(self, trade_id: int) -> None:
        if trade_id != self.trade_id:  # a programming error: this port serves one trade only
            raise ValueError(f"trade_id: this ledger port serves trade {self.trade_id}'s claim, not trade {trade_id}")

    async def load(self, trade_id: int) -> Trade:
        """The trade as the ledger has it now. Refuses (LeaseLostError) once the trade is claimed again
        and still open: the work under this claim must stop before deciding anything from it."""
        self._check(trade_id)
        trade = await self.owned.reads.one(trade_id)
        if not trade.is_terminal and trade.fencing_token != self.fencing_token:
            raise LeaseLostError(
                f"load of trade {trade_id} refused for {self.owned.owner!r} (fencing token {self.fencing_token}): "
                f"the trade was claimed again since (current token {trade.fencing_token}); nothing was written")
        return trade

    async def record_attempt(self, trade_id: int, *, attempt_no: int, signature: str, raw_tx: bytes,
                             last_valid_block_height: int, slippage_bps: int, quote_out_amount: int | None,
                             share: DailyShare | None = None) -> None:
        self._check(trade_id)
        del attempt_no  # the ledger numbers attempts itself (the next in sequence, under the row lock)
        await self.owned.write_ahead.one(tx.AttemptRecord(
            trade_id, self.owned.owner, signature, bytes(raw_tx), last_valid_block_height, slippage_bps,
            quote_out_amount, self.fencing_token, share))

    async def resolve_attempt(self, trade_id: int, signature: str, outcome: AttemptOutcome,
                              reason: ReasonCode | None, detail: str | None, *,
                              send_failure: ReasonCode | None = None) -> None:
        self._check(trade_id)
        detail = redact_urls(detail) if detail else detail  # details reach status, Events and alerts
        await self.owned.run(tx.resolve_attempt(signature, self.owned.owner, outcome, reason, detail,
                                                send_failure=send_failure, fencing_token=self.fencing_token))

    async def confirm(self, trade_id: int, signature: str) -> None:
        self._check(trade_id)
        await self.owned.confirmations.one(tx.Confirmation(trade_id, self.owned.owner, signature,
                                                             self.fencing_token))

    async def fail(self, trade_id: int, reason: ReasonCode, detail: str) -> None:
        self._check(trade_id)
        detail = redact_urls(detail)  # error texts quote URLs, which may carry an API key
        alert = None
        if reason in FAILURE_ALERTS:
            kind, severity = FAILURE_ALERTS[reason]
            alert = NewAlert(kind, severity, f"trade {trade_id} FAILED {reason.value}: {detail}"[:1000],
                             strategy=self.owned.strategy, trade_id=trade_id)
        await self.owned.run(tx.fail_trade(trade_id, self.owned.owner, reason, detail,
                                           fencing_token=self.fencing_token, alert=alert))


class SharedPrices(TickBatcher[frozenset[str], dict[str, TokenPrice]]):
    """The prices the valuations of one tick need, in one request to the price source: a fan-out's
    trades value the same pair at the same moment. Every trade still gets a fresh price."""

    def __init__(self, prices: PriceSource, *, window: float = WRITE_AHEAD_WINDOW, crowd: Crowd | None = None) -> None:
        super().__init__(window=window, crowd=crowd)
        self.prices = prices

    async def answer(self, keys: list[frozenset[str]]) -> dict[frozenset[str], dict[str, TokenPrice]]:
        found = await self.prices.prices(sorted(set().union(*keys)))
        return {key: {mint: found[mint] for mint in key if mint in found} for key in keys}


class ChainValuer:
    """Values trades from the chain and a price source: the trade's notional is its amount (base
    units) at the input mint's price with the mint's decimals read from the chain; the vault's value is
    its native SOL plus its token accounts of the trade's mints and ``valued_mints``, at their prices.
    Nothing the CopyTrade states about value is used."""

    def __init__(self, rpc: SolanaRpc, prices: PriceSource, *, valued_mints: Iterable[str] = (),
                 cash_mints: Iterable[str] = DEFAULT_CASH_MINTS, sol_mint: str = NATIVE_SOL_MINT,
                 crowd: Crowd | None = None) -> None:
        self.rpc = rpc
        self.prices = prices
        self.valued_mints = tuple(valued_mints)
        self.cash_mints = frozenset(cash_mints)
        self.sol_mint = sol_mint
        self._mints: dict[str, MintInfo] = {}  # a mint's decimals never change: read each once
        self._prices = SharedPrices(prices, crowd=crowd)
        self._accounts = AccountReads(rpc, crowd=crowd)  # a fan-out's vaults are valued at the same moment

    async def _mint_infos(self, mints: Iterable[str]) -> dict[str, MintInfo]:
        missing = [m for m in set(mints) if m not in self._mints]
        if missing:
            self._mints.update(await read_mints(self.rpc, missing))
        return {m: self._mints[m] for m in set(mints)}

    async def value(self, trade: Trade) -> Valuation:
        token_mints = {trade.input_mint, trade.output_mint, *self.valued_mints}
        infos = await self._mint_infos(token_mints)
        holdings, prices = await asyncio.gather(
            read_vault(self._accounts, trade.vault, infos.values()),
            self._prices.read(frozenset(prices_needed(trade.input_mint, trade.output_mint, self.valued_mints,
                                                      self.sol_mint))))
        wrong = decimals_agree({m: i.decimals for m, i in infos.items()}, {m: p.decimals for m, p in prices.items()})
        if wrong:
            raise MalformedAnswerError(f"price: decimals of {', '.join(wrong)} differ from the mint on chain",
                                       method="price")

        def balance(mint: str) -> MintBalance:
            price = prices.get(mint)
            return MintBalance(mint, holdings.balances.get(mint, 0), infos[mint].decimals,
                               None if price is None else price.usd_price)

        sol = prices.get(self.sol_mint)
        return value_trade(amount=trade.amount, input_mint=balance(trade.input_mint),
                           output_mint=balance(trade.output_mint), vault_lamports=holdings.lamports,
                           sol_usd_price=None if sol is None else sol.usd_price,
                           holdings=[balance(m) for m in token_mints], cash_mints=self.cash_mints)


class LedgerRiskGate:
    """Risk limits before any send: kill switches (the executor's and the ledger's cluster-wide halt),
    breaker, notional, daily volume/count, position share, price impact of the quote.

    Notional, vault value and position come from ``valuer`` (the chain and the price source), never
    from the CopyTrade: a stated ``notional_usd`` that disagrees with the computed one beyond
    ``notional_tolerance`` is recorded (an alert, and the refusal's detail), and the computed one wins.

    What needs the ledger's count, the vault's daily limits, is left to the write-ahead transaction
    of the attempt (:class:`~xorj.domain.risk.DailyShare`, decided and counted by
    :func:`xorj.ledger.transactions.record_attempts` under the claim's fence): it reads them and the
    halt, serialised per vault, so executors checking trades of one vault at once cannot all take the
    last slot, and no attempt is recorded, so none is sent, after the halt committed."""

    def __init__(self, ledger: AsyncLedger, *, strategy: str, limits: RiskLimits, kill_switch: KillSwitch,
                 breaker: CircuitBreaker, valuer: TradeValuer,
                 notional_tolerance: Decimal = DEFAULT_NOTIONAL_TOLERANCE,
                 on_breaker: Callable[[BreakerStatus], None] | None = None,
                 on_halt: Callable[[bool], None] | None = None, crowd: Crowd | None = None) -> None:
        self.ledger = ledger
        self.strategy = strategy
        self.limits = limits
        self.kill_switch = kill_switch
        self.breaker = breaker
        self.valuer = valuer
        self.notional_tolerance = notional_tolerance
        self._on_breaker = on_breaker or (lambda status: None)
        self._on_halt = on_halt or (lambda halted: None)
        self._breaker_cache: tuple[float, BreakerStatus] | None = None
        self._breaker_read: asyncio.Future[BreakerStatus] | None = None
        # The assessments of one tick (a fan-out's trades are valued together) share one read of the halt.
        self._halts = HaltReader(ledger, window=WRITE_AHEAD_WINDOW, crowd=crowd)

    async def breaker_status(self) -> BreakerStatus:
        now_mono = time.monotonic()
        if self._breaker_cache is not None and now_mono - self._breaker_cache[0] < 1.0:
            return self._breaker_cache[1]
        # the checks waiting on an expired status (a fan-out's, all at once) share one read of it
        if self._breaker_read is None or self._breaker_read.done():
            self._breaker_read = asyncio.ensure_future(self._read_breaker(now_mono))
        return await asyncio.shield(self._breaker_read)

    async def _read_breaker(self, now_mono: float) -> BreakerStatus:
        now = datetime.now(UTC)
        since = now - self.breaker.window - self.breaker.open_for
        events = await self.ledger.run(tx.breaker_events(self.strategy, since, now))
        status = self.breaker.status(events, now)
        self._breaker_cache = (now_mono, status)
        self._on_breaker(status)
        return status

    async def assess(self, trade: Trade) -> RiskAssessment:
        """The half of the check that needs no quote (it runs while the trade is quoted): the halts,
        and the trade's valuation, read at the same time. A halt wins over whatever the valuation
        found, so a halted cluster refuses even when the price source is down. (The ledger's halt is
        read again, atomically, by the write-ahead transaction that counts the trade.)"""
        if self.kill_switch.global_halt:
            self._on_halt(True)
            return RiskAssessment(refusal=globally_halted("executor setting XORJ_GLOBAL_HALT"))
        halt, valued = await asyncio.gather(self._halts.read(None), self.valuer.value(trade), return_exceptions=True)
        if isinstance(halt, BaseException):
            raise halt  # nothing can be decided without the ledger
        self._on_halt(halt.halted)
        if halt.halted:
            return RiskAssessment(refusal=globally_halted(halt.reason))
        if isinstance(valued, ValuationError):
            return RiskAssessment(refusal=RiskDecision(
                False, RiskRule.MAX_TRADE_NOTIONAL,
                f"{RiskRule.MAX_TRADE_NOTIONAL.value}: {valued}; refusing rather than trading unchecked"))
        if isinstance(valued, BaseException):
            raise valued
        notional = valued.notional_usd
        if notional <= 0:  # an amount too small to be worth a cent's fraction still is not free
            return RiskAssessment(refusal=RiskDecision(
                False, RiskRule.MAX_TRADE_NOTIONAL,
                f"{RiskRule.MAX_TRADE_NOTIONAL.value}: the trade's computed notional is {notional} USD"))
        disagreement = notional_disagreement(trade.notional_usd, notional, self.notional_tolerance)
        if disagreement is not None and trade.risk_reserved_at is None:
            log.warning("stated notional disagrees with the computed one",
                        extra={"trade_id": trade.trade_id, "stated_usd": str(trade.notional_usd),
                               "computed_usd": str(notional)})
            await self.ledger.run(tx.raise_alert(
                "NOTIONAL_MISMATCH", AlertSeverity.WARNING,
                f"trade {trade.trade_id}: {disagreement}"[:1000], strategy=self.strategy, trade_id=trade.trade_id))
        return RiskAssessment(valuation=valued, disagreement=disagreement)

    async def check(self, trade: Trade, quote: Quote, assessment: RiskAssessment | None = None
                    ) -> RiskDecision | DailyShare:
        """A refusal of ``trade``, or its daily share, which the write-ahead record of the attempt decides
        and counts (``assessment``: what :meth:`assess` found for this attempt; assessed now when not
        given). Every rule is decided in the share, with the vault's usage; the ones that need none
        refuse here already, before anything is signed."""
        if assessment is None:
            assessment = await self.assess(trade)
        if assessment.refusal is not None:
            return assessment.refusal
        valuation, disagreement = assessment.valuation, assessment.disagreement
        assert valuation is not None, "an assessment without a refusal carries the valuation"
        notional = valuation.notional_usd
        breaker = await self.breaker_status()
        risk = TradeRisk(notional_usd=notional, vault_value_usd=valuation.vault_value_usd,
                         price_impact=Decimal(str(quote.model.price_impact_pct)),
                         output_position_usd=valuation.output_position_usd)

        def decide(usage: DailyUsage) -> RiskDecision:
            decision = check_trade(self.limits, risk, usage, kill_switch=self.kill_switch, breaker=breaker)
            if not decision.allowed and disagreement is not None:
                return replace(decision, message=f"{decision.message} ({disagreement})")
            return decision

        unused = decide(DailyUsage())  # a refusal that no usage can change needs no ledger
        return unused if not unused.allowed else DailyShare(notional, decide)


class HaltReader(TickBatcher[None, TradingHalt]):
    """The cluster-wide halt as the checks of one tick see it: one read for all of them. (The
    write-ahead transaction that counts the trade reads it again, atomically.)"""

    def __init__(self, ledger: AsyncLedger, *, window: float, crowd: Crowd | None = None) -> None:
        super().__init__(window=window, crowd=crowd)
        self.ledger = ledger

    async def answer(self, keys: list[None]) -> dict[None, TradingHalt]:
        halt = await self.ledger.run(tx.trading_halt())
        return {key: halt for key in keys}
