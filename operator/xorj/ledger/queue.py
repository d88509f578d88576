"""The work queue: leases on non-terminal trades, taken with ``FOR UPDATE SKIP LOCKED``.

A lease is (lease_owner, lease_expires_at) on the trade row, timed by the database clock. A trade is
claimable while it is PENDING or SUBMITTED and its lease is absent or expired, so a dead executor's
trades are taken over once its lease runs out. Releasing a lease expires it at once (the owner's name
stays as "last owner"); reaching a terminal state clears it.

Fencing: every executor write goes through :func:`lock_for_owner`, which locks the row and checks the
caller still holds a live lease in the same transaction as the write. Concurrent claimers never block
one another: SKIP LOCKED passes over rows another transaction is claiming, and Postgres re-checks the
lease condition on the newest row version, so a trade is never handed to two claimers at once.

Functions here run inside a transaction the caller opened (a cursor with ``dict_row``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg

from xorj.errors import InvalidInputError, LeaseLostError, TradeNotFoundError
from xorj.ledger.records import Trade
from xorj.ledger.rows import (
    ATTEMPT_COLUMNS,
    TRADE_COLUMNS,
    Row,
    attempt_from_row,
    trade_from_row,
)

_CLAIM = f"""
WITH candidates AS (
    SELECT id FROM trades
     WHERE strategy = %(strategy)s
       AND state IN ('PENDING', 'SUBMITTED')
       AND (lease_expires_at IS NULL OR lease_expires_at <= now())
     ORDER BY created_at, id
     LIMIT %(limit)s
     FOR UPDATE SKIP LOCKED
)
UPDATE trades AS t
   SET lease_owner = %(owner)s,
       lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
       claim_count = t.claim_count + 1
  FROM candidates
 WHERE t.id = candidates.id
RETURNING {", ".join("t." + c.strip() for c in TRADE_COLUMNS.split(","))}
"""


def validate_lease_args(owner: str, lease_seconds: float) -> None:
    if not owner or not owner.strip():
        raise InvalidInputError("owner: must be a non-empty executor identity")
    if not lease_seconds > 0:
        raise InvalidInputError(f"lease_seconds: must be > 0 (got {lease_seconds!r})")


def claim(cur: psycopg.Cursor, strategy: str, owner: str, limit: int, lease_seconds: float) -> list[Trade]:
    """Lease up to ``limit`` claimable trades of ``strategy``, oldest first, with their attempts."""
    validate_lease_args(owner, lease_seconds)
    if limit < 1:
        raise InvalidInputError(f"limit: must be >= 1 (got {limit!r})")
    rows = cur.execute(
        _CLAIM, {"strategy": strategy, "owner": owner, "limit": limit, "lease_seconds": float(lease_seconds)}
    ).fetchall()
    trades = with_attempts(cur, rows)
    return sorted(trades, key=lambda t: (t.created_at, t.trade_id))


def with_attempts(cur: psycopg.Cursor, rows: Sequence[Row]) -> list[Trade]:
    """Trades for ``rows`` with all their attempts (raw bytes included), in one extra query."""
    if not rows:
        return []
    by_trade: dict[int, list] = {row["id"]: [] for row in rows}
    # A PENDING trade has no attempts (the first attempt's record moves it to SUBMITTED in the same
    # transaction), so the common claim of fresh work costs no second query.
    ids = [row["id"] for row in rows if row["state"] != "PENDING"]
    if not ids:
        return [trade_from_row(row) for row in rows]
    for attempt_row in cur.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE trade_id = ANY(%s) ORDER BY trade_id, attempt_no", (ids,)
    ):
        by_trade[attempt_row["trade_id"]].append(attempt_from_row(attempt_row))
    return [trade_from_row(row, by_trade[row["id"]]) for row in rows]


def heartbeat(cur: psycopg.Cursor, trade_ids: Sequence[int], owner: str, lease_seconds: float) -> set[int]:
    """Extend the leases ``owner`` still holds among ``trade_ids``; return those ids."""
    validate_lease_args(owner, lease_seconds)
    if not trade_ids:
        return set()
    # Lock in id order so two heartbeats over overlapping ids cannot deadlock.
    rows = cur.execute(
        """
        WITH held AS (
            SELECT id FROM trades
             WHERE id = ANY(%(ids)s) AND lease_owner = %(owner)s AND lease_expires_at > now()
             ORDER BY id FOR UPDATE
        )
        UPDATE trades AS t SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
          FROM held WHERE t.id = held.id
        RETURNING t.id
        """,
        {"ids": list(trade_ids), "owner": owner, "lease_seconds": float(lease_seconds)},
    ).fetchall()
    return {row["id"] for row in rows}


def release(cur: psycopg.Cursor, trade_id: int, owner: str) -> bool:
    """Give up ``owner``'s live lease on a trade so another executor can claim it now."""
    row = cur.execute(
        """UPDATE trades SET lease_expires_at = now()
            WHERE id = %s AND lease_owner = %s AND lease_expires_at > now()
            RETURNING id""",
        (trade_id, owner),
    ).fetchone()
    return row is not None


