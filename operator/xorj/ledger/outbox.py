"""The alert outbox: alerts are rows written in the transaction that caused them (when there is one),
then delivered (Kubernetes Events, metrics) by :func:`claim_next` + :func:`mark_delivered` in ONE
transaction (the operator's deliverer, :mod:`xorj.controller.alerts`). A NOTIFY on the ledger's
alerts channel (:mod:`xorj.ledger.notify`) announces each new row.

Exactly once: the claim is a row lock (``FOR UPDATE SKIP LOCKED``), so concurrent deliverers take
different alerts; the delivery itself is idempotent (the Event's name is derived from the row), so a
deliverer killed between delivering and the mark leaves the row unmarked and unlocked, and the next
one re-delivers it into the same name, finds it there, and marks it.

Functions here are transaction steps (:mod:`xorj.ledger.statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xorj.errors import InvalidInputError
from xorj.ledger.records import Alert, AlertSeverity, NewAlert
from xorj.ledger.rows import record_from
from xorj.ledger.statements import Step, one, record, records, rowcount

_COLUMNS = "id AS alert_id, kind, severity, strategy, trade_id, message, created_at, delivered_at"


def insert(alert: NewAlert) -> Step[Alert]:
    try:
        severity = AlertSeverity(alert.severity)
    except ValueError:
        raise InvalidInputError(
            f"severity: must be one of {', '.join(s.value for s in AlertSeverity)} (got {alert.severity!r})"
        ) from None
    stored = yield from record(
        Alert,
        f"""INSERT INTO alerts (kind, severity, strategy, trade_id, message)
            VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (alert.kind, severity.value, alert.strategy, alert.trade_id, alert.message),
    )
    assert stored is not None  # INSERT ... RETURNING returns the row it inserted
    return stored


def pending(limit: int) -> Step[list[Alert]]:
    return (yield from records(Alert, f"SELECT {_COLUMNS} FROM alerts WHERE delivered_at IS NULL ORDER BY id LIMIT %s",
                               (limit,)))


def mark_delivered(alert_ids: Sequence[int]) -> Step[int]:
    """Mark alerts delivered; returns how many changed (already delivered ones are left as they were)."""
    if not alert_ids:
        return 0
    return (yield from rowcount(
        "UPDATE alerts SET delivered_at = now() WHERE id = ANY(%s) AND delivered_at IS NULL", (list(alert_ids),)))


@dataclass(frozen=True)
class ClaimedAlert:
    """An undelivered alert, locked by the claiming transaction, with the CopyTrade (``namespace/name``)
    of its trade when the trade has one (the Event goes on it; else on the strategy)."""

    alert: Alert
    copytrade: str | None


def claim_next(skip: Sequence[int] = ()) -> Step[ClaimedAlert | None]:
    """Lock the oldest undelivered alert no other transaction holds and not in ``skip`` (those whose
    delivery failed earlier in the same pass: one that keeps failing must not hold up the others)."""
    row = yield from one(
        f"""SELECT {", ".join("a." + c.strip() for c in _COLUMNS.split(","))}, t.copytrade
              FROM alerts a LEFT JOIN trades t ON t.id = a.trade_id
             WHERE a.delivered_at IS NULL AND NOT (a.id = ANY(%s))
             ORDER BY a.id LIMIT 1
               FOR UPDATE OF a SKIP LOCKED""", (list(skip),))
    if row is None:
        return None
    return ClaimedAlert(record_from(Alert, row), row["copytrade"])


def count_pending() -> Step[int]:
    row = yield from one("SELECT count(*) AS n FROM alerts WHERE delivered_at IS NULL")
    assert row is not None, "an aggregate without GROUP BY returns one row"
    count: int = row["n"]
    return count
