"""One exception hierarchy for the whole package.

Every error the project raises on purpose derives from :class:`XorjError`, so entry points can turn
any of them into one clear line (CLI) or a reason code (executor) without catching bare exceptions.
"""

from __future__ import annotations


class XorjError(Exception):
    """Base of every deliberate xorj error."""


class InvalidInputError(XorjError, ValueError):
    """Input broke a documented rule. The message names the field (and row, for files) and the rule."""


class IllegalTransitionError(XorjError):
    """A trade state change that the state machine does not allow."""


class LedgerError(XorjError):
    """The ledger refused or could not perform an operation."""


class LedgerUnavailableError(LedgerError):
    """The connection to Postgres was lost or could not be made (reason code LEDGER_UNAVAILABLE).

    Raised instead of retrying silently: a retried write could be applied twice.
    """


class ChainError(XorjError):
    """A Solana RPC or swap-API call failed; carries a reason code."""


class EnvironmentSetupError(XorjError):
    """The local development environment (toolchain, cluster, database, chain) could not be set up."""


class LeaseLostError(LedgerError):
    """An executor wrote to a trade whose lease it no longer holds: expired, taken over by another
    executor, or replaced by a newer claim (a larger fencing token) even under the same owner name.

    The write changed nothing (fencing): the executor must stop working on that trade.
    """


class LedgerConstraintError(LedgerError):
    """A write broke a ledger constraint; the message names the constraint and the field, and
    ``constraint`` holds the constraint's name (None when the database named none)."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class RefusedTransitionError(LedgerError, IllegalTransitionError):
    """The ledger refused a write because the trade state machine (xorj.domain.trades) refuses the
    transition it would make; nothing was written."""


class TradeNotFoundError(LedgerError):
    """No trade (or attempt) matches the id, key or signature given."""
