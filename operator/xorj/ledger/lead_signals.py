"""Lead signals in the ledger (migration 0012): a lead trader's swap accepted once per
(leader, signature), the polling cursor per leader, and per following strategy its trade or its
skipped-signal row. Used by :mod:`xorj.watcher`.

:meth:`LeadSignalStore.accept` is ONE transaction: the signal row (``ON CONFLICT DO NOTHING``), the
cursor (when the polling source accepts; never backwards), and, only if the signal row is new, each
strategy's outcome: a PENDING trade (the ledger's idempotency key (strategy, vault, lead signature)
still guards it) or a ``lead_skips`` row. Two watchers, or polling racing a webhook, deciding the same
signal at once: one transaction inserts the signal and its trades, the other finds it there and
writes nothing (it still moves the cursor). Rows are read back with psycopg's ``class_row``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from psycopg.rows import class_row

from xorj.domain.copy_signals import CopyDecision, LeadSwap, SkipReason
from xorj.ledger import statements
from xorj.ledger.records import TradeIntent
from xorj.ledger.repository import Ledger, LedgerCursor
from xorj.ledger.vaults import admit_fanout

SOURCES = ("poll", "webhook", "websocket")


@dataclass(frozen=True)
class LeadCursor:
    leader: str
    cursor_signature: str
    cursor_slot: int
    updated_at: datetime


@dataclass(frozen=True)
class StoredLeadSignal:
    leader: str
    signature: str
    slot: int
    block_time: datetime | None
    sold_mint: str
    sold_amount: Decimal
    sold_decimals: int
    bought_mint: str
    bought_amount: Decimal
    bought_decimals: int
    sold_balance_before: Decimal
    source: str
    accepted_at: datetime


@dataclass(frozen=True)
class LeadSkip:
    strategy: str
    leader: str
    signature: str
    reason: str
    detail: str
    created_at: datetime
    evented_at: datetime | None


@dataclass(frozen=True)
class LeadCopy:
    strategy: str
    leader: str
    signature: str
    trade_id: int
    copytrade: str
    created_at: datetime
    projected_at: datetime | None


@dataclass(frozen=True)
class PendingProjection:
    """A copied trade whose CopyTrade is not written yet, with what its spec needs."""

    strategy: str
    leader: str
    signature: str
    copytrade: str
    trade_id: int
    input_mint: str
    output_mint: str
    lead_amount: Decimal


@dataclass(frozen=True)
class FollowerOutcome:
    """What one following strategy decided for a signal: ``decision`` sized or skipped."""

    strategy: str  # the ledger's strategy key, "namespace/name"
    vault: str
    decision: CopyDecision
    max_slippage_bps: int | None = None
    copytrade: str | None = None  # "namespace/name" of the CopyTrade that will show it


@dataclass(frozen=True)
class AcceptResult:
    accepted: bool  # False: the signal was already accepted; nothing but the cursor was written
    trade_ids: dict[str, int]  # strategy -> the trade admitted for it
    skipped: dict[str, SkipReason]  # strategy -> why it did not copy


class LeadSignalStore:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def _transaction(self) -> AbstractContextManager[LedgerCursor]:
        return self._ledger._transaction()

    def cursor(self, leader: str) -> LeadCursor | None:
        with self._transaction() as cur, cur.connection.cursor(row_factory=class_row(LeadCursor)) as rows:
            return rows.execute("SELECT leader, cursor_signature, cursor_slot, updated_at FROM lead_cursors "
                                "WHERE leader = %s", (leader,)).fetchone()

    def advance_cursor(self, leader: str, signature: str, slot: int) -> None:
        """Move the polling cursor to ``signature`` (never to an older slot): for what polling read that
        is not a signal (not a swap, failed), and for the baseline of a newly followed leader."""
        with self._transaction() as cur:
            _advance(cur, leader, signature, slot)

    def is_accepted(self, leader: str, signature: str) -> bool:
        with self._transaction() as cur:
            return cur.execute("SELECT 1 FROM lead_signals WHERE leader = %s AND signature = %s",
                               (leader, signature)).fetchone() is not None

    def accept(self, signal: LeadSwap, source: str, outcomes: Sequence[FollowerOutcome], *,
               advance_cursor: bool, actor: str = "watcher") -> AcceptResult:
        """Accept ``signal`` once with every strategy's outcome, in one transaction (module doc)."""
        if source not in SOURCES:
            raise ValueError(f"source: must be one of {', '.join(SOURCES)}, got {source!r}")
        block_time = None if signal.block_time is None else datetime.fromtimestamp(signal.block_time, UTC)
        trade_ids: dict[str, int] = {}
        skipped: dict[str, SkipReason] = {}
        with self._transaction() as cur:
            if advance_cursor:
                _advance(cur, signal.leader, signal.signature, signal.slot)
            inserted = cur.execute(
                """INSERT INTO lead_signals (leader, signature, slot, block_time, sold_mint, sold_amount,
                                             sold_decimals, bought_mint, bought_amount, bought_decimals,
                                             sold_balance_before, source)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (leader, signature) DO NOTHING RETURNING leader""",
                (signal.leader, signal.signature, signal.slot, block_time, signal.sold_mint, signal.sold_amount,
                 signal.sold_decimals, signal.bought_mint, signal.bought_amount, signal.bought_decimals,
                 signal.sold_balance_before, source)).fetchone()
            if inserted is None:
                return AcceptResult(False, {}, {})
            for outcome in outcomes:
                decision = outcome.decision
                if decision.skip is not None:
                    cur.execute("""INSERT INTO lead_skips (strategy, leader, signature, reason, detail)
                                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                                (outcome.strategy, signal.leader, signal.signature, decision.skip.value,
                                 decision.detail[:1000]))
                    skipped[outcome.strategy] = decision.skip
                    continue
                # one trade per active vault of the strategy (xorj.ledger.vaults), in this transaction
                fanned = statements.run(cur.connection, admit_fanout(TradeIntent(
                    strategy=outcome.strategy, vault=outcome.vault, lead_signature=signal.signature,
                    lead_trader=signal.leader, input_mint=decision.input_mint, output_mint=decision.output_mint,
                    amount=decision.amount_in, max_slippage_bps=outcome.max_slippage_bps,
                    notional_usd=decision.notional_usd, copytrade=outcome.copytrade),
                    actor=actor, detail=f"copied from {source}: {decision.detail}"[:1000]))
                own = fanned.results[outcome.vault]
                if own.created:  # a manual CopyTrade for the same lead signature came first: it stands
                    trade_ids[outcome.strategy] = own.trade_id
                    if outcome.copytrade is not None:
                        cur.execute("""INSERT INTO lead_copies (strategy, leader, signature, trade_id, copytrade)
                                       VALUES (%s, %s, %s, %s, %s)""",
                                    (outcome.strategy, signal.leader, signal.signature, own.trade_id,
                                     outcome.copytrade))
        return AcceptResult(True, trade_ids, skipped)

    def signals(self, leader: str | None = None) -> list[StoredLeadSignal]:
        where, args = ("WHERE leader = %s", (leader,)) if leader else ("", ())
        with self._transaction() as cur, cur.connection.cursor(row_factory=class_row(StoredLeadSignal)) as rows:
            return rows.execute(f"SELECT leader, signature, slot, block_time, sold_mint, sold_amount, sold_decimals, "
                                f"bought_mint, bought_amount, bought_decimals, sold_balance_before, source, "
                                f"accepted_at FROM lead_signals {where} ORDER BY slot, signature", args).fetchall()

    def skips(self, *, strategy: str | None = None, not_evented: bool = False, limit: int = 1000) -> list[LeadSkip]:
        clauses, args = [], []
        if strategy is not None:
            clauses.append("strategy = %s")
            args.append(strategy)
        if not_evented:
            clauses.append("evented_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._transaction() as cur, cur.connection.cursor(row_factory=class_row(LeadSkip)) as rows:
            return rows.execute(f"SELECT strategy, leader, signature, reason, detail, created_at, evented_at "
                                f"FROM lead_skips {where} ORDER BY created_at, strategy LIMIT %s",
                                (*args, limit)).fetchall()

    def copies(self, *, not_projected: bool = False, limit: int = 1000) -> list[LeadCopy]:
        where = "WHERE projected_at IS NULL" if not_projected else ""
        with self._transaction() as cur, cur.connection.cursor(row_factory=class_row(LeadCopy)) as rows:
            return rows.execute(f"SELECT strategy, leader, signature, trade_id, copytrade, created_at, projected_at "
                                f"FROM lead_copies {where} ORDER BY created_at, strategy LIMIT %s",
                                (limit,)).fetchall()

    def pending_projections(self, limit: int = 200) -> list[PendingProjection]:
        with self._transaction() as cur, cur.connection.cursor(row_factory=class_row(PendingProjection)) as rows:
            return rows.execute(
                """SELECT c.strategy, c.leader, c.signature, c.copytrade, c.trade_id, t.input_mint, t.output_mint,
                          s.sold_amount AS lead_amount
                     FROM lead_copies c JOIN trades t ON t.id = c.trade_id
                     JOIN lead_signals s ON s.leader = c.leader AND s.signature = c.signature
                    WHERE c.projected_at IS NULL ORDER BY c.created_at, c.strategy LIMIT %s""", (limit,)).fetchall()

    def mark_projected(self, strategy: str, leader: str, signature: str) -> None:
        with self._transaction() as cur:
            cur.execute("UPDATE lead_copies SET projected_at = now() WHERE strategy = %s AND leader = %s "
                        "AND signature = %s AND projected_at IS NULL", (strategy, leader, signature))

    def mark_evented(self, strategy: str, leader: str, signature: str) -> None:
        with self._transaction() as cur:
            cur.execute("UPDATE lead_skips SET evented_at = now() WHERE strategy = %s AND leader = %s "
                        "AND signature = %s AND evented_at IS NULL", (strategy, leader, signature))


def _advance(cur, leader: str, signature: str, slot: int) -> None:  # type: ignore[no-untyped-def]
    cur.execute(
        """INSERT INTO lead_cursors (leader, cursor_signature, cursor_slot) VALUES (%s, %s, %s)
           ON CONFLICT (leader) DO UPDATE SET cursor_signature = EXCLUDED.cursor_signature,
               cursor_slot = EXCLUDED.cursor_slot, updated_at = now()
           WHERE lead_cursors.cursor_slot <= EXCLUDED.cursor_slot""",
        (leader, signature, slot))
