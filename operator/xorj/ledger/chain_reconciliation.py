"""The reconciler's tables (migration 0006): per-vault cursors, findings, verified CONFIRMED trades;
and the reads that map signatures to the ledger's attempts. Used by :mod:`xorj.reconciler`.

Each operation is one transaction body (:mod:`xorj.ledger.statements`), written once: the reconciler
runs it on an :class:`~xorj.ledger.aio.AsyncLedger` (no thread hop), :class:`ReconciliationStore` on
the blocking :class:`~xorj.ledger.repository.Ledger` (``xorj reconcile --resolve``, the tests). Only the
ledger's owner (the operator's login, or whoever runs ``xorj reconcile``) may use these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from xorj.domain.reconciliation import AttemptRecord, ConfirmedTrade, Finding, FindingClass
from xorj.domain.trades import AttemptOutcome, TradeState
from xorj.errors import InvalidInputError
from xorj.ledger import outbox
from xorj.ledger.records import AlertSeverity, NewAlert
from xorj.ledger.repository import Ledger
from xorj.ledger.rows import record_from
from xorj.ledger.statements import Step, one, record, records, rowcount, rows

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
    """The blocking ledger's way to these bodies, for ``xorj reconcile`` and the tests; the reconciler
    runs them on an :class:`~xorj.ledger.aio.AsyncLedger`."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def vaults(self) -> list[str]:
        return self._ledger.run(vaults())

    def cursor(self, vault: str, *, baseline_margin: timedelta) -> VaultCursor:
        return self._ledger.run(cursor(vault, baseline_margin=baseline_margin))

    def advance_cursor(self, vault: str, expected: str | None, new: str) -> bool:
        return self._ledger.run(advance_cursor(vault, expected, new))

    def mark_walked(self, vault: str) -> None:
        self._ledger.run(mark_walked(vault))

    def attempts_for(self, signatures: Sequence[str]) -> dict[str, AttemptRecord]:
        return self._ledger.run(attempts_for(signatures))

    def unverified_confirmed(self, vault: str, limit: int = 1000) -> list[ConfirmedTrade]:
        return self._ledger.run(unverified_confirmed(vault, limit))

    def mark_verified(self, trade_id: int, signature: str, slot: int) -> None:
        self._ledger.run(mark_verified(trade_id, signature, slot))

    def record_findings(self, findings: Iterable[Finding]) -> list[StoredFinding]:
        return self._ledger.run(record_findings(findings))

    def findings(self, *, vaults: Sequence[str] | None = None, open_only: bool = True) -> list[StoredFinding]:
        return self._ledger.run(findings(vaults=vaults, open_only=open_only))

    def open_counts(self) -> dict[FindingClass, int]:
        return self._ledger.run(open_counts())

    def resolve(self, finding_id: int, note: str, *, actor: str) -> StoredFinding:
        return self._ledger.run(resolve(finding_id, note, actor=actor))


# -- transaction bodies (xorj.ledger.statements): each runs on the blocking or the asyncio ledger ------


def vaults() -> Step[list[str]]:
    """Every vault the ledger has a trade for."""
    return [r["vault"] for r in (yield from rows("SELECT DISTINCT vault FROM trades ORDER BY vault"))]


def cursor(vault: str, *, baseline_margin: timedelta) -> Step[VaultCursor]:
    """The vault's cursor; on the first pass it is created with ``not_before`` = the vault's first
    trade's admission less ``baseline_margin`` (or now, for a vault without trades)."""
    found = yield from record(
        VaultCursor,
        """INSERT INTO chain_reconciliation_cursors (vault, not_before)
           SELECT %(vault)s, coalesce((SELECT min(created_at) FROM trades WHERE vault = %(vault)s), now())
                             - %(margin)s
           ON CONFLICT (vault) DO UPDATE SET vault = EXCLUDED.vault
           RETURNING vault, cursor_signature AS signature, not_before""",
        {"vault": vault, "margin": baseline_margin},
    )
    assert found is not None  # the upsert returns the row in either case
    return found


def advance_cursor(vault: str, expected: str | None, new: str) -> Step[bool]:
    """Move the cursor from ``expected`` to ``new`` (compare-and-set: a concurrent pass that moved it
    first wins, and this one changes nothing). Returns whether it moved."""
    moved = yield from rowcount(
        """UPDATE chain_reconciliation_cursors
              SET cursor_signature = %s, updated_at = now(), walked_at = now()
            WHERE vault = %s AND cursor_signature IS NOT DISTINCT FROM %s""",
        (new, vault, expected),
    )
    return moved == 1


def mark_walked(vault: str) -> Step[None]:
    yield from rowcount("UPDATE chain_reconciliation_cursors SET walked_at = now() WHERE vault = %s", (vault,))


