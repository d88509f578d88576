"""The gate between the swap API's answer and the vault's signature (the I/O around :mod:`swap_check`).

For one swap answer, in this order, and only then signing the vault's slot:

1. decode the transaction and check every instruction against the trade and its quote
   (:func:`~xorj.chain.swap_check.check_swap_message`); verify the co-signers' signatures;
2. validity from OUR RPC, never from the API: the message's own blockhash must be valid at the RPC
   (``isBlockhashValid``), and the RPC's latest blockhash, read right after, bounds its
   ``lastValidBlockHeight`` from above (:class:`ValidityReader`: the builds of one tick share the
   latest blockhash, read after every one of their validity answers, and one check per blockhash; a
   valid answer is reused for about a slot by builds carrying the same blockhash). That bound is what
   the ledger records and what expiry is
   decided on; an API answer whose ``lastValidBlockHeight`` is outside what the RPC allows is refused.
   The message is NOT re-stamped with our blockhash: pools pre-sign their leg (the local market does),
   and a new blockhash would void their signatures;
3. simulate the unsigned transaction (no signature check, its own blockhash) with the vault's
   accounts and every writable account of the message, read the same accounts right before and
   right after, and judge the difference (:func:`~xorj.chain.swap_check.check_simulation`). If the
   accounts moved between the two reads (another trade of this vault landed), simulate again.

A refusal raises :class:`SwapRejectedError`; a failed simulation raises
:class:`SimulationFailedError` with the failure's own reason (slippage stays slippage).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from solders.hash import Hash
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj.chain.account_batch import AccountReads
from xorj.chain.classify import (
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    classify_tx_failure,
    tx_failure_from_solders,
)
from xorj.chain.errors import (
    ChainCallError,
    MalformedAnswerError,
    SimulationFailedError,
    SwapRejectedError,
)
from xorj.chain.jupiter import Quote, SignedSwap, SwapResponse
from xorj.chain.keys import VaultKey
from xorj.chain.rpc import AccountInfo, LatestBlockhash, SolanaRpc
from xorj.chain.swap_check import (
    NATIVE_MINT,
    AccountState,
    MessageFacts,
    Simulation,
    SwapIntent,
    SwapLimits,
    associated_token_address,
    check_simulation,
    check_swap_message,
)
from xorj.chain.ticks import Crowd, TickBatcher
from xorj.domain.trades import ReasonCode

log = logging.getLogger(__name__)

MAX_PROCESSING_AGE = 150  # blocks a blockhash stays valid (solana-sdk MAX_PROCESSING_AGE)
MAX_WATCHED_ACCOUNTS = 100  # getMultipleAccounts' limit
_TOKEN_PROGRAMS = (Pubkey.from_string(TOKEN_PROGRAM_ID), Pubkey.from_string(TOKEN_2022_PROGRAM_ID))
_DEFAULT_SIGNATURE = Signature.default()


def decode_swap_transaction(answer: SwapResponse) -> VersionedTransaction:
    try:
        raw = base64.b64decode(answer.swap_transaction, validate=True)
        tx = VersionedTransaction.from_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise MalformedAnswerError(f"swap: swapTransaction is not a base64 VersionedTransaction "
                                   f"({type(exc).__name__})", method="swap") from None
    except Exception as exc:  # noqa: BLE001 - solders raises its own parse error types
        raise MalformedAnswerError(f"swap: swapTransaction does not decode ({type(exc).__name__})",
                                   method="swap") from None
    if len(tx.signatures) != tx.message.header.num_required_signatures:
        raise MalformedAnswerError("swap: signature count does not match the message header", method="swap")
    return tx


def intent_of(quote: Quote, vault: Pubkey, input_mint: str, output_mint: str, amount: int) -> SwapIntent:
    model = quote.model
    input_fee = sum(step.swap_info.fee_amount or 0 for step in model.route_plan
                    if step.swap_info.fee_mint == input_mint and step.swap_info.input_mint == input_mint)
    return SwapIntent(vault=vault, input_mint=Pubkey.from_string(input_mint),
                      output_mint=Pubkey.from_string(output_mint), amount=amount, quoted_out=model.out_amount,
                      min_out=model.other_amount_threshold, slippage_bps=model.slippage_bps, input_fee=input_fee)


@dataclass(frozen=True)
class Validity:
    valid: bool  # the blockhash is valid at our RPC
    latest: LatestBlockhash | None  # read after that answer (None when no blockhash of the tick was valid)


class ValidityReader(TickBatcher[Hash, Validity]):
    """The validity reads of every build in the process, in ticks (as
    :class:`~xorj.chain.status_batch.StatusBatcher` does for statuses): the first build of a tick waits
    ``window`` for others, then each distinct blockhash of the tick is checked once
    (``isBlockhashValid``) and ONE ``getLatestBlockhash`` is read after all those answers. Each build
    gets what it would have read alone: its blockhash's validity, and a latest blockhash read after
    that validity answer (so the bound holds). Concurrent builds within a slot mostly carry the same
    blockhash: two calls per tick instead of two per build.

    A VALID answer is reused for ``reuse_for`` seconds (about a slot), by builds of later ticks that
    carry the same blockhash: the swap API stamps the builds of one slot with one blockhash, so most
    builds then skip both calls and the window. The reused answer still bounds the message: its latest
    blockhash was read after our RPC knew the message's, and a blockhash's last valid height never
    changes. What it no longer proves is that the blockhash is still valid NOW; it was, a slot ago,
    150 blocks before it expires, and the simulation that follows runs against the chain (an expired
    blockhash fails it with BLOCKHASH_EXPIRED). An invalid answer is never reused: our RPC may merely be
    behind the API's, and catch up in the next read."""

    def __init__(self, rpc: SolanaRpc, *, window: float = 0.002, reuse_for: float = 0.4,
                 clock: Callable[[], float] = time.monotonic, crowd: Crowd | None = None) -> None:
        super().__init__(window=window, crowd=crowd)
        self.rpc = rpc
        self.reuse_for = reuse_for
        self._clock = clock
        self._valid: dict[Hash, tuple[float, Validity]] = {}  # blockhash -> (answered at, answer)

    async def read(self, key: Hash) -> Validity:
        known = self._valid.get(key)
        if known is not None and self._clock() - known[0] < self.reuse_for:
            return known[1]
        return await super().read(key)

    async def answer(self, keys: list[Hash]) -> dict[Hash, Validity]:
        answers = await asyncio.gather(*(self.rpc.is_blockhash_valid(h, "processed") for h in keys))
        latest = await self.rpc.latest_blockhash("processed") if any(answers) else None
        found = {h: Validity(valid, latest if valid else None) for h, valid in zip(keys, answers)}
        now = self._clock()
        # only a slot's worth of blockhashes is ever reusable: forget the older ones as new ones come
        self._valid = {h: known for h, known in self._valid.items() if now - known[0] < self.reuse_for}
        self._valid.update((h, (now, v)) for h, v in found.items() if v.valid)
        return found


