"""Where an attempt landed: ``getSignatureStatuses`` (with ``searchTransactionHistory``) on a Solana
JSON-RPC node the person names with ``--rpc-url``. The ledger records signatures, not slots.

The node's answer is checked, not trusted: a malformed one is an error, never "not found". The URL
may carry an API key: it is never printed (errors name it redacted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from xorj.kubectl.errors import PluginError
from xorj.kubectl.views import SignatureStatus
from xorj.redaction import redact_url

MAX_PER_CALL = 256  # the RPC method's limit


def signature_statuses(rpc_url: str, signatures: Sequence[str], *,
                       transport: httpx.BaseTransport | None = None,
                       timeout: float = 10.0) -> dict[str, SignatureStatus]:
    """Each signature's slot, confirmation status and error as the node knows it (slot None: unknown)."""
    out: dict[str, SignatureStatus] = {}
    where = redact_url(rpc_url)
    with httpx.Client(transport=transport, timeout=timeout) as client:
        for start in range(0, len(signatures), MAX_PER_CALL):
            batch = list(signatures[start:start + MAX_PER_CALL])
            request = {"jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses",
                       "params": [batch, {"searchTransactionHistory": True}]}
            try:
                response = client.post(rpc_url, json=request)
                response.raise_for_status()
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise PluginError(f"the RPC node at {where} did not answer getSignatureStatuses "
                                  f"({type(exc).__name__})", "check --rpc-url, or leave it out to skip slots") from None
            out.update(_parse(body, batch, where))
    return out


def _parse(body: Any, batch: list[str], where: str) -> dict[str, SignatureStatus]:
    def malformed(why: str) -> PluginError:
        return PluginError(f"the RPC node at {where} sent a malformed getSignatureStatuses answer: {why}",
                           "use another --rpc-url")

    if not isinstance(body, dict):
        raise malformed("not a JSON-RPC object")
    if "error" in body:
        err = body["error"] if isinstance(body["error"], dict) else {}
        raise PluginError(f"the RPC node at {where} refused getSignatureStatuses: {err.get('message', 'error')}",
                          "check --rpc-url")
    value = (body.get("result") or {}).get("value") if isinstance(body.get("result"), dict) else None
    if not isinstance(value, list) or len(value) != len(batch):
        raise malformed(f"expected {len(batch)} statuses")
    out: dict[str, SignatureStatus] = {}
    for sig, item in zip(batch, value, strict=True):
        if item is None:
            out[sig] = SignatureStatus(None, None, None)
            continue
        if not isinstance(item, dict) or not isinstance(item.get("slot"), int) or isinstance(item.get("slot"), bool) \
                or item["slot"] < 0:
            raise malformed(f"status of {sig[:12]}... has no valid slot")
        err = item.get("err")
        out[sig] = SignatureStatus(item["slot"], item.get("confirmationStatus"),
                                   None if err is None else _error_text(err))
    return out


def _error_text(err: Any) -> str:
    """A transaction error as the node encodes it ({"InstructionError": [2, {"Custom": 6001}]})."""
    if isinstance(err, dict) and isinstance(err.get("InstructionError"), list) and len(err["InstructionError"]) == 2:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            return f"instruction {index}: custom program error {inner['Custom']}"
        return f"instruction {index}: {inner}"
    return str(err)
