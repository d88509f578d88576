"""The Postgres ledger: source of truth for trades, attempts, alerts and trader scores.

Entry point: ``Ledger.connect(dsn)`` (applies migrations under an advisory lock, opens a pool); on an
event loop, ``AsyncLedger`` (:mod:`xorj.ledger.aio`) runs the same transactions without threads.
See :mod:`xorj.ledger.transactions` for the operations and their guarantees.
"""

from xorj.domain.trades import Attempt, IdempotencyKey, Trade
from xorj.ledger.migrate import migrate
from xorj.ledger.notify import AsyncAdmissionListener, AsyncTradeListener, TradeListener
from xorj.ledger.records import (
    AdmitResult,
    Alert,
    AlertSeverity,
    NewAlert,
    StoredTraderScore,
    TradeEvent,
    TradeIntent,
    TradeNotification,
    VaultActivity,
)
from xorj.ledger.repository import DEFAULT_LEASE_SECONDS, Ledger

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "AdmitResult",
    "Alert",
    "AlertSeverity",
    "AsyncAdmissionListener",
    "AsyncTradeListener",
    "Attempt",
    "IdempotencyKey",
    "Ledger",
    "NewAlert",
    "StoredTraderScore",
    "Trade",
    "TradeEvent",
    "TradeIntent",
    "TradeListener",
    "TradeNotification",
    "VaultActivity",
    "migrate",
]