def attempts_for(signatures: Sequence[str]) -> Step[dict[str, AttemptRecord]]:
    """The ledger's attempts with these signatures (of any vault), with their trades' state."""
    if not signatures:
        return {}
    found = yield from rows(
        """SELECT a.signature, a.trade_id, a.attempt_no, a.outcome, t.vault, t.state, t.strategy
             FROM attempts a JOIN trades t ON t.id = a.trade_id
            WHERE a.signature = ANY(%s)""",
        (list(signatures),),
    )
    return {r["signature"]: AttemptRecord(r["signature"], r["trade_id"], r["attempt_no"], r["vault"],
                                          AttemptOutcome(r["outcome"]), TradeState(r["state"]), r["strategy"])
            for r in found}


def unverified_confirmed(vault: str, limit: int = 1000) -> Step[list[ConfirmedTrade]]:
    """The vault's CONFIRMED trades not yet seen finalized on chain, oldest first, with their age
    by the database clock."""
    found = yield from rows(
        """SELECT t.id, t.vault, t.final_signature, t.strategy,
                  extract(epoch FROM now() - coalesce(t.finished_at, t.updated_at)) AS age
             FROM trades t
            WHERE t.vault = %s AND t.state = 'CONFIRMED'
              AND NOT EXISTS (SELECT 1 FROM chain_reconciliation_verified v WHERE v.trade_id = t.id)
            ORDER BY t.id LIMIT %s""",
        (vault, limit),
    )
    return [ConfirmedTrade(r["id"], r["vault"], r["final_signature"], max(0.0, float(r["age"])), r["strategy"])
            for r in found]


def mark_verified(trade_id: int, signature: str, slot: int) -> Step[None]:
    """Record the trade's transaction as final, and close a CONFIRMED_NOT_FINAL finding of it that
    a slow finalization had opened."""
    yield from rowcount(
        """INSERT INTO chain_reconciliation_verified (trade_id, signature, slot) VALUES (%s, %s, %s)
           ON CONFLICT (trade_id) DO NOTHING""",
        (trade_id, signature, slot),
    )
    yield from rowcount(
        """UPDATE chain_reconciliation_findings
              SET resolved_at = now(), resolution = %s
            WHERE finding_class = 'CONFIRMED_NOT_FINAL' AND signature = %s AND resolved_at IS NULL""",
        (f"finalized later (slot {slot}), seen by the reconciler", signature),
    )


def record_findings(findings: Iterable[Finding]) -> Step[list[StoredFinding]]:
    """Store each finding once (by its key), with a critical CHAIN_RECONCILIATION alert in the outbox;
    returns those this call stored first. A finding seen again only gets a new ``last_seen_at``;
    one a person resolved stays resolved."""
    created: list[StoredFinding] = []
    for f in findings:
        row = yield from one(
            f"""INSERT INTO chain_reconciliation_findings
                    (finding_class, vault, signature, trade_id, strategy, slot, detail)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT ON CONSTRAINT chain_reconciliation_findings_key
                DO UPDATE SET last_seen_at = now()
                RETURNING {_FINDING_COLUMNS}, (xmax = 0) AS created""",
            (f.finding_class.value, f.vault, f.signature, f.trade_id, f.strategy, f.slot, f.detail[:2000]),
        )
        assert row is not None, "INSERT ... ON CONFLICT DO UPDATE RETURNING returns the row"
        if row["created"]:
            created.append(record_from(StoredFinding, row))  # the row has one more column, created
            # the outbox hears of it in the same transaction, once
            yield from outbox.insert(NewAlert(
                ALERT_KIND, AlertSeverity.CRITICAL,
                f"{f.finding_class.value} vault {f.vault} signature {f.signature}: {f.detail}"[:1000],
                strategy=f.strategy, trade_id=f.trade_id))
    return created


def findings(*, vaults: Sequence[str] | None = None, open_only: bool = True) -> Step[list[StoredFinding]]:
    return (yield from records(
        StoredFinding,
        f"""SELECT {_FINDING_COLUMNS} FROM chain_reconciliation_findings
             WHERE (%(vaults)s::text[] IS NULL OR vault = ANY(%(vaults)s))
               AND (NOT %(open)s OR resolved_at IS NULL)
             ORDER BY id""",
        {"vaults": None if vaults is None else list(vaults), "open": open_only},
    ))


def open_counts() -> Step[dict[FindingClass, int]]:
    counts = {c: 0 for c in FindingClass}
    for r in (yield from rows("""SELECT finding_class, count(*) AS n FROM chain_reconciliation_findings
                                  WHERE resolved_at IS NULL GROUP BY finding_class""")):
        counts[FindingClass(r["finding_class"])] = r["n"]
    return counts


def resolve(finding_id: int, note: str, *, actor: str) -> Step[StoredFinding]:
    """A person closes a finding after looking into it (the note says what they found)."""
    if not note.strip():
        raise InvalidInputError("note: say what was found (it is kept with the finding)")
    finding = yield from record(
        StoredFinding,
        f"""UPDATE chain_reconciliation_findings SET resolved_at = coalesce(resolved_at, now()),
                   resolution = coalesce(resolution, %s)
             WHERE id = %s RETURNING {_FINDING_COLUMNS}""",
        (f"{actor}: {note}"[:2000], finding_id),
    )
    if finding is None:
        raise InvalidInputError(f"finding: no finding with id {finding_id}")
    return finding
