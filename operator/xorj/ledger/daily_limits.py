"""Daily risk limits in the ledger: which trades count against a vault's daily volume and trade count,
and the check-and-reserve that approves a trade and counts it in one step.

A trade counts from the moment the risk gate approves it (``risk_reserved_at``), not from its first
send: otherwise two executors (or two workers of one) both read the usage just below a limit, both
pass, and both send. It stops counting if it fails before any send, as nothing was traded. Trades sent
before approvals were recorded count from their first send.

A check-and-reserve is serialised per vault by a transaction-scoped advisory lock keyed on the vault,
taken before usage is read: under READ COMMITTED the read then sees every reservation committed by
earlier holders, and the lock is only released by the COMMIT that makes this one visible. Different
vaults do not wait for each other (unless their keys collide, which costs only a short wait).

Functions here are transaction steps (:mod:`xorj.ledger.statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from xorj.domain.risk import (
    DailyUsage,
    RiskCheck,
    RiskDecision,
    VaultLimits,
    check_vault,
    globally_halted,
    utc_day_start,
)
from xorj.ledger.records import VaultActivity
from xorj.ledger.rows import Row
from xorj.ledger.statements import Step, one, rowcount, rows

# First key of every per-vault lock (the two-int advisory key space, apart from the migration lock's).
VAULT_LOCK_SPACE = 0x786F726A  # "xorj"

# Which of a vault's trades count against its day (``%(since)s``: the UTC day's start), and how much:
# one rule for a single check (activity) and a batch's (reserve_many).
_COUNTED_USAGE = "coalesce(sum(coalesce(risk_reserved_usd, notional_usd)), 0) AS volume, count(*) AS n"
_COUNTED_TODAY = """(risk_reserved_at >= %(since)s OR (risk_reserved_at IS NULL AND submitted_at >= %(since)s))
   AND (state = 'PENDING' OR submitted_at IS NOT NULL)"""
_COUNTED_SINCE = f"SELECT {_COUNTED_USAGE} FROM trades WHERE vault = %(vault)s AND {_COUNTED_TODAY}"


def activity(vault: str, since: datetime) -> Step[VaultActivity]:
    """What ``vault``'s counted trades since ``since`` add up to."""
    row = yield from one(_COUNTED_SINCE, {"vault": vault, "since": since})
    assert row is not None, "an aggregate without GROUP BY returns one row"
    return VaultActivity(volume_usd=Decimal(row["volume"]), trade_count=row["n"])


def vault_limits(strategy: str, vault: str) -> Step[VaultLimits | None]:
    """The vault's registered overrides and pause (None for a vault with no registry row: a trade
    admitted before migration 0013, which the strategy's limits alone govern)."""
    row = yield from one(
        """SELECT max_trade_notional_usd, max_daily_volume_usd, max_daily_trades, paused,
                  removed_at IS NOT NULL AS removed
             FROM vaults WHERE strategy = %s AND pubkey = %s""", (strategy, vault))
    return None if row is None else _limits_of(row)


def _limits_of(row: Row) -> VaultLimits:
    """A vault registry row's overrides and pause (the columns :func:`vault_limits` selects)."""
    return VaultLimits(max_trade_notional_usd=row["max_trade_notional_usd"],
                       max_daily_volume_usd=row["max_daily_volume_usd"], max_daily_trades=row["max_daily_trades"],
                       paused=row["paused"], removed=row["removed"])


def reserve(trade: Row, notional_usd: Decimal, decide: RiskCheck) -> Step[RiskDecision]:
    """Decide on the locked, lease-checked ``trade`` with its vault's usage today and, if allowed,
    count it at ``notional_usd``. While the cluster-wide halt is on, every check is refused, counted
    trades' next attempts included: the halt row is read in this transaction, so no approval commits
    after the halt did."""
    halt = yield from one("SELECT halted, reason FROM trading_halt WHERE singleton")
    if halt is None or halt["halted"]:  # a missing row is a tampered ledger: fail closed
        return globally_halted(halt["reason"] if halt else "the trading_halt row is missing")
    if trade["risk_reserved_at"] is not None or trade["submitted_at"] is not None:
        # Already counted: its next attempt, or another executor taking it over, is not a new trade.
        return decide(DailyUsage())
    # The transaction's clock is the database's: every executor agrees on which day it is.
    clock = yield from one(
        "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s)), now() AS now", (VAULT_LOCK_SPACE, trade["vault"]))
    assert clock is not None, "a SELECT without FROM returns one row"
    now = clock["now"]
    counted = yield from activity(trade["vault"], utc_day_start(now))
    usage = DailyUsage(counted.volume_usd, counted.trade_count)
    decision = decide(usage)
    if decision.allowed:
        # the vault's own overrides and pause (migration 0013), on top of the strategy's limits
        overrides = yield from vault_limits(trade["strategy"], trade["vault"])
        if overrides is not None:
            decision = check_vault(overrides, notional_usd, usage)
    if decision.allowed:
        yield from rowcount(
            "UPDATE trades SET risk_reserved_at = now(), risk_reserved_usd = %s, updated_at = now() WHERE id = %s",
            (notional_usd, trade["trade_id"]),
        )
    return decision


