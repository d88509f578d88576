"""One status poll for every attempt in flight: getBlockHeight(finalized) then getSignatureStatuses
for all waiting signatures (up to 256 per call), shared by all trades of the process.

Each caller gets the finalized height read BEFORE the statuses of the same tick, as the algorithm
requires. Without this, every trade in flight costs two RPC calls per poll; with it, a tick costs
two calls whatever the concurrency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from solders.signature import Signature

from xorj.chain.rpc import SignatureStatus, SolanaRpc

MAX_SIGNATURES_PER_CALL = 256  # getSignatureStatuses' limit


@dataclass(frozen=True)
class StatusReading:
    finalized_height: int  # read before the status
    status: SignatureStatus | None


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
            height = await self.rpc.block_height("finalized")
            statuses: list[SignatureStatus | None] = []
            for start in range(0, len(signatures), MAX_SIGNATURES_PER_CALL):
                chunk = [Signature.from_string(s) for s in signatures[start:start + MAX_SIGNATURES_PER_CALL]]
                statuses += await self.rpc.signature_statuses(chunk)
        except BaseException as exc:  # every waiter learns the failure and backs off on its own
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for signature, status in zip(signatures, statuses):
            for future in waiting[signature]:
                if not future.done():
                    future.set_result(StatusReading(height, status))
