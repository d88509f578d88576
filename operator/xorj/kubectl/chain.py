"""Where an attempt landed: ``getSignatureStatuses`` (with ``searchTransactionHistory``) on a Solana
JSON-RPC node the person names with ``--rpc-url``. The ledger records signatures, not slots.

The call and its checks are the executor's own (:meth:`xorj.chain.rpc.SolanaRpc.signature_statuses`):
a malformed answer is an error, never "not found". The URL may carry an API key: it is never printed
(errors name it redacted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from solders.signature import Signature

from xorj.chain.classify import TxFailure
from xorj.chain.errors import ChainCallError, MalformedAnswerError, RpcRequestError
from xorj.chain.rpc import RpcTimeouts, SolanaRpc
from xorj.kubectl.errors import PluginError
from xorj.kubectl.views import SignatureStatus
from xorj.redaction import redact_url

MAX_PER_CALL = 256  # the RPC method's limit


def signature_statuses(rpc_url: str, signatures: Sequence[str], *,
                       transport: httpx.AsyncBaseTransport | None = None,
                       timeout: float = 10.0) -> dict[str, SignatureStatus]:
    """Each signature's slot, confirmation status and error as the node knows it (slot None: unknown)."""
    where = redact_url(rpc_url)
    try:
        parsed = [Signature.from_string(sig) for sig in signatures]
    except ValueError:
        raise PluginError("an attempt's signature is not base58 of 64 bytes", "the CopyTrade status is damaged") from None
    try:
        return asyncio.run(_statuses(rpc_url, signatures, parsed, transport, timeout))
    except MalformedAnswerError as exc:
        raise PluginError(f"the RPC node at {where} sent a malformed getSignatureStatuses answer: {exc}",
                          "use another --rpc-url") from None
    except RpcRequestError as exc:
        raise PluginError(f"the RPC node at {where} refused getSignatureStatuses: {exc}", "check --rpc-url") from None
    except ChainCallError as exc:
        raise PluginError(f"the RPC node at {where} did not answer getSignatureStatuses ({exc})",
                          "check --rpc-url, or leave it out to skip slots") from None


async def _statuses(rpc_url: str, signatures: Sequence[str], parsed: list[Signature],
                    transport: httpx.AsyncBaseTransport | None, timeout: float) -> dict[str, SignatureStatus]:
    out: dict[str, SignatureStatus] = {}
    async with SolanaRpc(rpc_url, timeouts=RpcTimeouts(read=timeout), transport=transport) as rpc:
        for start in range(0, len(parsed), MAX_PER_CALL):
            answer = await rpc.signature_statuses(parsed[start:start + MAX_PER_CALL])
            for sig, status in zip(signatures[start:start + MAX_PER_CALL], answer.statuses, strict=True):
                out[sig] = SignatureStatus(None, None, None) if status is None else SignatureStatus(
                    status.slot, status.confirmation, None if status.failure is None else _error_text(status.failure))
    return out


def _error_text(failure: TxFailure) -> str:
    """A transaction error as a person reads it ("instruction 2: custom program error 6001")."""
    if failure.kind != "InstructionError":
        return failure.kind
    what = (f"custom program error {failure.custom_code}" if failure.custom_code is not None
            else failure.instruction_error or "unknown")
    return f"instruction {failure.instruction_index}: {what}"