def lock_for_owner(
    cur: psycopg.Cursor, trade_id: int, owner: str | None, *, recorded: tuple[str, bytes] | None = None
) -> tuple[Row, bool]:
    """Lock the trade row for a write; return (row, whether ``owner`` holds a live lease on it).

    With ``recorded=(signature, raw_tx)`` the row also carries ``recorded_attempt_id``: the id of this
    trade's attempt with exactly that signature and those bytes, if one is stored (same round trip).
    """
    signature, raw = recorded if recorded else (None, None)
    row = cur.execute(
        f"""SELECT {TRADE_COLUMNS},
                   (lease_owner IS NOT DISTINCT FROM %s AND lease_expires_at > now()) AS lease_held,
                   (SELECT a.id FROM attempts a
                     WHERE %s::text IS NOT NULL AND a.signature = %s AND a.trade_id = trades.id
                       AND a.raw_tx = %s::bytea) AS recorded_attempt_id
              FROM trades WHERE id = %s FOR UPDATE""",
        (owner, signature, signature, raw, trade_id),
    ).fetchone()
    if row is None:
        raise TradeNotFoundError(f"trade {trade_id} does not exist")
    return row, bool(row["lease_held"])


def lease_lost(row: Row, owner: str, action: str) -> LeaseLostError:
    holder = row["lease_owner"]
    if row["state"] in ("CONFIRMED", "FAILED"):
        why = f"the trade is already {row['state']}"
    elif holder and holder != owner:
        why = "the lease belongs to another executor"
    else:
        why = "its lease expired or was released"
    return LeaseLostError(f"{action} on trade {row['id']} refused for {owner!r}: {why}; nothing was written")


def find_stale(
    cur: psycopg.Cursor, now: datetime | None, grace: timedelta, strategy: str | None
) -> list[Trade]:
    """Non-terminal trades nobody holds a live lease on, unowned for longer than ``grace``.

    Unowned since: the lease's expiry (or release) if it ever had one, else its admission.
    ``now=None`` uses the database clock.
    """
    rows = cur.execute(
        f"""
        WITH clock AS (SELECT coalesce(%(now)s::timestamptz, now()) AS now)
        SELECT {TRADE_COLUMNS} FROM trades, clock
         WHERE state IN ('PENDING', 'SUBMITTED')
           AND (lease_expires_at IS NULL OR lease_expires_at <= clock.now)
           AND coalesce(lease_expires_at, created_at) < clock.now - %(grace)s
           AND (%(strategy)s::text IS NULL OR strategy = %(strategy)s)
         ORDER BY created_at, id
        """,
        {"now": now, "grace": grace, "strategy": strategy},
    ).fetchall()
    return with_attempts(cur, rows)
