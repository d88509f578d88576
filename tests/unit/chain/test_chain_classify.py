"""Failure classification: every chain failure maps to one reason code, slippage only from the right program."""

from __future__ import annotations

import json

import pytest
from solders.rpc.responses import GetSignatureStatusesResp, SendTransactionResp

from xorj.chain.classify import (
    JUPITER_PROGRAM_ID,
    SYSTEM_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    FailureClass,
    classify_exception,
    classify_tx_failure,
    failure_class,
    tx_failure_from_json,
    tx_failure_from_solders,
)
from xorj.chain.errors import MalformedAnswerError, RpcTimeoutError
from xorj.chain.rpc import _request_error
from xorj.domain.trades import ReasonCode

WHIRLPOOL = "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc"
OTHER_ANCHOR_PROGRAM = "Stake11111111111111111111111111111111111111"


def _status_err(err: object):
    raw = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"context": {"slot": 5}, "value": [
        {"slot": 3, "confirmations": None, "err": err, "status": {"Err": err}, "confirmationStatus": "finalized"}]}})
    return GetSignatureStatusesResp.from_json(raw).value[0].err


@pytest.mark.parametrize("err, programs, logs, expected", [
    # Jupiter's SlippageToleranceExceeded from the Jupiter program
    ({"InstructionError": [1, {"Custom": 6001}]}, ["Ata", JUPITER_PROGRAM_ID], [], ReasonCode.SLIPPAGE_EXCEEDED),
    # the same number from another Anchor program is NOT slippage
    ({"InstructionError": [0, {"Custom": 6001}]}, [OTHER_ANCHOR_PROGRAM], [], ReasonCode.PROGRAM_ERROR),
    # a DEX's own slippage code reported against Jupiter's instruction, the DEX named by the logs
    ({"InstructionError": [0, {"Custom": 6036}]}, [JUPITER_PROGRAM_ID],
     [f"Program {JUPITER_PROGRAM_ID} invoke [1]", f"Program {WHIRLPOOL} invoke [2]",
      f"Program {WHIRLPOOL} failed: custom program error: 0x1794",
      f"Program {JUPITER_PROGRAM_ID} failed: custom program error: 0x1794"], ReasonCode.SLIPPAGE_EXCEEDED),
    # 6036 from Jupiter itself (no DEX in the logs) is not a slippage code of Jupiter's
    ({"InstructionError": [0, {"Custom": 6036}]}, [JUPITER_PROGRAM_ID], [], ReasonCode.PROGRAM_ERROR),
    ({"InstructionError": [2, {"Custom": 1}]}, ["a", "b", TOKEN_PROGRAM_ID], [], ReasonCode.INSUFFICIENT_FUNDS),
    ({"InstructionError": [0, {"Custom": 1}]}, [SYSTEM_PROGRAM_ID], [], ReasonCode.INSUFFICIENT_FUNDS),
    ({"InstructionError": [0, "InsufficientFunds"]}, ["x"], [], ReasonCode.INSUFFICIENT_FUNDS),
    ("InsufficientFundsForFee", [], [], ReasonCode.INSUFFICIENT_FUNDS),
    ({"InsufficientFundsForRent": {"account_index": 2}}, [], [], ReasonCode.INSUFFICIENT_FUNDS),
    ("BlockhashNotFound", [], [], ReasonCode.BLOCKHASH_EXPIRED),
    ({"InstructionError": [0, "InvalidAccountData"]}, [TOKEN_PROGRAM_ID], [], ReasonCode.PROGRAM_ERROR),
    ("AccountInUse", [], [], ReasonCode.PROGRAM_ERROR),
])
def test_transaction_errors_map_to_reason_codes(err, programs, logs, expected):
    from_json = tx_failure_from_json(err, program_ids=programs, logs=logs)
    from_solders = tx_failure_from_solders(_status_err(err), program_ids=programs, logs=logs)
    assert classify_tx_failure(from_json) is expected
    assert classify_tx_failure(from_solders) is expected
    assert from_json.kind == from_solders.kind
    assert from_json.custom_code == from_solders.custom_code


def test_failure_class_retries_only_slippage():
    assert failure_class(ReasonCode.SLIPPAGE_EXCEEDED) is FailureClass.RETRY_WITH_MORE_SLIPPAGE
    for reason in ReasonCode:
        if reason is not ReasonCode.SLIPPAGE_EXCEEDED:
            assert failure_class(reason) is FailureClass.FINAL


def test_describe_names_code_and_program():
    failure = tx_failure_from_json({"InstructionError": [1, {"Custom": 6001}]}, program_ids=["a", JUPITER_PROGRAM_ID])
    assert failure.describe() == f"instruction 1: custom program error 6001 (0x1771) in {JUPITER_PROGRAM_ID}"


def test_exceptions_carry_reason_codes():
    assert classify_exception(RpcTimeoutError("x")) is ReasonCode.RPC_TIMEOUT
    assert classify_exception(MalformedAnswerError("x")) is ReasonCode.MALFORMED_RESPONSE
    assert classify_exception(TimeoutError()) is ReasonCode.RPC_TIMEOUT
    assert classify_exception(RuntimeError()) is ReasonCode.RPC_ERROR


def _send_error(body: dict):
    return SendTransactionResp.from_json(json.dumps({"jsonrpc": "2.0", "id": 1, "error": body}))


def test_preflight_failures_are_classified_from_their_transaction_error():
    slippage = _send_error({"code": -32002, "message": "Transaction simulation failed: custom program error: 0x1771",
                            "data": {"err": {"InstructionError": [1, {"Custom": 6001}]}, "logs": [],
                                     "accounts": None, "unitsConsumed": 0, "returnData": None}})
    exc = _request_error("sendTransaction", "node", slippage, ["x", JUPITER_PROGRAM_ID])
    assert exc.reason is ReasonCode.SLIPPAGE_EXCEEDED and exc.tx_failure.custom_code == 6001

    expired = _send_error({"code": -32002, "message": "Transaction simulation failed: Blockhash not found",
                           "data": {"err": "BlockhashNotFound", "logs": [], "accounts": None, "unitsConsumed": 0,
                                    "returnData": None}})
    assert _request_error("sendTransaction", "node", expired, []).reason is ReasonCode.BLOCKHASH_EXPIRED

    processed = _send_error({"code": -32002, "message": "Transaction simulation failed: already processed",
                             "data": {"err": "AlreadyProcessed", "logs": [], "accounts": None, "unitsConsumed": 0,
                                      "returnData": None}})
    exc = _request_error("sendTransaction", "node", processed, [])
    assert exc.tx_failure.kind == "AlreadyProcessed" and exc.reason is ReasonCode.RPC_ERROR


def test_plain_rpc_errors_are_rpc_error():
    internal = _send_error({"code": -32603, "message": "internal"})
    assert _request_error("sendTransaction", "node", internal, []).reason is ReasonCode.RPC_ERROR
