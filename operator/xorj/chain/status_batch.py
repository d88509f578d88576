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

from dataclasses import dataclass

from solders.signature import Signature

from xorj.chain.rpc import SignatureStatus, SolanaRpc
from xorj.chain.ticks import TickBatcher
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


class StatusBatcher(TickBatcher[str, StatusReading]):
    def __init__(self, rpc: SolanaRpc, *, window: float = 0.01) -> None:
        super().__init__(window=window)
        self.rpc = rpc

    async def read(self, signature: Signature) -> StatusReading:  # type: ignore[override]
        return await super().read(str(signature))

    async def answer(self, keys: list[str]) -> dict[str, StatusReading]:
        finalized = await self.rpc.finalized_point()  # read BEFORE the statuses
        readings: dict[str, StatusReading] = {}
        for start in range(0, len(keys), MAX_SIGNATURES_PER_CALL):
            chunk = keys[start:start + MAX_SIGNATURES_PER_CALL]
            answer = await self.rpc.signature_statuses([Signature.from_string(s) for s in chunk])
            for signature, status in zip(chunk, answer.statuses):
                readings[signature] = StatusReading(finalized, status, answer.context_slot)
        return readings
