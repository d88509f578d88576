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

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from xorj.domain.risk import DailyUsage, RiskDecision, VaultLimits, check_vault, globally_halted, utc_day_start
from xorj.ledger.records import VaultActivity
from xorj.ledger.rows import Row
from xorj.ledger.statements import Step, one, rowcount

# The pure risk check with everything but the vault's usage already bound (see xorj.domain.risk).
RiskCheck = Callable[[DailyUsage], RiskDecision]

# First key of every per-vault lock (the two-int advisory key space, apart from the migration lock's).
VAULT_LOCK_SPACE = 0x786F726A  # "xorj"

_COUNTED_SINCE = """
SELECT coalesce(sum(coalesce(risk_reserved_usd, notional_usd)), 0) AS volume, count(*) AS n
  FROM trades
 WHERE vault = %(vault)s
   AND (risk_reserved_at >= %(since)s OR (risk_reserved_at IS NULL AND submitted_at >= %(since)s))
   AND (state = 'PENDING' OR submitted_at IS NOT NULL)
"""


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
    if row is None:
        return None
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
