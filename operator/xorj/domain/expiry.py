"""When "the chain does not know this signature" proves that an attempt never landed (pure, no I/O).

An attempt may be re-signed only when its bytes can no longer land AND they did not land. Two facts,
read from RPC, establish that (docs/design.md invariant 1):

1. The FINALIZED block height is past the attempt's ``lastValidBlockHeight``: no block that can still
   be added to the chain accepts the blockhash. The finalized block's slot is read in the same answer
   as its height (``getEpochInfo`` at finalized commitment gives ``absoluteSlot`` and ``blockHeight``
   of one bank), so the pair names one block: the "proof point".
2. A ``getSignatureStatuses`` answer (with ``searchTransactionHistory``) does not know the signature,
   AND that answer's context slot is at or after the proof point's slot.

Why the context slot matters: behind a load balancer, the status answer may come from a node that is
behind. If the attempt landed in the last blocks of its window, a node N blocks behind has not seen
those blocks yet, and answers "not found" although the transaction is on the chain. The finalized
height alone cannot tell; the status answer's own context slot can. Every block that could hold the
attempt has height <= lastValidBlockHeight < the proof point's height, so it is an ancestor of the
proof point's block. A node whose answer is as of a slot at or after that block's slot has processed
(and recorded the statuses of) every such ancestor on the finalized fork: its "not found" is proof.
The comparison is sound across nodes too (the status from another node than the height), because a
finalized block is final for the whole cluster; a second node that answers fresh confirms the first.

A status answer older than the proof point proves nothing: keep polling and rebroadcasting the SAME
bytes (they cannot land any more, so rebroadcasting is harmless), never re-sign.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExpiryVerdict(str, enum.Enum):
    LIVE = "LIVE"  # finalized height not yet past lastValidBlockHeight: the bytes may still land
    EXPIRED = "EXPIRED"  # past it, and a fresh enough answer does not know the signature: safe to re-sign
    STALE_STATUS = "STALE_STATUS"  # past it, but the "not found" is older than the proof: keep watching


@dataclass(frozen=True)
class FinalizedPoint:
    """The finalized block, from ONE answer (its slot and its height belong to the same bank)."""

    slot: int
    height: int


def expiry_verdict(*, last_valid_block_height: int, finalized: FinalizedPoint, status_context_slot: int) -> ExpiryVerdict:
    """The verdict for an attempt whose signature a status answer did not know (status null).

    ``status_context_slot`` is the context slot of that getSignatureStatuses answer."""
    if finalized.height <= last_valid_block_height:
        return ExpiryVerdict.LIVE
    if status_context_slot < finalized.slot:
        return ExpiryVerdict.STALE_STATUS
    return ExpiryVerdict.EXPIRED
