"""One status poll for every attempt in flight: getEpochInfo(finalized) then getSignatureStatuses
for all waiting signatures (up to 256 per call), shared by all trades of the process.

Each caller gets, for the same tick: the finalized block (slot and height from ONE answer), read
BEFORE the statuses, and the context slot of the status answer that covered its signature. The
expiry rule (:mod:`xorj.domain.expiry`) needs all three: a "not found" proves expiry only when its
answer is as of a slot at or after the finalized block that is past the attempt's window. Without
batching, every trade in flight costs two RPC calls per poll; with it, a tick costs two calls
whatever the concurrency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from solders.signature import Signature

from xorj.chain.rpc import SignatureStatus, SolanaRpc
from xorj.domain.expiry import FinalizedPoint

MAX_SIGNATURES_PER_CALL = 256  # getSignatureStatuses' limit


@dataclass(frozen=True)
class StatusReading:
    finalized: FinalizedPoint  # read before the status
    status: SignatureStatus | None
    status_context_slot: int  # the slot the status answer was given as of

    @property
    def finalized_height(self) -> int:
        return self.finalized.height


class StatusBatcher:
    def __init__(self, rpc: SolanaRpc, *, window: float = 0.01) -> None:
        self.rpc = rpc
        self.window = window  # how long the first caller waits for others to join the tick
        self._waiting: dict[str, list[asyncio.Future[StatusReading]]] = {}
        self._flush: asyncio.Task | None = None

    async def read(self, signature: Signature) -> StatusReading:
        future: asyncio.Future[StatusReading] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(str(signature), []).append(future)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._tick())
        return await future

    async def _tick(self) -> None:
        await asyncio.sleep(self.window)
        waiting, self._waiting = self._waiting, {}
        self._flush = None  # callers arriving from now on start the next tick
        signatures = list(waiting)
        try:
            finalized = await self.rpc.finalized_point()
            readings: list[tuple[SignatureStatus | None, int]] = []
            for start in range(0, len(signatures), MAX_SIGNATURES_PER_CALL):
                chunk = [Signature.from_string(s) for s in signatures[start:start + MAX_SIGNATURES_PER_CALL]]
                answer = await self.rpc.signature_statuses(chunk)
                readings += [(status, answer.context_slot) for status in answer.statuses]
        except BaseException as exc:  # every waiter learns the failure and backs off on its own
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for signature, (status, context_slot) in zip(signatures, readings):
            for future in waiting[signature]:
                if not future.done():
                    future.set_result(StatusReading(finalized, status, context_slot))
