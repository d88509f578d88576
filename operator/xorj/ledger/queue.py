"""The work queue: leases on non-terminal trades, taken with ``FOR UPDATE SKIP LOCKED``.

A lease is (lease_owner, lease_expires_at, fencing_token) on the trade row, timed by the database
clock. A trade is claimable while it is PENDING or SUBMITTED and its lease is absent or expired, so a
dead executor's trades are taken over once its lease runs out. Every claim draws a new fencing token
from a sequence (larger than any the trade had) and returns it with the trade. Releasing a lease
expires it at once (the owner's name stays as "last owner"); reaching a terminal state clears it.

Fencing: every executor write goes through :func:`lock_for_owner`, which locks the row and checks, in
the same transaction as the write, that the caller's lease is live and that its token is the trade's
current one. The owner's name alone cannot fence: a task that outlived a pause past its lease, or an
executor restarted under the same identity, names the same owner as the claim that replaced it; only
the token tells the two claims apart. Heartbeats and releases are fenced the same way. Concurrent claimers never block
one another: SKIP LOCKED passes over rows another transaction is claiming, and Postgres re-checks the
lease condition on the newest row version, so a trade is never handed to two claimers at once.

Functions here are transaction steps (:mod:`xorj.ledger.statements`): composed with ``yield from`` into
a transaction body, which a blocking or an asyncio ledger runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from xorj.domain.trades import Attempt, Trade
from xorj.errors import InvalidInputError, LeaseLostError, TradeNotFoundError
from xorj.ledger.rows import ATTEMPT_COLUMNS, TRADE_COLUMNS, Row, fetch_attempts, trade_from_row
from xorj.ledger.statements import Step, one, rows

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
       fencing_token = nextval('trades_fencing_token_seq'),
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


def claim(strategy: str, owner: str, limit: int, lease_seconds: float) -> Step[list[Trade]]:
    """Lease up to ``limit`` claimable trades of ``strategy``, oldest first, with their attempts; each
    carries the new claim's ``fencing_token``, which every write under this claim must present."""
    validate_lease_args(owner, lease_seconds)
    if limit < 1:
        raise InvalidInputError(f"limit: must be >= 1 (got {limit!r})")
    claimed = yield from rows(
        _CLAIM, {"strategy": strategy, "owner": owner, "limit": limit, "lease_seconds": float(lease_seconds)})
    trades = yield from with_attempts(claimed)
    return sorted(trades, key=lambda t: (t.created_at, t.trade_id))


