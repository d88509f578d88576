"""Every chain failure -> one ledger :class:`ReasonCode`. Pure: no I/O.

Two inputs reach here:

* a transaction error (from getSignatureStatuses, a preflight failure, or getTransaction's meta),
  normalised into :class:`TxFailure` together with the id of the program that failed;
* an exception raised by the clients (:mod:`xorj.chain.errors` carries its code already).

Slippage is recognised by *who* failed as much as by the number: 6001 (0x1771) is Jupiter's
SlippageToleranceExceeded only when the Jupiter program raised it; 6001 is also Anchor's second
user error in any program, so elsewhere it is a plain PROGRAM_ERROR. DEXes routed through Jupiter
report their own slippage codes; the innermost failing program is read from the logs when present.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xorj.domain.trades import ReasonCode
from xorj.errors import ChainError

JUPITER_PROGRAM_ID = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
JUPITER_SLIPPAGE_CODE = 6001  # 0x1771 SlippageToleranceExceeded

SYSTEM_PROGRAM_ID = "11111111111111111111111111111111"
TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM_ID = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
ASSOCIATED_TOKEN_PROGRAM_ID = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
COMPUTE_BUDGET_PROGRAM_ID = "ComputeBudget111111111111111111111111111111"
MEMO_PROGRAM_ID = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"

# Slippage ("minimum out not met" / "maximum in exceeded") codes of DEXes Jupiter routes through.
DEX_SLIPPAGE_CODES: dict[str, frozenset[int]] = {
    JUPITER_PROGRAM_ID: frozenset({JUPITER_SLIPPAGE_CODE}),
    # Orca Whirlpools: AmountOutBelowMinimum 6036 (0x1794), AmountInAboveMaximum 6037 (0x1795)
    "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc": frozenset({6036, 6037}),
    # Raydium AMM v4: ExceededSlippage 30 (0x1e)
    "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8": frozenset({30}),
    # Raydium CPMM: ExceededSlippage 6005 (0x1775)
    "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C": frozenset({6005}),
    # Raydium CLMM: TooLittleOutputReceived 6022 (0x1786)
    "CAMMCzo5YL8w4VFF8KVHrK22GGUsp5VTaW7grrKgrWqK": frozenset({6022}),
    # SPL Token Swap: ExceededSlippage 16 (0x10)
    "SwaPpA9LAaLfeLi3a68M4DjnLqgtticKg6CnyNwgAC8": frozenset({16}),
}

# SPL Token's TokenError::InsufficientFunds is custom error 1; the System program's
# SystemError::ResultWithNegativeLamports is custom 1 too (a transfer of more lamports than held).
_INSUFFICIENT_FUNDS_CUSTOM: dict[str, frozenset[int]] = {
    TOKEN_PROGRAM_ID: frozenset({1}),
    TOKEN_2022_PROGRAM_ID: frozenset({1}),
    SYSTEM_PROGRAM_ID: frozenset({1}),
}
_INSUFFICIENT_FUNDS_KINDS = frozenset({"InsufficientFundsForFee", "InsufficientFundsForRent"})
_EXPIRED_KINDS = frozenset({"BlockhashNotFound"})

_FAILED_LOG = re.compile(r"^Program (\w+) failed: custom program error: (0x[0-9a-fA-F]+)")


@dataclass(frozen=True)
class TxFailure:
    """A transaction error in the shape of Solana's wire format ``TransactionError``.

    ``kind`` is the variant name ("InstructionError", "BlockhashNotFound", ...). For instruction
    errors, ``instruction_index`` is the top-level instruction, ``custom_code`` the custom program
    error (or None), ``instruction_error`` the named error ("InsufficientFunds", ...), and
    ``program_id`` the program that failed when known (the innermost, from the logs, when present).
    """

    kind: str
    instruction_index: int | None = None
    custom_code: int | None = None
    instruction_error: str | None = None
    program_id: str | None = None
    logs: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        if self.kind != "InstructionError":
            return self.kind
        what = f"custom program error {self.custom_code} (0x{self.custom_code:x})" if (
            self.custom_code is not None) else (self.instruction_error or "unknown")
        who = f" in {self.program_id}" if self.program_id else ""
        return f"instruction {self.instruction_index}: {what}{who}"


class FailureClass(str, enum.Enum):
    """What the submission algorithm does with a landed failure."""

    RETRY_WITH_MORE_SLIPPAGE = "RETRY_WITH_MORE_SLIPPAGE"
    FINAL = "FINAL"


def tx_failure_from_json(err: Any, *, program_ids: Sequence[str] = (),
                         logs: Sequence[str] = ()) -> TxFailure:
    """Build a :class:`TxFailure` from the JSON ``err`` of a status/simulation/transaction meta.

    ``program_ids[i]`` is the program of top-level instruction ``i`` (from the signed message).
    """
    if isinstance(err, str):
        return TxFailure(kind=err, logs=tuple(logs))
    if isinstance(err, dict) and len(err) == 1:
        kind, value = next(iter(err.items()))
        if kind == "InstructionError" and isinstance(value, list) and len(value) == 2:
            index, inner = value
            custom = None
            named = None
            if isinstance(inner, dict) and "Custom" in inner:
                custom = int(inner["Custom"])
            elif isinstance(inner, str):
                named = inner
            elif isinstance(inner, dict) and len(inner) == 1:
                named = next(iter(inner))
            program = program_ids[index] if isinstance(index, int) and 0 <= index < len(program_ids) else None
            return _with_innermost_program(TxFailure(kind=kind, instruction_index=int(index), custom_code=custom,
                                                     instruction_error=named, program_id=program,
                                                     logs=tuple(logs)))
        return TxFailure(kind=str(kind), logs=tuple(logs))
    return TxFailure(kind=f"Unknown({err!r})"[:200], logs=tuple(logs))


def tx_failure_from_solders(err: Any, *, program_ids: Sequence[str] = (),
                            logs: Sequence[str] = ()) -> TxFailure:
    """Same as :func:`tx_failure_from_json`, from a solders ``TransactionErrorType``."""
    type_name = type(err).__name__
    if type_name == "TransactionErrorFieldless":
        return TxFailure(kind=str(err).rsplit(".", 1)[-1], logs=tuple(logs))
    if type_name == "TransactionErrorInstructionError":
        index = int(err.index)
        inner = err.err
        inner_name = type(inner).__name__
        custom = int(inner.code) if inner_name == "InstructionErrorCustom" else None
        if inner_name == "InstructionErrorFieldless":
            named = str(inner).rsplit(".", 1)[-1]
        elif custom is None:
            named = inner_name.removeprefix("InstructionError")
        else:
            named = None
        program = program_ids[index] if 0 <= index < len(program_ids) else None
        return _with_innermost_program(TxFailure(kind="InstructionError", instruction_index=index, custom_code=custom,
                                                 instruction_error=named, program_id=program, logs=tuple(logs)))
    return TxFailure(kind=type_name.removeprefix("TransactionError") or type_name, logs=tuple(logs))


def _with_innermost_program(failure: TxFailure) -> TxFailure:
    """A DEX failing inside Jupiter's route reports its code against Jupiter's top-level
    instruction; the logs say which program actually failed (the first "failed" line is the
    innermost frame)."""
    if failure.custom_code is None:
        return failure
    for line in failure.logs:
        match = _FAILED_LOG.match(line)
        if match and int(match.group(2), 16) == failure.custom_code:
            return TxFailure(kind=failure.kind, instruction_index=failure.instruction_index,
                             custom_code=failure.custom_code, instruction_error=failure.instruction_error,
                             program_id=match.group(1), logs=failure.logs)
    return failure


def is_slippage(failure: TxFailure) -> bool:
    if failure.kind != "InstructionError" or failure.custom_code is None or failure.program_id is None:
        return False
    return failure.custom_code in DEX_SLIPPAGE_CODES.get(failure.program_id, frozenset())


def classify_tx_failure(failure: TxFailure) -> ReasonCode:
    """The reason code of a transaction error."""
    if is_slippage(failure):
        return ReasonCode.SLIPPAGE_EXCEEDED
    if failure.kind in _INSUFFICIENT_FUNDS_KINDS:
        return ReasonCode.INSUFFICIENT_FUNDS
    if failure.kind in _EXPIRED_KINDS:
        return ReasonCode.BLOCKHASH_EXPIRED
    if failure.kind == "InstructionError":
        if failure.instruction_error == "InsufficientFunds":
            return ReasonCode.INSUFFICIENT_FUNDS
        if (failure.custom_code is not None and failure.program_id is not None
                and failure.custom_code in _INSUFFICIENT_FUNDS_CUSTOM.get(failure.program_id, frozenset())):
            return ReasonCode.INSUFFICIENT_FUNDS
    return ReasonCode.PROGRAM_ERROR


def failure_class(reason: ReasonCode) -> FailureClass:
    """Only slippage is retried (with a fresh quote and more slippage); other landed errors are final."""
    return FailureClass.RETRY_WITH_MORE_SLIPPAGE if reason is ReasonCode.SLIPPAGE_EXCEEDED else FailureClass.FINAL


def classify_exception(exc: BaseException) -> ReasonCode:
    """The reason code of a client exception (anything from :mod:`xorj.chain.errors`)."""
    from xorj.chain.errors import (
        ChainCallError,  # local: errors imports nothing from here
    )

    if isinstance(exc, ChainCallError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return ReasonCode.RPC_TIMEOUT
    if isinstance(exc, ChainError):
        return ReasonCode.RPC_ERROR
    return ReasonCode.RPC_ERROR
