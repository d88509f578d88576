"""Lead signals in the ledger (migration 0012): a lead trader's swap accepted once per
(leader, signature), the polling cursor per leader, and per following strategy its trade or its
skipped-signal row. Used by :mod:`xorj.watcher`.

:meth:`LeadSignalStore.accept` is ONE transaction: the signal row (``ON CONFLICT DO NOTHING``), the
cursor (when the polling source accepts; never backwards), and, only if the signal row is new, each
strategy's outcome: a PENDING trade (the ledger's idempotency key (strategy, vault, lead signature)
still guards it) or a ``lead_skips`` row. Two watchers, or polling racing a webhook, deciding the same
signal at once: one transaction inserts the signal and its trades, the other finds it there and
writes nothing (it still moves the cursor). Rows are read back with psycopg's ``class_row``.

Each operation is a transaction body (:mod:`xorj.ledger.statements`), written once: the watcher runs
it on its :class:`~xorj.ledger.aio.AsyncLedger` (no thread hop), :class:`LeadSignalStore` on the
blocking :class:`~xorj.ledger.repository.Ledger` (the CLI, the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from xorj.domain.copy_signals import CopyDecision, FanOutSizing, LeadSwap, SkipReason
from xorj.ledger.records import TradeIntent
from xorj.ledger.repository import Ledger
from xorj.ledger.statements import Step, one, record, records, rowcount
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
    # each vault's own sizing (the watcher's, from each vault's balances): only its sized vaults get a
    # trade, each of its own amount; None: every active vault gets ``decision``'s amount
    sizing: FanOutSizing | None = None


@dataclass(frozen=True)
class AcceptResult:
    accepted: bool  # False: the signal was already accepted; nothing but the cursor was written
    trade_ids: dict[str, int]  # strategy -> the trade admitted for it
    skipped: dict[str, SkipReason]  # strategy -> why it did not copy


class LeadSignalStore:
    """The blocking ledger's way to these bodies, for the CLI and the tests; the watcher runs them on
    its :class:`~xorj.ledger.aio.AsyncLedger`."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def cursor(self, leader: str) -> LeadCursor | None:
        return self._ledger.run(cursor(leader))

    def advance_cursor(self, leader: str, signature: str, slot: int) -> None:
        self._ledger.run(advance_cursor(leader, signature, slot))

    def is_accepted(self, leader: str, signature: str) -> bool:
        return self._ledger.run(is_accepted(leader, signature))

    def accept(self, signal: LeadSwap, source: str, outcomes: Sequence[FollowerOutcome], *,
               advance_cursor: bool, actor: str = "watcher") -> AcceptResult:
        return self._ledger.run(accept(signal, source, outcomes, advance_cursor=advance_cursor, actor=actor))

    def signals(self, leader: str | None = None) -> list[StoredLeadSignal]:
        return self._ledger.run(signals(leader))

    def skips(self, *, strategy: str | None = None, not_evented: bool = False, limit: int = 1000) -> list[LeadSkip]:
        return self._ledger.run(skips(strategy=strategy, not_evented=not_evented, limit=limit))

    def copies(self, *, not_projected: bool = False, limit: int = 1000) -> list[LeadCopy]:
        return self._ledger.run(copies(not_projected=not_projected, limit=limit))

    def pending_projections(self, limit: int = 200) -> list[PendingProjection]:
        return self._ledger.run(pending_projections(limit))

    def mark_projected(self, strategy: str, leader: str, signature: str) -> None:
        self._ledger.run(mark_projected(strategy, leader, signature))

    def mark_evented(self, strategy: str, leader: str, signature: str) -> None:
        self._ledger.run(mark_evented(strategy, leader, signature))


# -- transaction bodies (xorj.ledger.statements): each runs on the blocking or the asyncio ledger ------


def cursor(leader: str) -> Step[LeadCursor | None]:
    return (yield from record(LeadCursor, "SELECT leader, cursor_signature, cursor_slot, updated_at "
                                          "FROM lead_cursors WHERE leader = %s", (leader,)))


def advance_cursor(leader: str, signature: str, slot: int) -> Step[None]:
    """Move the polling cursor to ``signature`` (never to an older slot): for what polling read that
    is not a signal (not a swap, failed), and for the baseline of a newly followed leader."""
    yield from rowcount(
        """INSERT INTO lead_cursors (leader, cursor_signature, cursor_slot) VALUES (%s, %s, %s)
           ON CONFLICT (leader) DO UPDATE SET cursor_signature = EXCLUDED.cursor_signature,
               cursor_slot = EXCLUDED.cursor_slot, updated_at = now()
           WHERE lead_cursors.cursor_slot <= EXCLUDED.cursor_slot""",
        (leader, signature, slot))


def is_accepted(leader: str, signature: str) -> Step[bool]:
    return (yield from one("SELECT 1 FROM lead_signals WHERE leader = %s AND signature = %s",
                           (leader, signature))) is not None