def with_attempts(trade_rows: Sequence[Row]) -> Step[list[Trade]]:
    """Trades for ``trade_rows`` with all their attempts (raw bytes included), in one extra query."""
    if not trade_rows:
        return []
    by_trade: dict[int, list[Attempt]] = {row["trade_id"]: [] for row in trade_rows}
    # A PENDING trade has no attempts (the first attempt's record moves it to SUBMITTED in the same
    # transaction), so the common claim of fresh work costs no second query.
    ids = [row["trade_id"] for row in trade_rows if row["state"] != "PENDING"]
    if not ids:
        return [trade_from_row(row) for row in trade_rows]
    for attempt in (yield from fetch_attempts(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE trade_id = ANY(%s) ORDER BY trade_id, attempt_no", (ids,))):
        by_trade[attempt.trade_id].append(attempt)
    return [trade_from_row(row, by_trade[row["trade_id"]]) for row in trade_rows]


def validate_fencing_token(fencing_token: int) -> None:
    if isinstance(fencing_token, bool) or not isinstance(fencing_token, int) or fencing_token < 1:
        raise InvalidInputError(
            f"fencing_token: must be the positive integer token the claim returned (got {fencing_token!r})"
        )


def heartbeat(leases: Mapping[int, int], owner: str, lease_seconds: float) -> Step[set[int]]:
    """Extend the leases ``owner`` still holds among ``leases`` (trade id -> the fencing token of the
    claim it works under); return the ids whose lease was extended. A trade claimed again since (a
    newer token) is not extended, even for the same owner name."""
    validate_lease_args(owner, lease_seconds)
    if not leases:
        return set()
    for token in leases.values():
        validate_fencing_token(token)
    ids = sorted(leases)
    # Lock in id order so two heartbeats over overlapping ids cannot deadlock.
    extended = yield from rows(
        """
        WITH held AS (
            SELECT t.id FROM trades t
              JOIN unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS lease(id, token) ON t.id = lease.id
             WHERE t.lease_owner = %(owner)s AND t.lease_expires_at > now() AND t.fencing_token = lease.token
             ORDER BY t.id FOR UPDATE OF t
        )
        UPDATE trades AS t SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
          FROM held WHERE t.id = held.id
        RETURNING t.id
        """,
        {"ids": ids, "tokens": [leases[i] for i in ids], "owner": owner, "lease_seconds": float(lease_seconds)},
    )
    return {row["id"] for row in extended}


def release(trade_id: int, owner: str, fencing_token: int) -> Step[bool]:
    """Give up ``owner``'s live lease on a trade (the claim with ``fencing_token``) so another executor
    can claim it now. A stale holder cannot release the lease of the claim that replaced it."""
    validate_fencing_token(fencing_token)
    row = yield from one(
        """UPDATE trades SET lease_expires_at = now()
            WHERE id = %s AND lease_owner = %s AND lease_expires_at > now() AND fencing_token = %s
            RETURNING id""",
        (trade_id, owner, fencing_token),
    )
    return row is not None


def lock_for_owner(
    trade_id: int,
    owner: str | None,
    fencing_token: int | None,
    *,
    recorded: tuple[str, bytes] | None = None,
) -> Step[tuple[Row, bool]]:
    """Lock the trade row for a write; return (row, whether ``owner`` holds a live lease on it under the
    claim with ``fencing_token``, the trade's current token). The caller writes in the same
    transaction, under this row lock, so no claim can slip in between the check and the write.
    (``owner=None, fencing_token=None``: an unfenced operator write, e.g. a cancel; never "held".)

    The row carries ``locked_at``, the transaction's database clock: the instant the domain's transition
    is computed at. With ``recorded=(signature, raw_tx)`` the row also carries ``recorded_attempt_id``: the id of this
    trade's attempt with exactly that signature and those bytes, if one is stored (same round trip).
    """
    if owner is not None:
        validate_fencing_token(fencing_token)  # type: ignore[arg-type]
    signature, raw = recorded if recorded else (None, None)
    row = yield from one(
        f"""SELECT {TRADE_COLUMNS}, now() AS locked_at,
                   (lease_owner IS NOT DISTINCT FROM %s AND lease_expires_at > now()
                    AND fencing_token = %s) AS lease_held,
                   (SELECT a.id FROM attempts a
                     WHERE %s::text IS NOT NULL AND a.signature = %s AND a.trade_id = trades.id
                       AND a.raw_tx = %s::bytea) AS recorded_attempt_id
              FROM trades WHERE id = %s FOR UPDATE""",
        (owner, fencing_token, signature, signature, raw, trade_id),
    )
    if row is None:
        raise TradeNotFoundError(f"trade {trade_id} does not exist")
    return row, bool(row["lease_held"])


@dataclass(frozen=True)
class ClaimedWrite:
    """One fenced write of a batch (:func:`lock_many`): the trade, the claim it works under and, for
    a write-ahead record, the signature and bytes whose stored attempt the lock looks up."""

    trade_id: int
    owner: str
    fencing_token: int
    signature: str | None = None
    raw_tx: bytes | None = None


def lock_many(writes: Sequence[ClaimedWrite]) -> Step[list[Row | None]]:
    """:func:`lock_for_owner` for a batch in ONE statement: every trade row locked in id order (the
    order every multi-row lock of trades takes, so two batches cannot deadlock), and for each write
    its row (``None`` for an unknown trade) with ``locked_at``, ``lease_held`` for the write's own
    claim and ``recorded_attempt_id``. Validates each write's token first (InvalidInputError)."""
    for write in writes:
        validate_fencing_token(write.fencing_token)
    if not writes:
        return []
    found = yield from rows(
        f"""SELECT {", ".join("t." + c.strip() for c in TRADE_COLUMNS.split(","))}, now() AS locked_at, w.ord,
                   (t.lease_owner IS NOT DISTINCT FROM w.owner AND t.lease_expires_at > now()
                    AND t.fencing_token = w.token) AS lease_held,
                   (SELECT a.id FROM attempts a
                     WHERE w.signature IS NOT NULL AND a.signature = w.signature AND a.trade_id = t.id
                       AND a.raw_tx = w.raw_tx) AS recorded_attempt_id
              FROM unnest(%(ids)s::bigint[], %(owners)s::text[], %(tokens)s::bigint[], %(signatures)s::text[],
                          %(raws)s::bytea[]) WITH ORDINALITY AS w(id, owner, token, signature, raw_tx, ord)
              JOIN trades t ON t.id = w.id
             ORDER BY t.id, w.ord FOR UPDATE OF t""",
        {"ids": [w.trade_id for w in writes], "owners": [w.owner for w in writes],
         "tokens": [w.fencing_token for w in writes], "signatures": [w.signature for w in writes],
         "raws": [None if w.raw_tx is None else bytes(w.raw_tx) for w in writes]})
    by_ord: dict[int, Row] = {int(row["ord"]): row for row in found}
    return [by_ord.get(i + 1) for i in range(len(writes))]


def lease_lost(row: Row, owner: str, fencing_token: int, action: str) -> LeaseLostError:
    holder = row["lease_owner"]
    current = row["fencing_token"]
    if row["state"] in ("CONFIRMED", "FAILED"):
        why = f"the trade is already {row['state']}"
    elif holder and holder != owner:
        why = "the lease belongs to another executor"
    elif current is not None and current != fencing_token:
        why = (f"fencing token {fencing_token} is stale: the trade was claimed again since "
               f"(current token {current})")
    else:
        why = "its lease expired or was released"
    return LeaseLostError(
        f"{action} on trade {row['trade_id']} refused for {owner!r} (fencing token {fencing_token}): {why}; "
        "nothing was written"
    )


def find_stale(now: datetime | None, grace: timedelta, strategy: str | None) -> Step[list[Trade]]:
    """Non-terminal trades nobody holds a live lease on, unowned for longer than ``grace``.

    Unowned since: the lease's expiry (or release) if it ever had one, else its admission.
    ``now=None`` uses the database clock.
    """
    stale = yield from rows(
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
    )
    return (yield from with_attempts(stale))