@dataclass(frozen=True, eq=False)
class BatchCheck:
    """One check-and-reserve of a batch (:func:`reserve_many`): the locked, lease-checked trade row,
    the notional it counts at and the pure risk check."""

    trade: Row
    notional_usd: Decimal
    decide: RiskCheck


def reserve_many(checks: Sequence[BatchCheck]) -> Step[list[RiskDecision]]:
    """:func:`reserve` for a batch of locked, lease-checked trades in four statements, whatever the
    batch's size (one trade row appears once). The halt is read and every vault's advisory lock is
    taken in one statement, in the order of the lock keys (so two batches sharing vaults cannot
    deadlock); every vault's usage and registry row are read in a second statement, after the locks
    (READ COMMITTED: its snapshot sees every reservation committed by earlier holders); the checks
    run in order, each trade of a vault seeing the earlier ones of the batch counted; and every
    approved trade is counted in one UPDATE. The result is each check's decision, in order."""
    to_count = sorted({c.trade["vault"] for c in checks
                       if c.trade["risk_reserved_at"] is None and c.trade["submitted_at"] is None})
    state = yield from one(
        """SELECT (SELECT halted FROM trading_halt WHERE singleton) AS halted,
                  (SELECT reason FROM trading_halt WHERE singleton) AS reason,
                  (SELECT count(*) FROM trading_halt WHERE singleton) AS present,
                  now() AS now,
                  (SELECT count(*) FROM (
                       SELECT pg_advisory_xact_lock(%(space)s::integer, key)
                         FROM (SELECT DISTINCT hashtext(v) AS key FROM unnest(%(vaults)s::text[]) AS v
                                ORDER BY key) AS keys) AS taken) AS locks""",
        {"space": VAULT_LOCK_SPACE, "vaults": to_count})
    assert state is not None, "a SELECT without FROM returns one row"
    if not state["present"] or state["halted"]:  # a missing row is a tampered ledger: fail closed
        why = state["reason"] if state["present"] else "the trading_halt row is missing"
        return [globally_halted(why) for _ in checks]
    since = utc_day_start(state["now"])
    pairs = sorted({(c.trade["strategy"], c.trade["vault"]) for c in checks if c.trade["vault"] in to_count})
    found = yield from rows(
        f"""SELECT k.strategy, k.vault, u.volume, u.n, v.pubkey IS NOT NULL AS registered,
                   v.max_trade_notional_usd, v.max_daily_volume_usd, v.max_daily_trades, v.paused,
                   v.removed_at IS NOT NULL AS removed
              FROM unnest(%(strategies)s::text[], %(vaults)s::text[]) AS k(strategy, vault)
             CROSS JOIN LATERAL (SELECT {_COUNTED_USAGE} FROM trades WHERE vault = k.vault AND {_COUNTED_TODAY}) AS u
              LEFT JOIN vaults v ON v.strategy = k.strategy AND v.pubkey = k.vault""",
        {"strategies": [p[0] for p in pairs], "vaults": [p[1] for p in pairs], "since": since})
    usage = {r["vault"]: DailyUsage(Decimal(r["volume"]), r["n"]) for r in found}
    overrides = {(r["strategy"], r["vault"]): _limits_of(r) for r in found if r["registered"]}
    decisions: list[RiskDecision] = []
    counted: list[BatchCheck] = []
    for check in checks:
        trade = check.trade
        if trade["risk_reserved_at"] is not None or trade["submitted_at"] is not None:
            decisions.append(check.decide(DailyUsage()))
            continue
        today = usage[trade["vault"]]
        decision = check.decide(today)
        vault = overrides.get((trade["strategy"], trade["vault"]))
        if decision.allowed and vault is not None:
            decision = check_vault(vault, check.notional_usd, today)
        if decision.allowed:
            # the next trade of this vault in the batch sees this one counted, as after its commit
            usage[trade["vault"]] = DailyUsage(today.volume_usd + check.notional_usd, today.trade_count + 1)
            counted.append(check)
        decisions.append(decision)
    if counted:
        yield from rowcount(
            """UPDATE trades AS t SET risk_reserved_at = now(), risk_reserved_usd = r.usd, updated_at = now()
                 FROM unnest(%s::bigint[], %s::numeric[]) AS r(id, usd) WHERE t.id = r.id""",
            ([c.trade["trade_id"] for c in counted], [c.notional_usd for c in counted]))
    return decisions
