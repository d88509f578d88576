"""Typed failures of the chain clients. Each carries the ledger's reason code, so the submission
algorithm never has to guess from a message string.

Messages never contain transaction bytes, keys or request bodies: only the method, the endpoint's
host and the upstream error text (which the RPC node or swap API wrote, not us).
"""

from __future__ import annotations

from xorj.chain.classify import TxFailure
from xorj.domain.trades import ReasonCode
from xorj.errors import ChainError


class ChainCallError(ChainError):
    """A chain or swap-API call failed. ``reason`` is the ledger reason code for this failure class."""

    reason: ReasonCode = ReasonCode.RPC_ERROR

    def __init__(self, message: str, *, method: str = "", reason: ReasonCode | None = None) -> None:
        super().__init__(message)
        self.method = method
        if reason is not None:
            self.reason = reason


class RpcTimeoutError(ChainCallError):
    """No answer within the call's timeout. The request may or may not have been processed."""

    reason = ReasonCode.RPC_TIMEOUT


class RpcTransportError(ChainCallError):
    """Connection refused/reset, HTTP status error: the node could not be asked."""

    reason = ReasonCode.RPC_ERROR


class RpcRequestError(ChainCallError):
    """The node answered with a JSON-RPC error. ``tx_failure`` is set when the error is about the
    transaction itself (preflight simulation failure, blockhash not found, ...)."""

    reason = ReasonCode.RPC_ERROR

    def __init__(self, message: str, *, method: str = "", reason: ReasonCode | None = None,
                 code: int | None = None, tx_failure: TxFailure | None = None) -> None:
        super().__init__(message, method=method, reason=reason)
        self.code = code
        self.tx_failure = tx_failure


class MalformedAnswerError(ChainCallError):
    """The answer did not have the documented shape (or the swap transaction broke our checks)."""

    reason = ReasonCode.MALFORMED_RESPONSE


class QuoteUnavailableError(ChainCallError):
    """The swap API could not quote this pair/amount (no route, 4xx with a reason)."""

    reason = ReasonCode.QUOTE_UNAVAILABLE


class SwapRejectedError(ChainCallError):
    """The swap API's transaction does something the trade does not need: it is never signed.
    ``rule`` names the check that refused it (a stable identifier, e.g. ``vault-transfer``)."""

    reason = ReasonCode.SWAP_REJECTED

    def __init__(self, rule: str, message: str, *, method: str = "swap") -> None:
        super().__init__(f"{rule}: {message}", method=method)
        self.rule = rule


class QuoteRejectedError(ChainCallError):
    """The quote cannot be used for this trade (non-finite numbers, a minimum out below the slippage
    bound, ...). ``rule`` names the check."""

    reason = ReasonCode.QUOTE_REJECTED

    def __init__(self, rule: str, message: str, *, method: str = "quote") -> None:
        super().__init__(f"{rule}: {message}", method=method)
        self.rule = rule


class SimulationFailedError(ChainCallError):
    """simulateTransaction of the unsigned swap failed. ``reason`` is the failure's own class
    (SLIPPAGE_EXCEEDED, INSUFFICIENT_FUNDS, BLOCKHASH_EXPIRED, PROGRAM_ERROR): a price that moved is
    not a hostile transaction."""

    def __init__(self, message: str, *, reason: ReasonCode) -> None:
        super().__init__(message, method="simulateTransaction", reason=reason)
