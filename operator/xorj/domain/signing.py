"""What the signer boundary decides on its own before a vault signs anything (docs/security.md, "The
signer boundary"). Pure: no I/O.

The signer never trusts the executor that asks it. For each request it reads the trade from the
ledger itself and refuses, with one of :class:`SigningRefusal`'s codes, unless the trade may get a
new attempt now, its vault is one the signer holds, the quote is for this trade, and the swap
transaction passes the swap guard's checks (re-run by the signer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xorj.domain.trades import AttemptOutcome, Trade


class SigningRefusal(str, enum.Enum):
    """Why the signer refused to sign (the code a refused request is answered and logged with)."""

    BAD_REQUEST = "bad-request"  # the body does not parse, or breaks a field's rule
    TOO_LARGE = "too-large"  # the body is larger than the signer accepts
    BUSY = "busy"  # more requests in flight than the signer serves at once
    TRADE_UNKNOWN = "trade-unknown"  # the ledger holds no trade with that id
    VAULT_NOT_HELD = "vault-not-held"  # the trade's vault is not one whose key the signer holds
    TRADE_STATE = "trade-state"  # the trade is CONFIRMED, FAILED or has landed: no new attempt
    ATTEMPT_IN_FLIGHT = "attempt-in-flight"  # an attempt of the trade is still unresolved in the ledger
    SIGNED_NOT_RECORDED = "signed-not-recorded"  # signed for this attempt already, still valid, not yet in the ledger
    QUOTE_MISMATCH = "quote-mismatch"  # the quote is for other mints, another amount, or more slippage
    QUOTE_REJECTED = "quote-rejected"  # the quote fails the quote checks (swap_check.check_quote)
    SWAP_REJECTED = "swap-rejected"  # the transaction fails the swap guard's checks
    SIMULATION_FAILED = "simulation-failed"  # the transaction's simulation failed (slippage, funds, ...)
    CHAIN_ERROR = "chain-error"  # the signer's RPC could not answer the checks: nothing signed


@dataclass(frozen=True)
class Refusal:
    code: SigningRefusal
    detail: str


def new_attempt_refusal(trade: Trade) -> Refusal | None:
    """Why ``trade`` may not get a newly signed attempt now, or None when it may: a PENDING trade, or
    a SUBMITTED one whose attempts are all resolved without landing (expired, failed on chain, not
    sent), the only states in which the submission algorithm signs again."""
    if trade.is_terminal:
        return Refusal(SigningRefusal.TRADE_STATE, f"trade {trade.trade_id} is {trade.state.value}")
    pending = trade.pending_attempt
    if pending is not None:
        return Refusal(SigningRefusal.ATTEMPT_IN_FLIGHT,
                       f"trade {trade.trade_id}'s attempt {pending.attempt_no} ({pending.signature}) is unresolved: "
                       f"it may still land")
    last = trade.last_attempt
    if last is not None and last.outcome is AttemptOutcome.LANDED:
        return Refusal(SigningRefusal.TRADE_STATE, f"trade {trade.trade_id}'s attempt {last.attempt_no} landed")
    return None


@dataclass(frozen=True)
class IssuedSignature:
    """A signature the signer gave for a trade's next attempt, remembered until the ledger records it
    or its blockhash expires: the executor might not commit it (a crash, or a compromised executor
    collecting signatures), and two live signed transactions of one trade could both land."""

    attempt_no: int  # the attempt it was signed for (the trade's attempts + 1 at the time)
    signature: str
    last_valid_block_height: int


def unrecorded_signature_refusal(trade: Trade, issued: IssuedSignature | None, block_height: int | None
                                 ) -> Refusal | None:
    """Refuse a second signature for the same attempt while the first one could still land. The first
    no longer counts once the ledger holds it (then :func:`new_attempt_refusal` decides), once the
    trade moved past that attempt, or once the chain's block height is past its validity.
    ``block_height`` is needed only when ``issued`` is live; None means it could not be read."""
    if issued is None or len(trade.attempts) >= issued.attempt_no:
        return None
    if block_height is not None and block_height > issued.last_valid_block_height:
        return None
    return Refusal(SigningRefusal.SIGNED_NOT_RECORDED,
                   f"attempt {issued.attempt_no} of trade {trade.trade_id} was signed ({issued.signature}) and is "
                   f"not in the ledger; it stays valid until block height {issued.last_valid_block_height}")
