"""The ports of the executor's service layer: what the submission algorithm
(:mod:`xorj.executor.submission`) needs from the world, as protocols. The implementations are
adapters: the ledger and the risk gate in :mod:`xorj.executor.adapters`, the swap API in
:mod:`xorj.chain.jupiter`, the signer in :mod:`xorj.executor.signing`, the metrics in :mod:`xorj.executor.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from solders.pubkey import Pubkey

from xorj.chain.jupiter import Quote, SignedSwap, SwapResponse
from xorj.domain.risk import DailyShare, RiskDecision
from xorj.domain.trades import AttemptOutcome, ReasonCode, Trade, TradeState
from xorj.domain.valuation import Valuation


class TradeLedger(Protocol):
    """The ledger operations the algorithm needs, fenced by the executor's lease (async)."""

    async def load(self, trade_id: int) -> Trade: ...

    async def record_attempt(self, trade_id: int, *, attempt_no: int, signature: str, raw_tx: bytes,
                             last_valid_block_height: int, slippage_bps: int,
                             quote_out_amount: int | None, share: DailyShare | None = None) -> None:
        """The write-ahead record; with ``share``, the trade's daily-limit check decided and counted in
        the same transaction (raises :class:`~xorj.domain.risk.RiskRefusedError`, recording nothing,
        when it refuses)."""

    async def resolve_attempt(self, trade_id: int, signature: str, outcome: AttemptOutcome,
                              reason: ReasonCode | None, detail: str | None, *,
                              send_failure: ReasonCode | None = None) -> None: ...

    async def confirm(self, trade_id: int, signature: str) -> None: ...

    async def fail(self, trade_id: int, reason: ReasonCode, detail: str) -> None: ...


@dataclass(frozen=True)
class RiskAssessment:
    """What the risk check of a trade finds before its quote is known: a refusal already (a halt, a
    trade that cannot be valued), or the trade's valuation (and how a stated notional disagrees with it)."""

    refusal: RiskDecision | None = None
    valuation: Valuation | None = None
    disagreement: str | None = None


class RiskGate(Protocol):
    """Refuses the next attempt of a trade, or leaves its vault's daily limits to the ledger: the
    :class:`~xorj.domain.risk.DailyShare` it returns is decided and counted atomically with the
    attempt's write-ahead record (concurrent checks of one vault must not all take the last slot), and
    only once: recording the same trade's next attempt (a retry, a takeover) counts nothing new.

    The check comes in two halves so that the first runs while the trade is quoted: :meth:`assess`
    needs only the trade (the halts, the valuation), :meth:`check` adds the quote. A trade is checked
    before its swap is built: a refused one asks the swap API for nothing.
    A :class:`~xorj.domain.risk.RiskDecision` from :meth:`check` is a refusal."""

    async def assess(self, trade: Trade) -> RiskAssessment: ...

    async def check(self, trade: Trade, quote: Quote, assessment: RiskAssessment | None = None
                    ) -> RiskDecision | DailyShare: ...


class SwapApi(Protocol):
    """Quotes a swap and builds its unsigned transaction (raises ChainCallError with a reason code)."""

    async def quote(self, *, input_mint: str, output_mint: str, amount: int, slippage_bps: int) -> Quote: ...

    async def swap_transaction(self, quote: Quote, vault: Pubkey) -> SwapResponse: ...


class Signer(Protocol):
    """Holds the vault keys (in this process, or behind the signer boundary) and signs a trade's swap
    transaction only once it passed the swap guard's checks against that trade. Both raise
    :class:`~xorj.executor.signing.VaultNotHeldError` when the trade's vault is not held, and the swap
    guard's errors (SwapRejectedError, QuoteRejectedError, SimulationFailedError, ChainCallError)."""

    async def public_key(self, vault: str) -> Pubkey: ...

    async def sign_swap(self, trade: Trade, answer: SwapResponse, quote: Quote) -> SignedSwap: ...

    def describe(self) -> str: ...

    async def close(self) -> None: ...


class TradeValuer(Protocol):
    """What a trade and its vault are worth now (raises ValuationError when it cannot say, and
    ChainCallError with a reason code when the chain or the price source fails)."""

    async def value(self, trade: Trade) -> Valuation: ...


class Observer(Protocol):
    """What the algorithm reports (metrics, structured logs). All methods must be cheap and safe."""

    def step(self, trade_id: int, step: str) -> None: ...

    def first_send(self, trade: Trade) -> None: ...

    def attempt_finished(self, outcome: AttemptOutcome, reason: ReasonCode | None, seconds: float) -> None: ...

    def rpc_error(self, method: str, reason: ReasonCode) -> None: ...

    def swap_rejected(self, reason: ReasonCode, rule: str) -> None: ...

    def trade_finished(self, trade_id: int, state: TradeState, reason: ReasonCode | None) -> None: ...


class NullObserver:
    def step(self, trade_id: int, step: str) -> None: ...

    def first_send(self, trade: Trade) -> None: ...

    def attempt_finished(self, outcome: AttemptOutcome, reason: ReasonCode | None, seconds: float) -> None: ...

    def rpc_error(self, method: str, reason: ReasonCode) -> None: ...

    def swap_rejected(self, reason: ReasonCode, rule: str) -> None: ...

    def trade_finished(self, trade_id: int, state: TradeState, reason: ReasonCode | None) -> None: ...
