"""The alert outbox: alerts are rows written in the transaction that caused them (when there is one),
then delivered (Kubernetes Events, metrics, notifications) by whoever reads :func:`pending` and marks
them delivered. A NOTIFY on channel ``xorj_alerts`` announces each new row.

Functions here run inside a transaction the caller opened (a cursor with ``dict_row``).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from xorj.errors import InvalidInputError
from xorj.ledger.records import Alert, AlertSeverity, NewAlert
from xorj.ledger.rows import fetch_all, fetch_one

_COLUMNS = "id AS alert_id, kind, severity, strategy, trade_id, message, created_at, delivered_at"


def insert(cur: psycopg.Cursor, alert: NewAlert) -> Alert:
    try:
        severity = AlertSeverity(alert.severity)
    except ValueError:
        raise InvalidInputError(
            f"severity: must be one of {', '.join(s.value for s in AlertSeverity)} (got {alert.severity!r})"
        ) from None
    stored = fetch_one(
        cur, Alert,
        f"""INSERT INTO alerts (kind, severity, strategy, trade_id, message)
            VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (alert.kind, severity.value, alert.strategy, alert.trade_id, alert.message),
    )
    assert stored is not None  # INSERT ... RETURNING returns the row it inserted
    return stored


def pending(cur: psycopg.Cursor, limit: int) -> list[Alert]:
    return fetch_all(cur, Alert, f"SELECT {_COLUMNS} FROM alerts WHERE delivered_at IS NULL ORDER BY id LIMIT %s",
                     (limit,))


def mark_delivered(cur: psycopg.Cursor, alert_ids: Sequence[int]) -> int:
    """Mark alerts delivered; returns how many changed (already delivered ones are left as they were)."""
    if not alert_ids:
        return 0
    cur.execute(
        "UPDATE alerts SET delivered_at = now() WHERE id = ANY(%s) AND delivered_at IS NULL", (list(alert_ids),)
    )
    return cur.rowcount
