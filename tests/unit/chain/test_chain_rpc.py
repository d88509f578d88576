"""The Solana RPC client over an injected httpx transport: what it sends, how it treats error and
hostile answers, and that the API key in its URL reaches neither an error text nor a log line.

The answers here come from an httpx MockTransport speaking JSON-RPC 2.0 as a Solana node does: the
point is the client's handling of one answer, not a node (the node-backed tests are in
tests/integration/chain/)."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from solders.signature import Signature

from xorj.chain.errors import MalformedAnswerError, RpcRequestError, RpcTimeoutError, RpcTransportError
from xorj.chain.rpc import PreflightSettings, RpcTimeouts, SolanaRpc
from xorj.domain.trades import ReasonCode

SECRET = "sEcReT-api-key-123"
URL = f"https://rpc.example.test/?api-key={SECRET}"


def _rpc(handler, **kwargs) -> SolanaRpc:
    return SolanaRpc(URL, transport=httpx.MockTransport(handler), **kwargs)


def _answer(result: object = None, *, error: dict | None = None, status: int = 200):
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": json.loads(request.content)["id"]}
        body.update({"error": error} if error is not None else {"result": result})
        return httpx.Response(status, json=body)
    return handler


def test_send_asks_for_explicit_preflight_and_no_node_retries() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return _answer(str(Signature.default()))(request)

    rpc = _rpc(handler, preflight=PreflightSettings(skip_preflight=True, preflight_commitment="processed"))
    assert asyncio.run(rpc.send_raw(b"\x01\x02")) == Signature.default()
    request = seen[0]
    assert request["method"] == "sendTransaction"
    assert request["params"][0] == "AQI="  # the signed bytes, base64, as stored
    assert request["params"][1]["skipPreflight"] is True
    assert request["params"][1]["preflightCommitment"] == "processed"
    assert request["params"][1]["maxRetries"] == 0 and request["params"][1]["encoding"] == "base64"


def test_status_answer_keeps_its_context_slot_and_searches_history() -> None:
    seen: list[dict] = []
    status = {"slot": 90, "confirmations": None, "err": None, "confirmationStatus": "finalized", "status": {"Ok": None}}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return _answer({"context": {"slot": 123}, "value": [status, None]})(request)

    answer = asyncio.run(_rpc(handler).signature_statuses([Signature.default(), Signature.new_unique()]))
    assert answer.context_slot == 123
    assert answer.statuses[0] is not None and answer.statuses[0].confirmation == "finalized"
    assert answer.statuses[1] is None
    assert seen[0]["params"][1] == {"searchTransactionHistory": True}


def test_preflight_failure_is_a_request_error_with_its_transaction_failure() -> None:
    error = {"code": -32002, "message": "Transaction simulation failed: Blockhash not found",
             "data": {"err": "BlockhashNotFound", "logs": [], "accounts": None, "unitsConsumed": 0,
                      "returnData": None, "innerInstructions": None}}
    with pytest.raises(RpcRequestError) as caught:
        asyncio.run(_rpc(_answer(error=error)).send_raw(b"\x01"))
    assert caught.value.reason is ReasonCode.BLOCKHASH_EXPIRED
    assert caught.value.tx_failure is not None and caught.value.tx_failure.kind == "BlockhashNotFound"


def test_an_unmodelled_json_rpc_error_is_never_an_answer() -> None:
    with pytest.raises(RpcRequestError) as caught:
        asyncio.run(_rpc(_answer(error={"code": -32000, "message": "node is behind"})).block_height())
    assert caught.value.reason is ReasonCode.RPC_ERROR and caught.value.method == "getBlockHeight"


@pytest.mark.parametrize("result", [
    {"context": {"slot": 1}, "value": [None]},  # one entry for two signatures
    "not an object",
])
def test_hostile_status_answers_fail_with_a_reason_code(result: object) -> None:
    with pytest.raises(MalformedAnswerError) as caught:
        asyncio.run(_rpc(_answer(result)).signature_statuses([Signature.default(), Signature.new_unique()]))
    assert caught.value.reason is ReasonCode.MALFORMED_RESPONSE


def test_an_epoch_answer_with_height_above_slot_is_refused() -> None:
    epoch = {"absoluteSlot": 10, "blockHeight": 11, "epoch": 0, "slotIndex": 10, "slotsInEpoch": 432000,
             "transactionCount": None}
    with pytest.raises(MalformedAnswerError):
        asyncio.run(_rpc(_answer(epoch)).finalized_point())


def test_an_answer_that_is_not_json_is_malformed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>gateway</html>")
    with pytest.raises(MalformedAnswerError):
        asyncio.run(_rpc(handler).block_height())


def test_transport_failures_are_typed_and_never_quote_the_api_key() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused: {request.url}", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"read timed out: {request.url}", request=request)

    for handler, error in ((refused, RpcTransportError), (slow, RpcTimeoutError),
                           (_answer(None, status=503), RpcTransportError)):
        with pytest.raises(error) as caught:
            asyncio.run(_rpc(handler).block_height())
        assert SECRET not in str(caught.value) and "rpc.example.test" in str(caught.value)
    with pytest.raises(RpcTransportError, match="HTTP 503"):
        asyncio.run(_rpc(_answer(None, status=503)).block_height())


def test_a_call_past_its_timeout_is_a_timeout() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        raise AssertionError("unreachable")

    with pytest.raises(RpcTimeoutError):
        asyncio.run(SolanaRpc(URL, timeouts=RpcTimeouts(read=0.05), transport=httpx.MockTransport(never)).block_height())


def test_no_log_line_carries_the_api_key_even_with_httpx_logging_on(capsys: pytest.CaptureFixture[str]) -> None:
    from xorj.commands.executor import _configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("httpx").level)
    try:
        _configure_logging("DEBUG")  # the executor's logging, at its most verbose
        asyncio.run(_rpc(_answer(7)).block_height())
        logging.getLogger("httpx").setLevel(logging.DEBUG)  # even when someone turns httpx's request log on
        asyncio.run(_rpc(_answer(7)).block_height())
        with pytest.raises(RpcTransportError):
            asyncio.run(_rpc(_answer(None, status=503)).block_height())
        logging.getLogger("xorj.chain.rpc").warning("calling %s", URL)  # a URL someone logs is redacted
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(saved[2])
    err = capsys.readouterr().err
    assert "calling https://rpc.example.test/?api-key=REDACTED" in err
    assert SECRET not in err


def test_a_json_rpc_error_missing_a_field_solders_expects_is_a_refusal_not_a_crash() -> None:
    # -32005 "node is behind" without its data: solders panics (a BaseException) parsing it
    rpc = _rpc(_answer(error={"code": -32005, "message": "node is behind"}))
    with pytest.raises(RpcRequestError) as err:
        asyncio.run(rpc.signature_statuses([Signature.default()]))
    assert err.value.code == -32005 and "node is behind" in str(err.value) and SECRET not in str(err.value)


def test_an_answer_that_is_not_utf8_is_malformed_with_its_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"jsonrpc":"2.0","id":0,"result":"\xff\xfe"}',
                              headers={"Content-Type": "application/json; charset=latin-1"})

    with pytest.raises(MalformedAnswerError) as err:
        asyncio.run(_rpc(handler).block_height())
    assert err.value.reason is ReasonCode.MALFORMED_RESPONSE and "does not parse" in str(err.value)