def _state(info: AccountInfo | None) -> AccountState | None:
    return None if info is None else AccountState(info.lamports, info.owner, info.data)


class SwapGuard:
    """Checks a swap answer against the trade, simulates it, and only then signs it. ``crowd``: how
    many checks could be under way in this process at most (see :data:`xorj.chain.ticks.Crowd`)."""

    def __init__(self, rpc: SolanaRpc, limits: SwapLimits = SwapLimits(), *, simulation_tries: int = 3,
                 crowd: Crowd | None = None) -> None:
        limits.validate()
        self.rpc = rpc
        self.limits = limits
        self.simulation_tries = simulation_tries
        self.validity = ValidityReader(rpc, crowd=crowd)
        # the checks of one tick (a fan-out's vaults) read their accounts in shared calls
        self.account_reads = AccountReads(rpc, crowd=crowd)

    async def sign(self, answer: SwapResponse, quote: Quote, key: VaultKey, *, input_mint: str, output_mint: str,
                   amount: int) -> SignedSwap:
        tx = decode_swap_transaction(answer)
        intent = intent_of(quote, key.pubkey, input_mint, output_mint, amount)
        facts = check_swap_message(tx.message, intent, self.limits)
        message_bytes = to_bytes_versioned(tx.message)
        signers = list(tx.message.account_keys)[: tx.message.header.num_required_signatures]
        for signer, signature in zip(signers[1:], list(tx.signatures)[1:]):
            if signature == _DEFAULT_SIGNATURE or not signature.verify(signer, message_bytes):
                raise SwapRejectedError("cosigner-signature", f"co-signer {signer} did not sign this message")
        last_valid = await self._validity(tx, answer.last_valid_block_height)
        await self._simulate(tx, facts, intent)
        signatures = list(tx.signatures)
        signatures[0] = key.sign_message(message_bytes)  # the fee payer is the vault (checked)
        signed = VersionedTransaction.populate(tx.message, signatures)
        keys = list(tx.message.account_keys)
        programs = tuple(str(keys[ix.program_id_index]) for ix in tx.message.instructions)
        return SignedSwap(tx_bytes=bytes(signed), signature=signed.signatures[0], last_valid_block_height=last_valid,
                          program_ids=programs, quote=quote)

    async def _validity(self, tx: VersionedTransaction, claimed: int) -> int:
        """An upper bound of the message's lastValidBlockHeight, from our RPC."""
        blockhash = tx.message.recent_blockhash
        validity = await self.validity.read(blockhash)
        if not validity.valid or validity.latest is None:
            # stale, unknown, or our RPC is behind the API's: nothing signed; a new quote may do
            raise ChainCallError(f"swap: blockhash {blockhash} is not valid at our RPC", method="isBlockhashValid",
                                 reason=ReasonCode.BLOCKHASH_EXPIRED)
        # Read AFTER the validity check: the RPC knew the message's blockhash, so its latest is at
        # least as new, and its lastValidBlockHeight is at least the message's.
        upper = validity.latest.last_valid_block_height
        lower = upper - MAX_PROCESSING_AGE  # the message's blockhash is still valid at this height
        if not lower <= claimed <= upper:
            raise SwapRejectedError("validity", f"the API's lastValidBlockHeight {claimed} is outside what our RPC "
                                    f"allows for a valid blockhash ({lower}..{upper})")
        return upper

    def _watched(self, facts: MessageFacts, intent: SwapIntent) -> list[Pubkey]:
        mints = {intent.input_mint, intent.output_mint}
        if NATIVE_MINT in mints or facts.wrap_lamports or facts.unwraps:
            mints.add(NATIVE_MINT)
        watched: list[Pubkey] = [intent.vault]
        for mint in sorted(mints, key=str):
            for program in _TOKEN_PROGRAMS:
                watched.append(associated_token_address(intent.vault, mint, program))
        for key in facts.writable:
            if key not in watched:
                watched.append(key)
        if len(watched) > MAX_WATCHED_ACCOUNTS:
            raise SwapRejectedError("too-many-accounts", f"{len(watched)} accounts to watch, more than "
                                    f"{MAX_WATCHED_ACCOUNTS}")
        return watched

    async def _simulate(self, tx: VersionedTransaction, facts: MessageFacts, intent: SwapIntent) -> None:
        watched = self._watched(facts, intent)
        keys = list(tx.message.account_keys)
        programs = [str(keys[ix.program_id_index]) for ix in tx.message.instructions]
        for _ in range(self.simulation_tries):
            before = await self.account_reads.accounts(watched, "processed")
            answer = await self.rpc.simulate(tx, watched, "processed")
            if answer.err is not None:
                failure = tx_failure_from_solders(answer.err, program_ids=programs, logs=answer.logs)
                reason = classify_tx_failure(failure)
                raise SimulationFailedError(f"simulation of the swap failed: {failure.describe()}", reason=reason)
            if answer.accounts is None:
                raise MalformedAnswerError("simulateTransaction returned no accounts; the swap cannot be checked",
                                           method="simulateTransaction")
            again = await self.account_reads.accounts(watched, "processed")
            if again != before:
                continue  # the vault's accounts moved under the simulation: judge a quiet one
            check_simulation(facts, intent, Simulation(
                before={k: _state(v) for k, v in zip(watched, before)},
                after={k: _state(v) for k, v in zip(watched, answer.accounts)},
                units_consumed=answer.units_consumed, logs=tuple(answer.logs)))
            return
        raise ChainCallError(f"swap: the vault's accounts kept changing during {self.simulation_tries} simulations",
                             method="simulateTransaction", reason=ReasonCode.RPC_ERROR)
