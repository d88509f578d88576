"""A strategy's follower vaults in the ledger (migration 0013), and the fan-out of one lead swap into
one trade per active vault, in one transaction. Transaction steps (:mod:`xorj.ledger.statements`).

- :func:`register_vault`: a Vault object's row, upserted on create/update/resume; refused (nothing
  written) when another object, or the strategy's own spec.vault, holds the key.
- :func:`remove_vault`: its finalizer's step: the row is marked removed and the vault's PENDING
  trades are CANCELLED with the reason in their detail, in one transaction; SUBMITTED ones are left
  to finish (a transaction may be out).
- :func:`admit_fanout`: the admission of a lead swap for a strategy: the strategy's own vault (as
  today) plus every active Vault row that was active before the swap's first admission. The vault
  rows are read ``FOR SHARE``: a removal waits for the admission to commit and then cancels its
  trades, and an admission waiting for a removal sees the vault gone. A re-admission adds nothing.
- :func:`fanout_counts`: one aggregate query for a CopyTrade's status, whatever the vault count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from xorj.domain.risk import VaultLimits
from xorj.domain.trades import TradeState
from xorj.errors import LedgerError
from xorj.ledger import transactions
from xorj.ledger.records import AdmitResult, TradeIntent
from xorj.ledger.statements import Step, one, record, records, rows

_VAULT_COLUMNS = ("strategy, pubkey, source, vault_object, max_trade_notional_usd, max_daily_volume_usd, "
                  "max_daily_trades, paused, registered_at, active_since, removed_at")


@dataclass(frozen=True)
class VaultRecord:
    """One row of the registry."""

    strategy: str
    pubkey: str
    source: str  # 'strategy' (its spec.vault) or 'vault' (a Vault object)
    vault_object: str | None
    max_trade_notional_usd: Decimal | None
    max_daily_volume_usd: Decimal | None
    max_daily_trades: int | None
    paused: bool
    registered_at: datetime
    active_since: datetime
    removed_at: datetime | None

    @property
    def active(self) -> bool:
        return not self.paused and self.removed_at is None


@dataclass(frozen=True)
class Registration:
    """What :func:`register_vault` did: ``conflict`` names who else holds the key (nothing written)."""

    row: VaultRecord
    conflict: str | None = None


@dataclass(frozen=True)
class Removal:
    cancelled: list[int]  # the vault's PENDING trades, now FAILED CANCELLED
    submitted: int  # its trades still SUBMITTED: they finish (only an executor can settle them)


@dataclass(frozen=True)
class FanOut:
    """The admission of one lead swap across a strategy's vaults: vault -> its trade's admission."""

    results: dict[str, AdmitResult]

    @property
    def created(self) -> int:
        return sum(1 for r in self.results.values() if r.created)


@dataclass(frozen=True)
class FanOutCounts:
    """A lead swap's trades of one strategy, per state (every vault's, one query)."""

    total: int = 0
    pending: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0
    # when the last of them finished (None while any is not terminal): a fan-out's TTL counts from it
    last_finished_at: datetime | None = None


def register_vault(strategy: str, pubkey: str, *, vault_object: str, limits: VaultLimits) -> Step[Registration]:
    """Upsert the Vault object ``vault_object``'s row (module doc). A removed row is re-activated; a
    resumed (un-paused) or re-activated vault is active from now on (``active_since``)."""
    row = yield from record(VaultRecord, f"""
        INSERT INTO vaults AS v (strategy, pubkey, source, vault_object, max_trade_notional_usd,
                                 max_daily_volume_usd, max_daily_trades, paused)
        VALUES (%(strategy)s, %(pubkey)s, 'vault', %(object)s, %(notional)s, %(volume)s, %(trades)s, %(paused)s)
        ON CONFLICT (strategy, pubkey) DO UPDATE SET
            source = 'vault', vault_object = EXCLUDED.vault_object,
            max_trade_notional_usd = EXCLUDED.max_trade_notional_usd,
            max_daily_volume_usd = EXCLUDED.max_daily_volume_usd, max_daily_trades = EXCLUDED.max_daily_trades,
            paused = EXCLUDED.paused,
            active_since = CASE WHEN v.removed_at IS NOT NULL OR (v.paused AND NOT EXCLUDED.paused) THEN now()
                                ELSE v.active_since END,
            removed_at = NULL, updated_at = now()
        WHERE v.removed_at IS NOT NULL OR v.vault_object IS NOT DISTINCT FROM EXCLUDED.vault_object
        RETURNING {_VAULT_COLUMNS}""",
        {"strategy": strategy, "pubkey": pubkey, "object": vault_object, "notional": limits.max_trade_notional_usd,
         "volume": limits.max_daily_volume_usd, "trades": limits.max_daily_trades, "paused": limits.paused})
    if row is not None:
        return Registration(row)
    held = yield from find_vault(strategy, pubkey)
    assert held is not None, "the upsert conflicted with this row"
    owner = held.vault_object if held.vault_object else f"TradingStrategy {strategy} (its spec.vault)"
    return Registration(held, conflict=owner)


def remove_vault(strategy: str, pubkey: str, *, vault_object: str, detail: str,
                 actor: str = "operator") -> Step[Removal]:
    """Mark ``vault_object``'s row removed and cancel the vault's PENDING trades (module doc). A row
    held by another object is not touched (its trades are not this object's to cancel)."""
    held = yield from one("""UPDATE vaults SET removed_at = coalesce(removed_at, now()), updated_at = now()
                              WHERE strategy = %s AND pubkey = %s AND vault_object = %s RETURNING pubkey""",
                          (strategy, pubkey, vault_object))
    if held is None:
        return Removal([], 0)
    cancelled = yield from transactions.cancel_pending(strategy, detail, actor=actor, vault=pubkey)
    still = yield from one("SELECT count(*) AS n FROM trades WHERE strategy = %s AND vault = %s "
                           "AND state = 'SUBMITTED'", (strategy, pubkey))
    assert still is not None, "an aggregate without GROUP BY returns one row"
    return Removal(cancelled, still["n"])


def find_vault(strategy: str, pubkey: str) -> Step[VaultRecord | None]:
    return (yield from record(VaultRecord, f"SELECT {_VAULT_COLUMNS} FROM vaults WHERE strategy = %s AND pubkey = %s",
                              (strategy, pubkey)))


def list_vaults(strategy: str) -> Step[list[VaultRecord]]:
    """Every row of ``strategy``, removed ones included, by key."""
    return (yield from records(VaultRecord, f"SELECT {_VAULT_COLUMNS} FROM vaults WHERE strategy = %s "
                                            f"ORDER BY pubkey", (strategy,)))


def active_vault_count(strategy: str, own_vault: str) -> Step[int]:
    """How many vaults a new lead swap of ``strategy`` fans out to: its own (spec.vault) and every
    active Vault (for its status)."""
    row = yield from one("SELECT count(*) AS n FROM vaults WHERE strategy = %s AND source = 'vault' "
                         "AND pubkey <> %s AND removed_at IS NULL AND NOT paused", (strategy, own_vault))
    assert row is not None, "an aggregate without GROUP BY returns one row"
    return 1 + int(row["n"])


def fanout_vaults(strategy: str, own_vault: str) -> Step[list[str]]:
    """The vaults a new lead swap of ``strategy`` fans out to now: its own first, then every active
    Vault by key (what the watcher sizes each vault's trade for; :func:`admit_fanout` re-checks them
    under ``FOR SHARE``)."""
    found = yield from rows("SELECT pubkey FROM vaults WHERE strategy = %s AND source = 'vault' AND pubkey <> %s "
                            "AND removed_at IS NULL AND NOT paused ORDER BY pubkey", (strategy, own_vault))
    return [own_vault, *(r["pubkey"] for r in found)]


def admit_fanout(template: TradeIntent, *, actor: str | None = None, detail: str | None = None,
                 amounts: Mapping[str, int] | None = None,
                 notionals: Mapping[str, Decimal | None] | None = None,
                 sized_only: bool = False) -> Step[FanOut]:
    """Admit ``template`` (sized for the strategy's own vault, ``template.vault``) for that vault and
    for every active Vault of the strategy, in the caller's transaction (module doc). ``amounts`` and
    ``notionals``: a vault's own input amount and USD value where its sizing differs (default: the
    template's). ``sized_only``: only the vaults ``amounts`` names get a trade (the watcher sized each
    vault from its own balances; one it did not size, or sized to nothing, gets none).

    Set-based, whatever the vault count: one statement reads the vault rows (``FOR SHARE``), one
    writes every new trade and its audit row (``INSERT ... SELECT FROM unnest``), and only a
    re-admission reads back the trades that already existed. Trades get their ids in the order the
    former loop of single admissions gave them: the strategy's own vault first, then the others by key."""
    own, sizes = template.vault, amounts or {}
    # The strategy's own vault is a row too (written by the first admission that needs it).
    yield from one("""INSERT INTO vaults (strategy, pubkey, source) VALUES (%s, %s, 'strategy')
                      ON CONFLICT (strategy, pubkey) DO NOTHING RETURNING pubkey""",
                   (template.strategy, own))
    # A vault active only since after this swap's first admission does not get it (re-admission).
    others = yield from rows(
        """SELECT pubkey FROM vaults
            WHERE strategy = %(strategy)s AND source = 'vault' AND pubkey <> %(own)s AND removed_at IS NULL
              AND NOT paused AND (NOT %(sized_only)s OR pubkey = ANY(%(sized)s))
              AND active_since <= (SELECT coalesce(min(created_at), now()) FROM trades
                                    WHERE strategy = %(strategy)s AND lead_signature = %(lead)s)
            ORDER BY pubkey FOR SHARE""",
        {"strategy": template.strategy, "own": own, "lead": template.lead_signature, "sized_only": sized_only,
         "sized": sorted(sizes)})
    chosen = [own] if own in sizes or not sized_only else []
    chosen += [r["pubkey"] for r in others]
    notional_of = notionals or {}
    # one statement for every new trade and its audit row; ids in the order of ``chosen``
    inserted = yield from rows(
        """WITH inserted AS (
               INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint,
                                   amount, max_slippage_bps, notional_usd, copytrade)
               SELECT %(strategy)s, f.vault, %(lead)s, %(lead_trader)s, %(input)s, %(output)s, f.amount,
                      %(slippage)s, f.notional, %(copytrade)s
                 FROM unnest(%(vaults)s::text[], %(amounts)s::bigint[], %(notionals)s::numeric[])
                      WITH ORDINALITY AS f(vault, amount, notional, n)
                ORDER BY f.n
               ON CONFLICT ON CONSTRAINT trades_idempotency_key DO NOTHING
               RETURNING id, vault),
           audited AS (
               INSERT INTO trade_events (trade_id, strategy, from_state, to_state, detail, actor)
               SELECT id, %(strategy)s, NULL, 'PENDING', %(detail)s, %(actor)s FROM inserted)
           SELECT id, vault FROM inserted""",
        {"strategy": template.strategy, "lead": template.lead_signature, "lead_trader": template.lead_trader,
         "input": template.input_mint, "output": template.output_mint, "slippage": template.max_slippage_bps,
         "copytrade": template.copytrade, "detail": detail, "actor": actor, "vaults": chosen,
         "amounts": [sizes.get(v, template.amount) for v in chosen],
         "notionals": [notional_of.get(v, template.notional_usd) for v in chosen]})
    results = {r["vault"]: AdmitResult(trade_id=r["id"], created=True, existing_state=None) for r in inserted}
    if len(results) < len(chosen):
        # a re-admission: a new statement, so a new snapshot, that sees a racing admission's rows the
        # insert waited on
        existing = yield from rows("SELECT vault, id, state FROM trades WHERE strategy = %s AND lead_signature = %s",
                                   (template.strategy, template.lead_signature))
        for r in existing:
            if r["vault"] not in results:
                results[r["vault"]] = AdmitResult(trade_id=r["id"], created=False,
                                                  existing_state=TradeState(r["state"]))
        missing = [v for v in chosen if v not in results]
        if missing:  # cannot happen: ON CONFLICT saw a committed row with this key
            raise LedgerError(f"the trade of {template.lead_signature} for {missing[0]} conflicted but cannot "
                              "be read back")
    return FanOut({vault: results[vault] for vault in chosen})


def fanout_counts(strategy: str, lead_signature: str) -> Step[FanOutCounts]:
    """The lead swap's trades of ``strategy`` per state, in one aggregate query."""
    found = yield from rows("SELECT state, count(*) AS n, max(finished_at) AS last_finished_at FROM trades "
                            "WHERE strategy = %s AND lead_signature = %s GROUP BY state", (strategy, lead_signature))
    per_state = {TradeState(r["state"]): int(r["n"]) for r in found}
    finished = [r["last_finished_at"] for r in found if TradeState(r["state"]).is_terminal]
    done = bool(found) and all(TradeState(r["state"]).is_terminal for r in found) and all(finished)
    return FanOutCounts(total=sum(per_state.values()), pending=per_state.get(TradeState.PENDING, 0),
                        submitted=per_state.get(TradeState.SUBMITTED, 0),
                        confirmed=per_state.get(TradeState.CONFIRMED, 0), failed=per_state.get(TradeState.FAILED, 0),
                        last_finished_at=max(finished) if done else None)


def fanout_trade_ids(strategy: str, lead_signature: str) -> Step[list[int]]:
    """The ids of the lead swap's trades of ``strategy`` (for the mirror's wake-ups)."""
    found = yield from rows("SELECT id FROM trades WHERE strategy = %s AND lead_signature = %s ORDER BY id",
                            (strategy, lead_signature))
    return [int(r["id"]) for r in found]
