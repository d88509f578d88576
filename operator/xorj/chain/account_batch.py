"""Coalesced account reads: the getMultipleAccounts reads that many trades make at about the same time
(a fan-out's swap checks and valuations, one vault each) share a few calls of up to 100 accounts.

Each caller's accounts are answered from ONE call, never split across two: a caller that compares its
accounts (the swap guard's reads around a simulation) or sums them (a vault's holdings) sees them as
of one slot, as if it had asked alone. A read is made after the caller asked (at the end of the tick),
so a read the caller makes after some event (a simulation's answer) is still after that event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from solders.pubkey import Pubkey

from xorj.chain.rpc import AccountInfo
from xorj.chain.ticks import Crowd, TickBatcher

MAX_ACCOUNTS_PER_CALL = 100  # getMultipleAccounts' limit


class AccountSource(Protocol):
    """What reads accounts: :class:`xorj.chain.rpc.SolanaRpc`, or an :class:`AccountReads` over it."""

    async def accounts(self, pubkeys: Sequence[Pubkey], commitment: str = "processed", *,
                       timeout: float | None = None) -> list[AccountInfo | None]: ...


@dataclass(frozen=True)
class _Read:
    pubkeys: tuple[Pubkey, ...]
    commitment: str


_Answer = list[AccountInfo | None] | Exception


class AccountReads(TickBatcher[_Read, _Answer]):
    """The account reads of one tick, packed into as few getMultipleAccounts calls as the limit allows
    (each caller's accounts whole in one call). A failed call fails only the callers it served."""

    def __init__(self, rpc: AccountSource, *, window: float = 0.002, crowd: Crowd | None = None) -> None:
        super().__init__(window=window, crowd=crowd)
        self.rpc = rpc

    async def accounts(self, pubkeys: Sequence[Pubkey], commitment: str = "processed", *,
                       timeout: float | None = None) -> list[AccountInfo | None]:
        if timeout is not None or len(pubkeys) > MAX_ACCOUNTS_PER_CALL:
            return await self.rpc.accounts(pubkeys, commitment, timeout=timeout)
        answer = await self.read(_Read(tuple(pubkeys), commitment))
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def answer(self, keys: list[_Read]) -> dict[_Read, _Answer]:
        calls: list[list[_Read]] = []
        for commitment in dict.fromkeys(k.commitment for k in keys):
            packed: list[_Read] = []
            unique: set[Pubkey] = set()
            for read in (k for k in keys if k.commitment == commitment):
                more = unique | set(read.pubkeys)
                if packed and len(more) > MAX_ACCOUNTS_PER_CALL:
                    calls.append(packed)
                    packed, more = [], set(read.pubkeys)
                packed.append(read)
                unique = more
            calls.append(packed)
        answers: dict[_Read, _Answer] = {}
        results = await asyncio.gather(*(self._call(reads) for reads in calls), return_exceptions=True)
        for reads, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            answers.update(result if isinstance(result, dict) else dict.fromkeys(reads, result))
        return answers

    async def _call(self, reads: list[_Read]) -> dict[_Read, _Answer]:
        if len(reads) == 1:  # alone in its call: asked exactly as the caller asked
            return {reads[0]: await self.rpc.accounts(reads[0].pubkeys, reads[0].commitment)}
        order = list(dict.fromkeys(key for read in reads for key in read.pubkeys))
        found = dict(zip(order, await self.rpc.accounts(order, reads[0].commitment), strict=True))
        return {read: [found[key] for key in read.pubkeys] for read in reads}
