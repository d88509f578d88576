"""The reconciler's tables (migration 0006): per-vault cursors, findings, verified CONFIRMED trades;
and the reads that map signatures to the ledger's attempts. Used by :mod:`xorj.reconciler`.

Each method is one transaction on the :class:`~xorj.ledger.repository.Ledger`'s pool. Only the
ledger's owner (the operator's login, or whoever runs ``xorj reconcile``) may use these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from xorj.domain.reconciliation import AttemptRecord, ConfirmedTrade, Finding, FindingClass
from xorj.domain.trades import AttemptOutcome, TradeState
from xorj.errors import InvalidInputError
from xorj.ledger import outbox, statements
from xorj.ledger.records import AlertSeverity, NewAlert
from xorj.ledger.repository import Ledger, LedgerCursor
from xorj.ledger.rows import fetch_all, fetch_one, record_from

ALERT_KIND = "CHAIN_RECONCILIATION"


@dataclass(frozen=True)
class VaultCursor:
    vault: str
    signature: str | None  # None: nothing settled yet, walk back to not_before
    not_before: datetime


@dataclass(frozen=True)
class StoredFinding:
    finding_id: int
    finding_class: FindingClass
    vault: str
    signature: str
    trade_id: int | None
    strategy: str | None
    slot: int | None
    detail: str
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    resolution: str | None

    def __post_init__(self) -> None:  # built from rows as is: finding_class is text in the table
        object.__setattr__(self, "finding_class", FindingClass(self.finding_class))

    def to_json(self) -> dict[str, object]:
        return {"id": self.finding_id, "class": self.finding_class.value, "vault": self.vault,
                "signature": self.signature, "tradeId": self.trade_id, "strategy": self.strategy,
                "slot": self.slot, "detail": self.detail, "firstSeenAt": self.first_seen_at.isoformat(),
                "lastSeenAt": self.last_seen_at.isoformat(),
                "resolvedAt": None if self.resolved_at is None else self.resolved_at.isoformat(),
                "resolution": self.resolution}


_FINDING_COLUMNS = ("id AS finding_id, finding_class, vault, signature, trade_id, strategy, slot, detail, first_seen_at, "
                    "last_seen_at, resolved_at, resolution")


class ReconciliationStore:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _transaction(self) -> AbstractContextManager[LedgerCursor]:
        return self._ledger._transaction()  # noqa: SLF001 - same package, same pool and error translation

    def vaults(self) -> list[str]:
        """Every vault the ledger has a trade for."""
        with self._transaction() as cur:
            return [r["vault"] for r in cur.execute("SELECT DISTINCT vault FROM trades ORDER BY vault")]

    def cursor(self, vault: str, *, baseline_margin: timedelta) -> VaultCursor:
        """The vault's cursor; on the first pass it is created with ``not_before`` = the vault's first
        trade's admission less ``baseline_margin`` (or now, for a vault without trades)."""
        with self._transaction() as cur:
            cursor = fetch_one(
                cur, VaultCursor,
                """INSERT INTO chain_reconciliation_cursors (vault, not_before)
                   SELECT %(vault)s, coalesce((SELECT min(created_at) FROM trades WHERE vault = %(vault)s), now())
                                     - %(margin)s
                   ON CONFLICT (vault) DO UPDATE SET vault = EXCLUDED.vault
                   RETURNING vault, cursor_signature AS signature, not_before""",
                {"vault": vault, "margin": baseline_margin},
            )
            assert cursor is not None  # the upsert returns the row in either case
            return cursor

    def advance_cursor(self, vault: str, expected: str | None, new: str) -> bool:
        """Move the cursor from ``expected`` to ``new`` (compare-and-set: a concurrent pass that moved it
        first wins, and this one changes nothing). Returns whether it moved."""
        with self._transaction() as cur:
            cur.execute(
                """UPDATE chain_reconciliation_cursors
                      SET cursor_signature = %s, updated_at = now(), walked_at = now()
                    WHERE vault = %s AND cursor_signature IS NOT DISTINCT FROM %s""",
                (new, vault, expected),
            )
            return cur.rowcount == 1

    def mark_walked(self, vault: str) -> None:
        with self._transaction() as cur:
            cur.execute("UPDATE chain_reconciliation_cursors SET walked_at = now() WHERE vault = %s", (vault,))

    def attempts_for(self, signatures: Sequence[str]) -> dict[str, AttemptRecord]:
        """The ledger's attempts with these signatures (of any vault), with their trades' state."""
        if not signatures:
            return {}
        with self._transaction() as cur:
            rows = cur.execute(
                """SELECT a.signature, a.trade_id, a.attempt_no, a.outcome, t.vault, t.state, t.strategy
                     FROM attempts a JOIN trades t ON t.id = a.trade_id
                    WHERE a.signature = ANY(%s)""",
                (list(signatures),),
            ).fetchall()
        return {r["signature"]: AttemptRecord(r["signature"], r["trade_id"], r["attempt_no"], r["vault"],
                                              AttemptOutcome(r["outcome"]), TradeState(r["state"]), r["strategy"])
                for r in rows}

    def unverified_confirmed(self, vault: str, limit: int = 1000) -> list[ConfirmedTrade]:
        """The vault's CONFIRMED trades not yet seen finalized on chain, oldest first, with their age
        by the database clock."""
        with self._transaction() as cur:
            rows = cur.execute(
                """SELECT t.id, t.vault, t.final_signature, t.strategy,
                          extract(epoch FROM now() - coalesce(t.finished_at, t.updated_at)) AS age
                     FROM trades t
                    WHERE t.vault = %s AND t.state = 'CONFIRMED'
                      AND NOT EXISTS (SELECT 1 FROM chain_reconciliation_verified v WHERE v.trade_id = t.id)
                    ORDER BY t.id LIMIT %s""",
                (vault, limit),
            ).fetchall()
        return [ConfirmedTrade(r["id"], r["vault"], r["final_signature"], max(0.0, float(r["age"])), r["strategy"])
                for r in rows]

    def mark_verified(self, trade_id: int, signature: str, slot: int) -> None:
        """Record the trade's transaction as final, and close a CONFIRMED_NOT_FINAL finding of it that
        a slow finalization had opened."""
        with self._transaction() as cur:
            cur.execute(
                """INSERT INTO chain_reconciliation_verified (trade_id, signature, slot) VALUES (%s, %s, %s)
                   ON CONFLICT (trade_id) DO NOTHING""",
                (trade_id, signature, slot),
            )
            cur.execute(
                """UPDATE chain_reconciliation_findings
                      SET resolved_at = now(), resolution = %s
                    WHERE finding_class = 'CONFIRMED_NOT_FINAL' AND signature = %s AND resolved_at IS NULL""",
                (f"finalized later (slot {slot}), seen by the reconciler", signature),
            )

    def record_findings(self, findings: Iterable[Finding]) -> list[StoredFinding]:
        """Store each finding once (by its key), with a critical CHAIN_RECONCILIATION alert in the outbox;
        returns those this call stored first. A finding seen again only gets a new ``last_seen_at``;
        one a person resolved stays resolved."""
        created: list[StoredFinding] = []
        with self._transaction() as cur:
            for f in findings:
                row = cur.execute(
                    f"""INSERT INTO chain_reconciliation_findings
                            (finding_class, vault, signature, trade_id, strategy, slot, detail)
                        VALUES (%s, %s, %s, %s, %s, %s, %s)
                        ON CONFLICT ON CONSTRAINT chain_reconciliation_findings_key
                        DO UPDATE SET last_seen_at = now()
                        RETURNING {_FINDING_COLUMNS}, (xmax = 0) AS created""",
                    (f.finding_class.value, f.vault, f.signature, f.trade_id, f.strategy, f.slot, f.detail[:2000]),
                ).fetchone()
                assert row is not None, "INSERT ... ON CONFLICT DO UPDATE RETURNING returns the row"
                if row["created"]:
                    created.append(record_from(StoredFinding, row))  # the row has one more column, created
                    # the outbox hears of it in the same transaction, once
                    statements.run(cur.connection, outbox.insert(NewAlert(
                        ALERT_KIND, AlertSeverity.CRITICAL,
                        f"{f.finding_class.value} vault {f.vault} signature {f.signature}: {f.detail}"[:1000],
                        strategy=f.strategy, trade_id=f.trade_id)))
        return created

    def findings(self, *, vaults: Sequence[str] | None = None, open_only: bool = True) -> list[StoredFinding]:
        with self._transaction() as cur:
            return fetch_all(
                cur, StoredFinding,
                f"""SELECT {_FINDING_COLUMNS} FROM chain_reconciliation_findings
                     WHERE (%(vaults)s::text[] IS NULL OR vault = ANY(%(vaults)s))
                       AND (NOT %(open)s OR resolved_at IS NULL)
                     ORDER BY id""",
                {"vaults": None if vaults is None else list(vaults), "open": open_only},
            )

    def open_counts(self) -> dict[FindingClass, int]:
        counts = {c: 0 for c in FindingClass}
        with self._transaction() as cur:
            for r in cur.execute("""SELECT finding_class, count(*) AS n FROM chain_reconciliation_findings
                                     WHERE resolved_at IS NULL GROUP BY finding_class"""):
                counts[FindingClass(r["finding_class"])] = r["n"]
        return counts

    def resolve(self, finding_id: int, note: str, *, actor: str) -> StoredFinding:
        """A person closes a finding after looking into it (the note says what they found)."""
        if not note.strip():
            raise InvalidInputError("note: say what was found (it is kept with the finding)")
        with self._transaction() as cur:
            finding = fetch_one(
                cur, StoredFinding,
                f"""UPDATE chain_reconciliation_findings SET resolved_at = coalesce(resolved_at, now()),
                           resolution = coalesce(resolution, %s)
                     WHERE id = %s RETURNING {_FINDING_COLUMNS}""",
                (f"{actor}: {note}"[:2000], finding_id),
            )
        if finding is None:
            raise InvalidInputError(f"finding: no finding with id {finding_id}")
        return finding

