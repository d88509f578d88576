"""The exactly-once submission algorithm (docs/design.md invariant 1).

For one claimed trade, until it is CONFIRMED or FAILED:

1. If an attempt is PENDING in the ledger (a restart, a takeover, or our own last step), follow it
   from its STORED bytes: never rebuild it.
2. Otherwise decide the next attempt's slippage with the policy (first attempt: initial; after a
   slippage failure: raised by the step up to the cap; after expiry: the same; anything else, or
   max attempts reached: FAIL with the reason).
3. Quote (valuing the trade meanwhile), check the risk limits (a refusal FAILs with RISK_LIMIT and the rule; an approval counts
   the trade against its vault's daily limits, once per trade), get the swap transaction, check it
   (:class:`~xorj.chain.swap_guard.SwapGuard`: every instruction, validity from our RPC, a
   simulation) and sign it with the trade's vault key, through the signer (the keys in this process,
   or the signer boundary, which runs the same checks itself). A refused quote or transaction FAILs
   the trade with QUOTE_REJECTED / SWAP_REJECTED, unsigned; a trade whose vault the signer does not
   hold FAILs with VAULT_MISMATCH before any quote.
4. COMMIT the attempt (signature, raw bytes, lastValidBlockHeight, slippage) to the ledger. Only a
   committed attempt is ever sent: a crash before the commit leaves signed bytes nobody sent.
5. Send; rebroadcast the same bytes periodically. Poll getSignatureStatuses with
   searchTransactionHistory, reading the FINALIZED block (slot and height, one answer) BEFORE the
   status. (One poll serves every attempt in flight: :mod:`xorj.chain.status_batch`.)
6. Landed ok at the required depth -> attempt LANDED and trade CONFIRMED (one ledger write).
   Landed failed (at least confirmed) -> attempt FAILED_ON_CHAIN with its reason; go to 2.
   Unknown while finalized height > lastValidBlockHeight -> attempt EXPIRED; go to 2, but ONLY when
   the status answer's context slot is at or after that finalized block's slot
   (:func:`xorj.domain.expiry.expiry_verdict`). A "not found" from a node that is behind (a
   load-balanced RPC with a lagging backend) is no proof: the attempt may have landed in the blocks
   that node has not seen. Then ask the second RPC node when one is configured (its fresh answer
   decides: a status, or a "not found" as of a slot at or after the finalized one); otherwise, or
   when it is stale too, keep polling and rebroadcasting the same bytes; never re-sign.

A send that times out is not "not sent": its fate is only known from the chain (status or expiry).
A send answered "AlreadyProcessed" is not proof of anything final either (the node saw it land on
its fork): the status decides, under the same rule. Recovery (a PENDING attempt after a restart or a
takeover) follows the stored attempt through this same loop, so it is held to the same rule.
The ledger fences every write with our lease; losing it (LeaseLostError) stops work on the trade
at once. A ledger outage (LedgerUnavailableError) stops work too, before any send whose attempt
is not known to be committed; the caller resumes from the ledger when it is back.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj.chain.classify import TxFailure, classify_tx_failure, tx_failure_from_solders
from xorj.chain.errors import (
    ChainCallError,
    MalformedAnswerError,
    QuoteRejectedError,
    QuoteUnavailableError,
    RpcRequestError,
    SimulationFailedError,
    SwapRejectedError,
)
from xorj.chain.jupiter import Quote, SignedSwap
from xorj.chain.rpc import SignatureStatus, SolanaRpc
from xorj.chain.status_batch import StatusBatcher, StatusReading
from xorj.chain.ticks import Crowd, TickBatcher
from xorj.domain.expiry import ExpiryVerdict, expiry_verdict
from xorj.domain.risk import DailyShare, RiskDecision, RiskRefusedError
from xorj.domain.slippage import SlippageAction, SlippagePolicy, decide_retry
from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, Trade, TradeState
from xorj.errors import LedgerConstraintError
from xorj.executor.ports import NullObserver, Observer, RiskGate, Signer, SwapApi, TradeLedger
from xorj.executor.signing import EarlierSignatureLiveError, VaultNotHeldError

log = logging.getLogger(__name__)

# The steps a test hook may stop the process after (in the order they happen).
# How long the first quote of a tick waits for the same request from other trades (SharedQuotes)
QUOTE_TICK = 0.002

STEPS = ("quoted", "signed", "committed", "sent", "landed", "resolved", "confirmed", "failed")


@dataclass(frozen=True)
class ConfirmationPolicy:
    """How deep a landed swap must be before the trade is CONFIRMED. Larger trades wait for
    finality (a confirmed block can in principle still be rolled back; a finalized one cannot)."""

    default: str = "confirmed"
    finalized_from_usd: Decimal | None = None  # notional at or above which "finalized" is required
    finalized_from_amount: int | None = None  # same, in input base units (when no notional is known)

    def required(self, trade: Trade) -> str:
        # The notional the risk gate computed (from the chain and the price source) decides; a larger
        # stated one can only ask for more depth, a smaller one never for less.
        values = [v for v in (trade.risk_reserved_usd, trade.notional_usd) if v is not None]
        if self.finalized_from_usd is not None and values and max(values) >= self.finalized_from_usd:
            return "finalized"
        if self.finalized_from_amount is not None and trade.amount >= self.finalized_from_amount:
            return "finalized"
        return self.default


@dataclass(frozen=True)
class SubmissionSettings:
    poll_interval: float = 0.4  # between status polls
    rebroadcast_interval: float = 2.0  # between sends of the same bytes while unknown
    backoff_max: float = 5.0  # cap of the back-off after RPC errors while following an attempt
    prepare_retries: int = 3  # quote/swap tries before an attempt exists (safe: nothing was sent)
    prepare_rpc_patience: float = 30.0  # seconds of Solana RPC errors while preparing, before giving up
    # seconds to wait for the signer's earlier, unrecorded signature of this attempt to expire: a
    # blockhash lives about 150 blocks (60 to 90 s), so this outlasts it; past it the trade fails
    prepare_live_signature_patience: float = 180.0
    confirmation: ConfirmationPolicy = field(default_factory=ConfirmationPolicy)


@dataclass
class _Follow:
    """What following one attempt found."""

    outcome: AttemptOutcome
    reason: ReasonCode | None = None
    detail: str | None = None
    send_failure: ReasonCode | None = None  # EXPIRED and never accepted: the send failure seen most


@dataclass(frozen=True)
class _Judgement:
    """What one status reading proves about an attempt (:meth:`Submitter._judge`): a known status
    (acted on by depth), or, none known, the expiry verdict and the reading that proves it (the
    second node's answer slot when ``second_node``)."""

    reading: StatusReading
    status: SignatureStatus | None = None
    expiry: ExpiryVerdict | None = None
    second_node: bool = False


@dataclass
class _Sends:
    """The sends of one attempt's stored bytes while it is followed."""

    raw_tx: bytes
    programs: Sequence[str]
    tries: int = 0
    accepted: int = 0
    already_processed: int = 0  # sends answered AlreadyProcessed (the node saw it land on its fork)
    failures: dict[ReasonCode, int] = field(default_factory=dict)
    last_error: RpcRequestError | None = None

    def failed(self, reason: ReasonCode) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


# ChainCallError.method of the HTTP APIs that are not our Solana RPC (the swap and price APIs)
_OFF_CHAIN_APIS = frozenset({"quote", "swap", "price", "swap-api", ""})

StepHook = Callable[[str], None]


def next_poll_delay(now: float, interval: float) -> float:
    """Seconds from ``now`` to the next poll instant, a multiple of ``interval`` on the monotonic clock.
    Every trade an executor follows reads its status at the same instants, so one batched
    getSignatureStatuses serves them all whenever each was sent, and trades that land together are
    confirmed together (one ledger transaction) and free their slots together."""
    return interval - now % interval


def _no_hook(step: str) -> None:
    return None


def _drop(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` if it still runs; if it ended, take its outcome (an error it raised belongs to
    the attempt that stopped waiting for it, which is failing for its own reason)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def program_ids_of(raw_tx: bytes) -> tuple[str, ...]:
    """The program of each top-level instruction of signed bytes (for error classification)."""
    message = VersionedTransaction.from_bytes(raw_tx).message
    keys = list(message.account_keys)
    return tuple(str(keys[ix.program_id_index]) if ix.program_id_index < len(keys) else "?"
                 for ix in message.instructions)


@dataclass
class _Following:
    count: int = 0


@dataclass(frozen=True)
class _QuoteRequest:
    input_mint: str
    output_mint: str
    amount: int
    slippage_bps: int


class SharedQuotes(TickBatcher[_QuoteRequest, "Quote | Exception"]):
    """One quote for the trades of one tick that ask for the same swap: a lead swap fanned out to many
    vaults asks for the same pair, amount and slippage once per vault, and the quote does not depend on
    the vault (the swap transaction built from it does, and each vault's is checked on its own). The
    window is short next to a quote's life, so every trade still quotes afresh."""

    def __init__(self, swap_api: SwapApi, *, window: float = QUOTE_TICK, crowd: Crowd | None = None) -> None:
        super().__init__(window=window, crowd=crowd)
        self.swap_api = swap_api

    async def answer(self, keys: list[_QuoteRequest]) -> dict[_QuoteRequest, Quote | Exception]:
        # each request's failure is its own: another amount's refusal must not fail this one
        quotes = await asyncio.gather(*(self.swap_api.quote(input_mint=k.input_mint, output_mint=k.output_mint,
                                                            amount=k.amount, slippage_bps=k.slippage_bps)
                                        for k in keys), return_exceptions=True)
        answers: dict[_QuoteRequest, Quote | Exception] = {}
        for key, quote in zip(keys, quotes, strict=True):
            if isinstance(quote, BaseException) and not isinstance(quote, Exception):
                raise quote
            answers[key] = quote
        return answers

    async def quote(self, trade: Trade, slippage_bps: int) -> Quote:
        answer = await self.read(_QuoteRequest(trade.input_mint, trade.output_mint, trade.amount, slippage_bps))
        if isinstance(answer, Exception):
            raise answer
        return answer


class Submitter:
    """Runs the algorithm for trades of the vaults the signer holds. One instance serves many
    concurrent trades.

    A trade whose vault the signer does not hold is refused before any quote or signature
    (VAULT_MISMATCH): trades are admitted for the vault a strategy had at admission, and an executor
    holding other keys (a strategy whose vault changed before the CRD made it immutable, a
    mis-mounted Secret, a vault removed from the signer) must not sign them with another key. The
    check sits where a new attempt starts, so it also covers a trade whose earlier attempt, signed by
    its own vault, is still being settled: settling re-sends those stored bytes only.
    """

    def __init__(self, *, rpc: SolanaRpc, swap_api: SwapApi, signer: Signer, ledger: TradeLedger,
                 policy: SlippagePolicy, risk: RiskGate, settings: SubmissionSettings = SubmissionSettings(),
                 observer: Observer | None = None, hook: StepHook = _no_hook,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 confirm_rpc: SolanaRpc | None = None, crowd: Crowd | None = None) -> None:
        self.rpc = rpc
        self.swap_api = swap_api
        self.signer = signer
        self.ledger = ledger
        self.policy = policy
        self.risk = risk
        self.settings = settings
        self.observer = observer or NullObserver()
        self.hook = hook
        self._sleep = sleep
        self.statuses = StatusBatcher(rpc)
        self.quotes = SharedQuotes(swap_api, crowd=crowd)
        # a second RPC node asked when rpc's status answer is too old to prove expiry (optional)
        self.confirm_rpc = confirm_rpc
        self._following = _Following()  # shared by the copies of with_ports: one count per process

    @property
    def following(self) -> int:
        """How many trades are following a sent attempt (or settling a stored one) right now: the
        executor's trades that are not these are the ones that may still prepare an attempt."""
        return self._following.count

    def with_ports(self, *, ledger: TradeLedger) -> Submitter:
        """This submitter writing through another ledger port (the executor's port of one claim, which
        carries its fencing token); the RPC client, swap API, signer, risk gate, hook and status
        batcher stay shared."""
        clone = copy.copy(self)
        clone.ledger = ledger
        return clone

    # ---- the trade loop ----------------------------------------------------------------------

    async def run(self, trade_id: int, claimed: Trade | None = None) -> Trade:
        """Drive the trade to CONFIRMED or FAILED. Raises LeaseLostError / LedgerUnavailableError
        (stop; resume later from the ledger) and nothing else on the normal failure paths.
        ``claimed`` is the trade as the claim returned it (saves one read); later rounds re-read."""
        fresh_signature: str | None = None
        while True:
            if claimed is not None:
                trade, claimed = claimed, None
            else:
                trade = await self.ledger.load(trade_id)
            if trade.is_terminal:
                return trade
            pending = trade.pending_attempt
            if pending is not None:
                await self._settle(trade, pending, fresh=pending.signature == fresh_signature)
                fresh_signature = None
                continue
            last = trade.attempts[-1] if trade.attempts else None
            if last is not None and last.outcome is AttemptOutcome.LANDED:
                # a crash between resolving and confirming: the swap happened, confirm it
                await self.ledger.confirm(trade.trade_id, last.signature)
                self._finished(trade, TradeState.CONFIRMED, None)
                continue
            if last is None:
                slippage = self.policy.bounded_by(trade.max_slippage_bps).initial_bps
            else:
                decision = decide_retry(self.policy, trade)
                if decision.action is SlippageAction.GIVE_UP:
                    reason = decision.reason or ReasonCode.PROGRAM_ERROR
                    await self._fail(trade, reason, f"{decision.detail}; last attempt: {last.detail or '-'}")
                    continue
                assert decision.slippage_bps is not None
                slippage = decision.slippage_bps
            fresh_signature = await self._new_attempt(trade, slippage)

    async def _new_attempt(self, trade: Trade, slippage_bps: int) -> str | None:
        """Quote, check risk, build, sign, commit (with the daily-limit count). Returns the committed
        signature (None if the trade failed)."""
        attempt_no = len(trade.attempts) + 1
        signed: SignedSwap | None = None
        share: DailyShare | None = None
        error: ChainCallError | None = None
        tries, left, rpc_waited, live_waited = 0, self.settings.prepare_retries, 0.0, 0.0
        while left > 0:
            tries, left = tries + 1, left - 1
            try:
                vault = await self.signer.public_key(trade.vault)  # before any quote: a vault not held fails here
                # The trade is valued while it is quoted (the valuation does not need the quote) and
                # checked before its swap is built: a refused trade asks the swap API for nothing, so
                # an open breaker or a halt stops the calls, and an attack armed for one answer stays
                # for a trade that will be signed. Its daily-limit count is left to the write-ahead
                # record below: one ledger transaction before the send, not two.
                assessing = asyncio.ensure_future(self.risk.assess(trade))
                try:
                    quote = await self.quotes.quote(trade, slippage_bps)
                    self.hook("quoted")
                    self.observer.step(trade.trade_id, "quoted")
                    checked = await self.risk.check(trade, quote, await assessing)
                finally:
                    _drop(assessing)
                self.observer.step(trade.trade_id, "checked")
                if isinstance(checked, RiskDecision):
                    await self._fail(trade, ReasonCode.RISK_LIMIT, checked.message)
                    return None
                share = checked
                answer = await self.swap_api.swap_transaction(quote, vault)
                self.observer.step(trade.trade_id, "built")
                signed = await self.signer.sign_swap(trade, answer, quote)
                self.hook("signed")
                self.observer.step(trade.trade_id, "signed")
                break
            except VaultNotHeldError as exc:
                await self._fail(trade, ReasonCode.VAULT_MISMATCH,
                                 f"trade {trade.trade_id} is for vault {trade.vault}, but {exc}: refused before "
                                 f"any quote or signature")
                return None
            except (SwapRejectedError, QuoteRejectedError) as exc:
                # refused, never signed: the trade fails at once, and an alert is raised with it
                self.observer.swap_rejected(exc.reason, exc.rule)
                log.warning("swap refused", extra={"trade_id": trade.trade_id, "reason": exc.reason.value,
                                                   "rule": exc.rule, "detail": str(exc)[:300]})
                await self._fail(trade, exc.reason, f"attempt {attempt_no} refused, nothing signed: {exc}")
                return None
            except SimulationFailedError as exc:
                error = exc
                self.observer.rpc_error("simulateTransaction", exc.reason)
                if exc.reason not in (ReasonCode.SLIPPAGE_EXCEEDED, ReasonCode.BLOCKHASH_EXPIRED):
                    break  # the transaction would fail on chain for a lasting reason
                await self._sleep(min(self.settings.backoff_max, 0.25 * 2 ** tries))  # a new quote may pass
            except (QuoteUnavailableError, MalformedAnswerError) as exc:
                error = exc
                break  # the API said no (or answered nonsense): asking again the same way will not help
            except EarlierSignatureLiveError as exc:
                # Nothing new is signed until the earlier signature can no longer land; the chain
                # bounds that wait, so it spends no try and none of the RPC patience.
                error = exc
                delay = min(self.settings.backoff_max, 0.25 * 2 ** tries)
                if live_waited < self.settings.prepare_live_signature_patience:
                    left, live_waited = left + 1, live_waited + delay
                await self._sleep(delay)
            except ChainCallError as exc:
                error = exc
                self.observer.rpc_error(exc.method or "swap-api", exc.reason)
                delay = min(self.settings.backoff_max, 0.25 * 2 ** tries)
                if exc.method not in _OFF_CHAIN_APIS and rpc_waited < self.settings.prepare_rpc_patience:
                    # our own Solana RPC is away (valuing the trade, checking the swap): nothing is
                    # signed yet, so waiting for it is safe; the swap/price APIs keep their few tries
                    left, rpc_waited = left + 1, rpc_waited + delay
                await self._sleep(delay)
        if signed is None or share is None:
            assert error is not None
            await self._fail(trade, error.reason, f"attempt {attempt_no} could not be prepared: {error}")
            return None
        # The write-ahead: after this commit the bytes may be sent (and re-sent) by whoever owns the trade.
        try:
            await self.ledger.record_attempt(
                trade.trade_id, attempt_no=attempt_no, signature=str(signed.signature), raw_tx=signed.tx_bytes,
                last_valid_block_height=signed.last_valid_block_height, slippage_bps=slippage_bps,
                quote_out_amount=signed.quote.model.out_amount or None, share=share)
        except RiskRefusedError as exc:
            # the vault's daily limits (or the halt) refused it: the signed bytes are dropped, never sent
            await self._fail(trade, ReasonCode.RISK_LIMIT, exc.decision.message)
            return None
        except LedgerConstraintError as exc:
            if exc.constraint != "attempts_signature_unique":
                raise
            # Two trades with the same pair and amount, quoted in the same block, get byte-identical
            # swap transactions: one signature, one possible fill. The ledger refused the second;
            # wait for a newer blockhash (a new transaction) and prepare again. Nothing was sent.
            log.info("identical transaction already belongs to another attempt; preparing a new one",
                     extra={"trade_id": trade.trade_id, "signature": str(signed.signature)})
            await self._sleep(self.settings.poll_interval)
            return None
        self.hook("committed")
        self.observer.step(trade.trade_id, "committed")
        log.info("attempt committed", extra={"trade_id": trade.trade_id, "attempt_no": attempt_no,
                                             "signature": str(signed.signature), "slippage_bps": slippage_bps,
                                             "last_valid_block_height": signed.last_valid_block_height})
        return str(signed.signature)

    async def _settle(self, trade: Trade, attempt: Attempt, *, fresh: bool) -> None:
        self._following.count += 1
        try:
            await self._settle_following(trade, attempt, fresh=fresh)
        finally:
            self._following.count -= 1

    async def _settle_following(self, trade: Trade, attempt: Attempt, *, fresh: bool) -> None:
        started = time.monotonic()
        result = await self.follow(trade, attempt, fresh=fresh)
        self.observer.attempt_finished(result.outcome, result.reason, time.monotonic() - started)
        if result.outcome is AttemptOutcome.LANDED:
            self.hook("landed")
            await self.ledger.confirm(trade.trade_id, attempt.signature)
            self.hook("confirmed")
            self._finished(trade, TradeState.CONFIRMED, None)
            log.info("trade confirmed", extra={"trade_id": trade.trade_id, "signature": attempt.signature})
            return
        await self.ledger.resolve_attempt(trade.trade_id, attempt.signature, result.outcome, result.reason,
                                          result.detail, send_failure=result.send_failure)
        self.hook("resolved")
        log.info("attempt resolved", extra={"trade_id": trade.trade_id, "signature": attempt.signature,
                                            "outcome": result.outcome.value,
                                            "reason": result.reason.value if result.reason else None,
                                            "detail": result.detail})

    # ---- following one attempt ---------------------------------------------------------------

    async def follow(self, trade: Trade, attempt: Attempt, *, fresh: bool = False) -> _Follow:
        """Send/rebroadcast the stored bytes and watch the chain until the attempt's fate is known."""
        signature = Signature.from_string(attempt.signature)
        try:
            programs = program_ids_of(attempt.raw_tx)
        except Exception:  # noqa: BLE001 - stored bytes that do not parse cannot land either; let expiry decide
            programs = ()
        required = self.settings.confirmation.required(trade)
        sends = _Sends(attempt.raw_tx, programs)
        stale_answers = 0  # "not found" answers past expiry, too old to prove it
        next_send = 0.0  # monotonic time of the next (re)broadcast
        errors_in_a_row = 0

        if fresh:
            await self._send(trade, sends)
            next_send = time.monotonic() + self.settings.rebroadcast_interval
            await self._until_next_poll()  # bytes sent a moment ago have not landed yet: no read for them

        while True:
            try:
                reading = await self._read_status(signature, programs)  # finalized block read BEFORE the status
                errors_in_a_row = 0
            except ChainCallError as exc:
                errors_in_a_row += 1
                self.observer.rpc_error(exc.method or "rpc", exc.reason)
                await self._sleep(min(self.settings.backoff_max, self.settings.poll_interval * 2 ** errors_in_a_row))
                continue
            judged = await self._judge(attempt, reading, signature, programs)
            if judged.status is not None:
                decided = await self._decide_landed(signature, judged.status, required, programs)
                if decided is not None:
                    return decided
                await self._until_next_poll()
                continue
            if judged.expiry is ExpiryVerdict.EXPIRED:
                return self._expired(attempt, reading.finalized_height, sends.accepted, sends.failures,
                                     sends.last_error, reading=judged.reading,
                                     already_processed=sends.already_processed,
                                     stale_answers=stale_answers + judged.second_node, second_node=judged.second_node)
            if judged.expiry is ExpiryVerdict.STALE_STATUS:
                stale_answers += 1
                self.observer.rpc_error("getSignatureStatuses", ReasonCode.RPC_ERROR)
                if stale_answers == 1:
                    log.warning("status answer older than the finalized block proving expiry: not re-signing",
                                extra={"trade_id": trade.trade_id, "signature": attempt.signature,
                                       "status_context_slot": reading.status_context_slot,
                                       "finalized_slot": reading.finalized.slot,
                                       "finalized_height": reading.finalized.height,
                                       "last_valid_block_height": attempt.last_valid_block_height})
            if time.monotonic() >= next_send:
                await self._send(trade, sends)
                next_send = time.monotonic() + self.settings.rebroadcast_interval
            await self._until_next_poll()

    async def _until_next_poll(self) -> None:
        await self._sleep(next_poll_delay(time.monotonic(), self.settings.poll_interval))

    async def _read_status(self, signature: Signature, programs: Sequence[str]) -> StatusReading:
        """The batched poll's reading for ``signature``, a landed error classified by its programs."""
        reading = await self.statuses.read(signature)
        status = reading.status
        if status is not None and status.raw_err is not None:
            status = dataclasses.replace(status, failure=tx_failure_from_solders(status.raw_err, program_ids=programs))
            reading = dataclasses.replace(reading, status=status)
        return reading

    async def _judge(self, attempt: Attempt, reading: StatusReading, signature: Signature,
                     programs: Sequence[str]) -> _Judgement:
        """What one reading proves about the attempt: a status to act on, or (none known) whether the
        attempt is still live, provably expired, or past its window on an answer too old to prove it.
        A stale answer is put to the second RPC node when one is configured: a status it knows is
        acted on, and its fresh "not found" proves expiry."""
        if reading.status is not None:
            return _Judgement(reading, status=reading.status)
        verdict = expiry_verdict(last_valid_block_height=attempt.last_valid_block_height,
                                 finalized=reading.finalized, status_context_slot=reading.status_context_slot)
        if verdict is not ExpiryVerdict.STALE_STATUS or self.confirm_rpc is None:
            return _Judgement(reading, expiry=verdict)
        confirmed = await self._confirm_on_second_node(signature, programs)
        if confirmed is None:
            return _Judgement(reading, expiry=verdict)
        second_slot, status = confirmed
        if status is not None:
            return _Judgement(reading, status=status)
        second = expiry_verdict(last_valid_block_height=attempt.last_valid_block_height,
                                finalized=reading.finalized, status_context_slot=second_slot)
        if second is ExpiryVerdict.EXPIRED:
            return _Judgement(dataclasses.replace(reading, status_context_slot=second_slot),
                              expiry=ExpiryVerdict.EXPIRED, second_node=True)
        return _Judgement(reading, expiry=verdict)

    async def _send(self, trade: Trade, sends: _Sends) -> None:
        """(Re)broadcast the stored bytes once; the first send of this follow is reported as such."""
        first = sends.tries == 0
        if first:
            self.observer.first_send(trade)
        sends.tries += 1
        try:
            await self.rpc.send_raw(sends.raw_tx, program_ids=sends.programs)
            sends.accepted += 1
        except RpcRequestError as exc:
            if exc.tx_failure is not None and exc.tx_failure.kind == "AlreadyProcessed":
                # it landed before, on that node's fork: only the status (held to the expiry
                # rule's freshness) says whether it is on the finalized chain
                sends.accepted += 1
                sends.already_processed += 1
            else:
                sends.failed(exc.reason)
                sends.last_error = exc
                self.observer.rpc_error("sendTransaction", exc.reason)
        except ChainCallError as exc:
            # a timeout may hide a processed send: the status or expiry decides, never this error
            sends.failed(exc.reason)
            self.observer.rpc_error("sendTransaction", exc.reason)
        if first:
            self.hook("sent")

    async def _confirm_on_second_node(self, signature: Signature, programs: Sequence[str]
                                      ) -> tuple[int, SignatureStatus | None] | None:
        """Ask the second RPC node for the status: (its answer's context slot, the status), or None
        when it could not answer (then nothing is proven either way)."""
        assert self.confirm_rpc is not None
        try:
            answer = await self.confirm_rpc.signature_statuses([signature], program_ids=programs)
        except ChainCallError as exc:
            self.observer.rpc_error(exc.method or "getSignatureStatuses", exc.reason)
            return None
        status = answer.statuses[0]
        if status is not None and status.raw_err is not None:
            status = dataclasses.replace(status, failure=tx_failure_from_solders(status.raw_err, program_ids=programs))
        return answer.context_slot, status

    async def _decide_landed(self, signature: Signature, status: SignatureStatus, required: str,
                             programs: Sequence[str]) -> _Follow | None:
        if status.failure is None:
            if status.at_least(required):
                return _Follow(AttemptOutcome.LANDED)
            return None
        # A failed transaction is acted on once confirmed: a processed-only failure could still be
        # dropped with its fork, and the bytes land again (successfully) elsewhere.
        if not status.at_least("confirmed"):
            return None
        failure = status.failure
        try:
            logs = await self.rpc.transaction_logs(signature)
        except ChainCallError:
            logs = None
        if logs:
            failure = _with_logs(failure, logs, programs)
        reason = classify_tx_failure(failure)
        if reason is ReasonCode.BLOCKHASH_EXPIRED:  # a landed error is never an expiry; keep the code honest
            reason = ReasonCode.PROGRAM_ERROR
        return _Follow(AttemptOutcome.FAILED_ON_CHAIN, reason, f"landed failed: {failure.describe()}")

    @staticmethod
    def _expired(attempt: Attempt, height: int, accepted: int, send_failures: dict[ReasonCode, int],
                 last_send_error: RpcRequestError | None, *, reading: StatusReading | None = None,
                 already_processed: int = 0, stale_answers: int = 0, second_node: bool = False) -> _Follow:
        # When no send was accepted, the dominant send failure is recorded (send_failure), so a later
        # decision -- possibly by another executor after a takeover -- can tell "the RPC never took
        # it" (RPC_TIMEOUT / INSUFFICIENT_FUNDS / ...) from a plain expiry. The detail, for people,
        # says the same and ends with the proof: the finalized block and the slot the "not found"
        # answer was given as of.
        proof = ""
        if reading is not None:
            proof = (f"; finalized slot {reading.finalized.slot}, status answered as of slot "
                     f"{reading.status_context_slot}{' by the second RPC node' if second_node else ''}")
        if stale_answers:
            proof += f"; {stale_answers} older status answer(s) ignored"
        if already_processed:
            proof += f"; {already_processed} send(s) answered AlreadyProcessed"
        cause: ReasonCode | None = None
        if accepted == 0 and send_failures:
            cause = max(send_failures, key=lambda r: send_failures[r])
            if last_send_error is not None and last_send_error.reason is cause:
                why = str(last_send_error)[:200]
            else:
                why = f"{send_failures[cause]} send(s) failed"
            detail = (f"{cause.value}: never accepted ({why}); finalized height {height} > last valid "
                      f"{attempt.last_valid_block_height}{proof}")
        else:
            detail = (f"unseen after expiry: finalized height {height} > last valid "
                      f"{attempt.last_valid_block_height} ({accepted} send(s) accepted){proof}")
        return _Follow(AttemptOutcome.EXPIRED, ReasonCode.BLOCKHASH_EXPIRED, detail, send_failure=cause)

    async def _fail(self, trade: Trade, reason: ReasonCode, detail: str) -> None:
        await self.ledger.fail(trade.trade_id, reason, detail[:1000])
        self.hook("failed")
        self._finished(trade, TradeState.FAILED, reason)
        log.info("trade failed", extra={"trade_id": trade.trade_id, "reason": reason.value, "detail": detail[:300]})

    def _finished(self, trade: Trade, state: TradeState, reason: ReasonCode | None) -> None:
        self.observer.trade_finished(trade.trade_id, state, reason)


def _with_logs(failure: TxFailure, logs: Sequence[str], programs: Sequence[str]) -> TxFailure:
    from xorj.chain.classify import tx_failure_from_json

    if failure.kind != "InstructionError" or failure.instruction_index is None:
        return failure
    inner = {"Custom": failure.custom_code} if failure.custom_code is not None else (failure.instruction_error or "Unknown")
    return tx_failure_from_json({"InstructionError": [failure.instruction_index, inner]}, program_ids=programs,
                                logs=logs)
