"""Signature slots from a JSON-RPC node: the answer is checked, not trusted, and the URL (which may
carry an API key) is never printed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from xorj.kubectl.chain import signature_statuses
from xorj.kubectl.errors import PluginError

from .objects import SIG_1, SIG_2

URL = "https://rpc.example/?api-key=s3cret"


def node(answer: Any, seen: list[dict] | None = None) -> httpx.MockTransport:
    """Stands in for a public Solana JSON-RPC node (unreachable from here): answers
    getSignatureStatuses with ``answer`` (a callable of the request, or a fixed body)."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        result = answer(body) if callable(answer) else answer
        return httpx.Response(200, json=result)

    return httpx.MockTransport(handle)


def test_slots_confirmation_and_errors_per_signature() -> None:
    seen: list[dict] = []
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"context": {"slot": 500}, "value": [
        {"slot": 310, "confirmations": None, "err": {"InstructionError": [2, {"Custom": 6001}]},
         "status": {"Err": {"InstructionError": [2, {"Custom": 6001}]}}, "confirmationStatus": "finalized"},
        None]}}
    out = signature_statuses(URL, [SIG_1, SIG_2], transport=node(answer, seen))
    assert seen[0]["method"] == "getSignatureStatuses"
    assert seen[0]["params"] == [[SIG_1, SIG_2], {"searchTransactionHistory": True}]
    assert out[SIG_1].slot == 310 and out[SIG_1].confirmation_status == "finalized"
    assert out[SIG_1].error == "instruction 2: custom program error 6001"
    assert out[SIG_2].slot is None


@pytest.mark.parametrize("answer", [
    {"jsonrpc": "2.0", "id": 1, "result": {"value": [None]}},  # one status for two signatures
    {"jsonrpc": "2.0", "id": 1, "result": {"value": [{"slot": "310"}, None]}},  # slot not a number
    {"jsonrpc": "2.0", "id": 1, "result": {"value": [{"slot": -1}, None]}},
    {"jsonrpc": "2.0", "id": 1, "result": None},
    ["not", "an", "object"],
])
def test_a_malformed_answer_is_an_error_never_not_found(answer: Any) -> None:
    with pytest.raises(PluginError) as err:
        signature_statuses(URL, [SIG_1, SIG_2], transport=node(answer))
    assert "malformed" in err.value.message
    assert "s3cret" not in err.value.one_line()


def test_an_rpc_error_and_an_unreachable_node_are_one_line_without_the_key() -> None:
    with pytest.raises(PluginError) as err:
        signature_statuses(URL, [SIG_1], transport=node({"jsonrpc": "2.0", "id": 1,
                                                        "error": {"code": -32005, "message": "node is behind"}}))
    assert "node is behind" in err.value.message and "s3cret" not in err.value.one_line()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to https://rpc.example/?api-key=s3cret", request=request)

    with pytest.raises(PluginError) as err:
        signature_statuses(URL, [SIG_1], transport=httpx.MockTransport(refuse))
    assert "ConnectError" in err.value.message and "s3cret" not in err.value.one_line()
