"""A wallet's transactions from a Solana JSON-RPC node, judged swap or not: the one interface the
backfill, a pool's rescoring and the watcher's polling source read history through.

:meth:`ChainHistory.history` pages ``getSignaturesForAddress`` newest first (``before`` the last entry of
the previous page, ``until`` the caller's cursor, 1000 a page) until a short page, then reads each
transaction with ``getTransaction`` (base64, ``maxSupportedTransactionVersion: 0``: the signatures are
verified against the message, see :meth:`xorj.chain.rpc.SolanaRpc.transaction_with_meta`). A transaction
the listing already marks failed is recorded FAILED without being fetched. The answer is checked, not
trusted: a listed transaction the node then does not have, or an answer for another signature or slot,
fails the call with MALFORMED_RESPONSE rather than leaving a hole under the cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from solders.pubkey import Pubkey

from xorj.chain.errors import MalformedAnswerError
from xorj.chain.rpc import LandedAnswer
from xorj.domain.reconciliation import ChainSignature
from xorj.domain.trader_history import ParsedSwap, SwapKind, landed_from_rpc_json, parse_swap
from xorj.errors import InvalidInputError

PAGE_LIMIT = 1000  # getSignaturesForAddress's maximum


class HistoryRpc(Protocol):
    """What :class:`ChainHistory` uses of :class:`xorj.chain.rpc.SolanaRpc`."""

    async def signatures_for_address(self, address: Pubkey, *, before: str | None = None, until: str | None = None,
                                     limit: int = 1000, commitment: str = "confirmed",
                                     timeout: float | None = None) -> list[ChainSignature]: ...

    async def transaction_with_meta(self, signature: str, commitment: str = "confirmed", *,
                                    timeout: float | None = None) -> LandedAnswer | None: ...


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transaction of the wallet, judged; ``slot_index`` orders the wallet's transactions within
    a slot (0 = first executed)."""

    swap: ParsedSwap
    slot_index: int


@dataclass(frozen=True, slots=True)
class History:
    """What is new since the cursor, oldest first, and the cursor to store once it is recorded
    (None: nothing new; keep the old one)."""

    wallet: str
    entries: list[HistoryEntry]
    newest_signature: str | None
    newest_slot: int | None


def rpc_json_of(answer: LandedAnswer, signature: str) -> dict[str, Any]:
    """The ``json``-encoding shape of a base64 ``getTransaction`` answer, for
    :func:`~xorj.domain.trader_history.landed_from_rpc_json` (one parser for both encodings)."""
    message = answer.transaction.message
    return {
        "slot": answer.slot,
        "blockTime": answer.block_time,
        "meta": answer.meta,
        "transaction": {
            "signatures": [signature],
            "message": {"accountKeys": [str(k) for k in message.account_keys],
                        "header": {"numRequiredSignatures": message.header.num_required_signatures}},
        },
    }


class ChainHistory:
    def __init__(self, rpc: HistoryRpc, *, commitment: str = "confirmed", page_limit: int = PAGE_LIMIT,
                 concurrency: int = 8, timeout: float | None = None) -> None:
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit: must be 1..{PAGE_LIMIT}, got {page_limit}")
        if concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {concurrency}")
        self.rpc = rpc
        self.commitment = commitment
        self.page_limit = page_limit
        self.concurrency = concurrency
        self.timeout = timeout

    async def signatures_since(self, wallet: str, until: str | None,
                               progress: Callable[[str], None] | None = None) -> list[ChainSignature]:
        """Every signature of ``wallet`` newer than ``until`` (all of them when None), oldest first."""
        address = Pubkey.from_string(wallet)
        newest_first: list[ChainSignature] = []
        before: str | None = None
        while True:
            page = await self.rpc.signatures_for_address(address, before=before, until=until, limit=self.page_limit,
                                                         commitment=self.commitment, timeout=self.timeout)
            if newest_first and page and page[0].slot > newest_first[-1].slot:
                raise MalformedAnswerError(f"getSignaturesForAddress: page after {before} starts at slot "
                                           f"{page[0].slot}, newer than the previous page's last", method=
                                           "getSignaturesForAddress")
            newest_first.extend(page)
            if progress is not None:
                progress(f"{wallet}: {len(newest_first)} signatures listed")
            if len(page) < self.page_limit:
                break
            before = page[-1].signature
        if len({s.signature for s in newest_first}) != len(newest_first):
            raise MalformedAnswerError("getSignaturesForAddress: a signature listed twice across pages",
                                       method="getSignaturesForAddress")
        return list(reversed(newest_first))

    async def judge(self, wallet: str, listed: ChainSignature) -> ParsedSwap:
        """Read and judge one listed transaction of ``wallet``."""
        if listed.failed:
            return ParsedSwap(wallet=wallet, signature=listed.signature, slot=listed.slot,
                              block_time=listed.block_time, kind=SwapKind.FAILED,
                              reason=f"transaction failed: {listed.error or 'error'}"[:300])
        answer = await self.rpc.transaction_with_meta(listed.signature, self.commitment, timeout=self.timeout)
        if answer is None:
            raise MalformedAnswerError(f"getTransaction: {listed.signature} was listed for {wallet} but the node "
                                       "does not have it", method="getTransaction")
        if answer.slot != listed.slot:
            raise MalformedAnswerError(f"getTransaction: {listed.signature} is in slot {answer.slot}, listed in "
                                       f"slot {listed.slot}", method="getTransaction")
        try:
            landed = landed_from_rpc_json(rpc_json_of(answer, listed.signature))
        except InvalidInputError as exc:
            raise MalformedAnswerError(f"getTransaction: {exc}", method="getTransaction") from None
        return parse_swap(landed, wallet)

    async def history(self, wallet: str, since_cursor: str | None, *,
                      progress: Callable[[str], None] | None = None) -> History:
        """What ``wallet`` did on chain after ``since_cursor`` (a signature; None: its whole history)."""
        listed = await self.signatures_since(wallet, since_cursor, progress)
        limit = asyncio.Semaphore(self.concurrency)
        done = 0

        async def one(entry: ChainSignature) -> ParsedSwap:
            nonlocal done
            async with limit:
                swap = await self.judge(wallet, entry)
            done += 1
            if progress is not None and (done % 100 == 0 or done == len(listed)):
                progress(f"{wallet}: {done}/{len(listed)} transactions read")
            return swap

        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the reads still in flight
                tasks = [group.create_task(one(entry)) for entry in listed]
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None  # the first failure, with its reason code
        swaps = [task.result() for task in tasks]
        entries: list[HistoryEntry] = []
        per_slot: dict[int, int] = {}
        for swap in swaps:
            index = per_slot.get(swap.slot, 0)
            per_slot[swap.slot] = index + 1
            entries.append(HistoryEntry(swap, index))
        newest = listed[-1] if listed else None
        return History(wallet=wallet, entries=entries, newest_signature=newest.signature if newest else None,
                       newest_slot=newest.slot if newest else None)