def accept(signal: LeadSwap, source: str, outcomes: Sequence[FollowerOutcome], *,
           advance_cursor: bool, actor: str = "watcher") -> Step[AcceptResult]:
    """Accept ``signal`` once with every strategy's outcome, in one transaction (module doc)."""
    if source not in SOURCES:
        raise ValueError(f"source: must be one of {', '.join(SOURCES)}, got {source!r}")
    block_time = None if signal.block_time is None else datetime.fromtimestamp(signal.block_time, UTC)
    trade_ids: dict[str, int] = {}
    skipped: dict[str, SkipReason] = {}
    if advance_cursor:
        yield from _advance_cursor(signal.leader, signal.signature, signal.slot)
    inserted = yield from one(
        """INSERT INTO lead_signals (leader, signature, slot, block_time, sold_mint, sold_amount,
                                     sold_decimals, bought_mint, bought_amount, bought_decimals,
                                     sold_balance_before, source)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (leader, signature) DO NOTHING RETURNING leader""",
        (signal.leader, signal.signature, signal.slot, block_time, signal.sold_mint, signal.sold_amount,
         signal.sold_decimals, signal.bought_mint, signal.bought_amount, signal.bought_decimals,
         signal.sold_balance_before, source))
    if inserted is None:
        return AcceptResult(False, {}, {})
    for outcome in outcomes:
        decision = outcome.decision
        if decision.skip is not None:
            yield from rowcount("""INSERT INTO lead_skips (strategy, leader, signature, reason, detail)
                                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                                (outcome.strategy, signal.leader, signal.signature, decision.skip.value,
                                 decision.detail[:1000]))
            skipped[outcome.strategy] = decision.skip
            continue
        # one trade per active vault of the strategy (xorj.ledger.vaults), in this transaction
        sizing = outcome.sizing
        fanned = yield from admit_fanout(TradeIntent(
            strategy=outcome.strategy, vault=outcome.vault, lead_signature=signal.signature,
            lead_trader=signal.leader, input_mint=decision.input_mint, output_mint=decision.output_mint,
            amount=decision.amount_in, max_slippage_bps=outcome.max_slippage_bps,
            notional_usd=decision.notional_usd, copytrade=outcome.copytrade),
            actor=actor, detail=f"copied from {source}: {decision.detail}"[:1000],
            amounts=None if sizing is None else {v: d.amount_in for v, d in sizing.trades.items()},
            notionals=None if sizing is None else {v: d.notional_usd for v, d in sizing.trades.items()},
            sized_only=sizing is not None)
        # the CopyTrade shows the own vault's trade; when the own vault was sized to nothing, the
        # first other vault's (its status counts every vault's trade of the lead swap)
        own = fanned.results.get(outcome.vault) or next(iter(fanned.results.values()), None)
        if own is not None and own.created:  # a manual CopyTrade for the same lead signature came first: it stands
            trade_ids[outcome.strategy] = own.trade_id
            if outcome.copytrade is not None:
                yield from rowcount("""INSERT INTO lead_copies (strategy, leader, signature, trade_id, copytrade)
                                       VALUES (%s, %s, %s, %s, %s)""",
                                    (outcome.strategy, signal.leader, signal.signature, own.trade_id,
                                     outcome.copytrade))
    return AcceptResult(True, trade_ids, skipped)


# accept's keyword advance_cursor hides the body of that name inside it
_advance_cursor = advance_cursor


def signals(leader: str | None = None) -> Step[list[StoredLeadSignal]]:
    where, args = ("WHERE leader = %s", (leader,)) if leader else ("", ())
    return (yield from records(StoredLeadSignal,
                               f"SELECT leader, signature, slot, block_time, sold_mint, sold_amount, sold_decimals, "
                               f"bought_mint, bought_amount, bought_decimals, sold_balance_before, source, "
                               f"accepted_at FROM lead_signals {where} ORDER BY slot, signature", args))


def skips(*, strategy: str | None = None, not_evented: bool = False, limit: int = 1000) -> Step[list[LeadSkip]]:
    clauses: list[str] = []
    args: list[object] = []
    if strategy is not None:
        clauses.append("strategy = %s")
        args.append(strategy)
    if not_evented:
        clauses.append("evented_at IS NULL")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return (yield from records(LeadSkip, f"SELECT strategy, leader, signature, reason, detail, created_at, evented_at "
                                         f"FROM lead_skips {where} ORDER BY created_at, strategy LIMIT %s",
                               (*args, limit)))


def copies(*, not_projected: bool = False, limit: int = 1000) -> Step[list[LeadCopy]]:
    where = "WHERE projected_at IS NULL" if not_projected else ""
    return (yield from records(LeadCopy, f"SELECT strategy, leader, signature, trade_id, copytrade, created_at, "
                                         f"projected_at FROM lead_copies {where} ORDER BY created_at, strategy LIMIT %s",
                               (limit,)))


def pending_projections(limit: int = 200) -> Step[list[PendingProjection]]:
    return (yield from records(
        PendingProjection,
        """SELECT c.strategy, c.leader, c.signature, c.copytrade, c.trade_id, t.input_mint, t.output_mint,
                  s.sold_amount AS lead_amount
             FROM lead_copies c JOIN trades t ON t.id = c.trade_id
             JOIN lead_signals s ON s.leader = c.leader AND s.signature = c.signature
            WHERE c.projected_at IS NULL ORDER BY c.created_at, c.strategy LIMIT %s""", (limit,)))


def mark_projected(strategy: str, leader: str, signature: str) -> Step[None]:
    yield from rowcount("UPDATE lead_copies SET projected_at = now() WHERE strategy = %s AND leader = %s "
                        "AND signature = %s AND projected_at IS NULL", (strategy, leader, signature))


def mark_evented(strategy: str, leader: str, signature: str) -> Step[None]:
    yield from rowcount("UPDATE lead_skips SET evented_at = now() WHERE strategy = %s AND leader = %s "
                        "AND signature = %s AND evented_at IS NULL", (strategy, leader, signature))
