"""Many vaults per strategy in the real ledger (migration 0013): one admission fans out into one trade
per active vault in ONE transaction (all or nothing), a re-admission adds nothing, a paused, removed or
later-registered vault gets none, a vault's own limits tighten the risk gate, and removing a vault
cancels its PENDING trades while a SUBMITTED one finishes."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from xorj.domain.risk import DailyUsage, RiskLimits, RiskRule, TradeRisk, VaultLimits, check_trade
from xorj.domain.trades import ReasonCode, TradeState
from xorj.ledger import Ledger, transactions, vaults

from .helpers import current_token, intent, raw_tx

STRATEGY = "ns/careful"
OWN = "OwnVault1111111111111111111111111111111111"  # the strategy's spec.vault


def _vault(n: int) -> str:
    return f"Vault{n:04d}" + "1" * 34


def _register(ledger: Ledger, n: int, **limits) -> vaults.Registration:
    return ledger.run(vaults.register_vault(STRATEGY, _vault(n), vault_object=f"ns/v{n}",
                                            limits=VaultLimits(**limits)))


def _template(n: int = 1, **kwargs):
    return intent(n, strategy=STRATEGY, vault=OWN, **kwargs)


def _trades_of(ledger_dsn: str, lead_signature: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(ledger_dsn) as conn:
        found = conn.execute("SELECT vault, amount, state FROM trades WHERE strategy = %s AND lead_signature = %s",
                             (STRATEGY, lead_signature)).fetchall()
    return {vault: (int(amount), state) for vault, amount, state in found}


def test_one_admission_fans_out_to_100_vaults_in_one_transaction_or_not_at_all(ledger: Ledger, ledger_dsn: str):
    for n in range(99):
        assert _register(ledger, n).conflict is None
    # one vault's trade breaks a constraint (amount > 0): the whole fan-out is rolled back
    with pytest.raises(Exception):  # noqa: B017 - the driver's constraint error, whatever its class
        ledger.run(vaults.admit_fanout(_template(), amounts={_vault(98): 0}))
    assert _trades_of(ledger_dsn, "leadsig-1") == {}

    fanned = ledger.run(vaults.admit_fanout(_template(), amounts={_vault(7): 42}))
    stored = _trades_of(ledger_dsn, "leadsig-1")
    assert fanned.created == 100 and set(stored) == {OWN, *(_vault(n) for n in range(99))}
    assert {state for _, state in stored.values()} == {"PENDING"}
    assert stored[_vault(7)][0] == 42 and stored[_vault(8)][0] == 1_000_000  # each vault's own size

    again = ledger.run(vaults.admit_fanout(_template()))
    assert again.created == 0 and len(_trades_of(ledger_dsn, "leadsig-1")) == 100
    assert {r.trade_id for r in again.results.values()} == {r.trade_id for r in fanned.results.values()}
    assert ledger.run(vaults.fanout_counts(STRATEGY, "leadsig-1")) == vaults.FanOutCounts(total=100, pending=100)


def test_paused_removed_and_later_vaults_get_no_trade(ledger: Ledger, ledger_dsn: str):
    _register(ledger, 1)
    _register(ledger, 2, paused=True)
    _register(ledger, 3)
    ledger.run(vaults.remove_vault(STRATEGY, _vault(3), vault_object="ns/v3", detail="Vault ns/v3 deleted"))
    ledger.run(vaults.admit_fanout(_template(1)))
    assert set(_trades_of(ledger_dsn, "leadsig-1")) == {OWN, _vault(1)}

    _register(ledger, 4)  # registered after lead swap 1 was admitted
    _register(ledger, 2)  # resumed after it
    ledger.run(vaults.admit_fanout(_template(1)))  # a re-admission gives them nothing old
    assert set(_trades_of(ledger_dsn, "leadsig-1")) == {OWN, _vault(1)}
    ledger.run(vaults.admit_fanout(_template(2)))  # a new lead swap reaches them
    assert set(_trades_of(ledger_dsn, "leadsig-2")) == {OWN, _vault(1), _vault(2), _vault(4)}
    assert ledger.run(vaults.active_vault_count(STRATEGY, OWN)) == 4
    rows = {r.pubkey: r for r in ledger.run(vaults.list_vaults(STRATEGY))}
    assert rows[OWN].source == "strategy" and rows[_vault(3)].removed_at is not None and not rows[_vault(3)].active
    assert rows[_vault(2)].active_since > rows[_vault(2)].registered_at  # resumed: active from then on
    assert rows[_vault(1)].active_since == rows[_vault(1)].registered_at


def test_a_key_held_by_another_vault_object_or_the_strategy_is_refused(ledger: Ledger):
    _register(ledger, 1)
    clash = ledger.run(vaults.register_vault(STRATEGY, _vault(1), vault_object="ns/other",
                                             limits=VaultLimits(max_daily_trades=1)))
    assert clash.conflict == "ns/v1" and clash.row.max_daily_trades is None  # nothing written
    ledger.run(vaults.admit_fanout(_template()))
    own = ledger.run(vaults.register_vault(STRATEGY, OWN, vault_object="ns/own", limits=VaultLimits()))
    assert own.conflict is not None and "spec.vault" in own.conflict


def test_removing_a_vault_cancels_its_pending_trades_and_leaves_a_submitted_one(ledger: Ledger):
    _register(ledger, 1)
    first = ledger.run(vaults.admit_fanout(_template(1))).results[_vault(1)].trade_id
    second = ledger.run(vaults.admit_fanout(_template(2))).results[_vault(1)].trade_id
    other = ledger.run(vaults.admit_fanout(_template(2))).results[OWN].trade_id
    assert first in {t.trade_id for t in ledger.claim_trades(STRATEGY, "ex", limit=10)}
    ledger.record_attempt(first, "ex", "sig-first", raw_tx("first"), 100, 50,
                          fencing_token=current_token(ledger, first))

    removal = ledger.run(vaults.remove_vault(STRATEGY, _vault(1), vault_object="ns/v1",
                                             detail="Vault ns/v1 deleted: vault removed"))
    assert removal.cancelled == [second] and removal.submitted == 1
    cancelled = ledger.get_trade(second)
    assert (cancelled.state, cancelled.reason) == (TradeState.FAILED, ReasonCode.CANCELLED)
    assert "vault removed" in (cancelled.detail or "")
    assert ledger.get_trade(first).state is TradeState.SUBMITTED  # it finishes
    assert ledger.get_trade(other).state is TradeState.PENDING  # another vault's trade is untouched
    # the object that does not own the row removes nothing
    assert ledger.run(vaults.remove_vault(STRATEGY, OWN, vault_object="ns/v1", detail="x")).cancelled == []


def test_a_fanouts_last_finished_at_is_its_last_trades_and_none_while_one_is_open(ledger: Ledger):
    """What a many-vault CopyTrade's TTL counts from: the finish of the last of its vaults' trades."""
    _register(ledger, 1)
    fanned = ledger.run(vaults.admit_fanout(_template(1))).results
    own, other = fanned[OWN].trade_id, fanned[_vault(1)].trade_id
    first = ledger.run(transactions.cancel_trade(own, "done first"))
    assert ledger.run(vaults.fanout_counts(STRATEGY, "leadsig-1")).last_finished_at is None  # one still PENDING
    last = ledger.run(transactions.cancel_trade(other, "done last"))
    assert first.finished_at is not None and last.finished_at is not None and last.finished_at > first.finished_at
    counts = ledger.run(vaults.fanout_counts(STRATEGY, "leadsig-1"))
    assert (counts.failed, counts.last_finished_at) == (2, last.finished_at)


@pytest.mark.parametrize("overrides, rule", [
    ({"max_daily_trades": 1}, RiskRule.MAX_DAILY_TRADES),
    ({"max_trade_notional_usd": Decimal(5)}, RiskRule.MAX_TRADE_NOTIONAL),
    ({"max_daily_volume_usd": Decimal(15)}, RiskRule.MAX_DAILY_VOLUME),
    ({"paused": True}, RiskRule.VAULT_PAUSED),
], ids=["trades", "notional", "volume", "paused"])
def test_a_vaults_own_limits_tighten_the_risk_gate(ledger: Ledger, overrides: dict, rule: RiskRule):
    _register(ledger, 1, **{k: v for k, v in overrides.items() if k != "paused"})
    ids = [ledger.run(vaults.admit_fanout(_template(n))).results[_vault(1)].trade_id for n in (1, 2)]
    if overrides.get("paused"):
        _register(ledger, 1, paused=True)  # paused after admission: its PENDING trades send nothing
    ledger.claim_trades(STRATEGY, "ex", limit=10)
    limits = RiskLimits(max_daily_trades=10, max_daily_volume_usd=Decimal(1000))  # the strategy's: loose

    def decide(usage: DailyUsage):
        return check_trade(limits, TradeRisk(notional_usd=Decimal(10), vault_value_usd=Decimal(0),
                                             output_position_usd=None), usage)

    decisions = [ledger.run(transactions.reserve_daily_share(i, "ex", Decimal(10), decide,
                                                            fencing_token=current_token(ledger, i))) for i in ids]
    refused = [d for d in decisions if not d.allowed]
    assert refused and refused[-1].rule is rule and "vault" in refused[-1].message
    # the strategy's own vault, with no override, is governed by the strategy's limits alone
    own = ledger.run(vaults.admit_fanout(_template(1))).results[OWN].trade_id
    assert ledger.run(transactions.reserve_daily_share(own, "ex", Decimal(10), decide,
                                                      fencing_token=current_token(ledger, own))).allowed


def test_a_watcher_signal_fans_out_in_its_accept_transaction(ledger: Ledger, ledger_dsn: str):
    from xorj.domain.copy_signals import CopyDecision, LeadSwap
    from xorj.ledger.lead_signals import FollowerOutcome, LeadSignalStore

    for n in range(3):
        _register(ledger, n)
    _register(ledger, 3, paused=True)
    swap = LeadSwap(leader="LeadTrader1111", signature="sig-w", slot=10, block_time=1_800_000_000,
                    sold_mint="So11111111111111111111111111111111111111112", sold_amount=5_000_000, sold_decimals=9,
                    bought_mint="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", bought_amount=10**6,
                    bought_decimals=6, sold_balance_before=9_000_000)
    outcome = FollowerOutcome(STRATEGY, OWN, CopyDecision(swap.sold_mint, swap.bought_mint, 2_000_000, Decimal(2),
                                                          detail="1 x leader"), copytrade="ns/copy-w")
    store = LeadSignalStore(ledger)
    accepted = store.accept(swap, "webhook", [outcome], advance_cursor=False)
    stored = _trades_of(ledger_dsn, "sig-w")
    assert set(stored) == {OWN, _vault(0), _vault(1), _vault(2)}  # the paused vault gets none
    assert accepted.trade_ids == {STRATEGY: ledger.get_trade(accepted.trade_ids[STRATEGY]).trade_id}
    assert ledger.get_trade(accepted.trade_ids[STRATEGY]).vault == OWN
    [copy] = store.copies()
    assert copy.trade_id == accepted.trade_ids[STRATEGY]  # the CopyTrade shows the strategy's own vault's
    assert not store.accept(swap, "poll", [outcome], advance_cursor=True).accepted
    assert len(_trades_of(ledger_dsn, "sig-w")) == 4


def test_an_executor_login_reads_only_its_namespaces_vault_rows_and_writes_none(ledger: Ledger, executor_login):
    _register(ledger, 1, max_daily_trades=1)  # namespace "ns"
    ledger.run(vaults.register_vault("other/strategy", _vault(2), vault_object="other/v2", limits=VaultLimits()))
    ids = [ledger.run(vaults.admit_fanout(_template(n))).results[_vault(1)].trade_id for n in (1, 2)]
    login = executor_login("ns")
    with psycopg.connect(login.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT strategy, pubkey FROM vaults ORDER BY pubkey").fetchall() == \
            [(STRATEGY, OWN), (STRATEGY, _vault(1))]  # not the other namespace's
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE vaults SET max_daily_trades = 100")
    with Ledger.connect(login.dsn, apply_migrations=False, max_size=2) as ex:
        claimed = {t.trade_id: t.fencing_token for t in ex.claim_trades(STRATEGY, "ex", limit=10)}
        limits = RiskLimits()

        def decide(usage: DailyUsage):
            return check_trade(limits, TradeRisk(notional_usd=Decimal(10), vault_value_usd=Decimal(0),
                                                 output_position_usd=None), usage)

        first, second = (ex.reserve_daily_share(i, "ex", Decimal(10), decide, fencing_token=claimed[i]) for i in ids)
    assert first.allowed and not second.allowed and second.rule is RiskRule.MAX_DAILY_TRADES  # the vault's own


def test_a_1000_vault_fanout_writes_each_trade_and_its_audit_row_once_in_key_order(ledger: Ledger, ledger_dsn: str):
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:  # 999 Vault rows in one statement
        conn.execute("INSERT INTO vaults (strategy, pubkey, source, vault_object) "
                     "SELECT %s, 'Vault' || lpad(n::text, 4, '0') || repeat('1', 34), 'vault', 'ns/v' || n "
                     "FROM generate_series(0, 998) AS n", (STRATEGY,))
    fanned = ledger.run(vaults.admit_fanout(_template(), actor="watcher", detail="copied from poll",
                                            amounts={_vault(5): 5}, notionals={_vault(5): Decimal("0.5")}))
    assert fanned.created == 1000 and list(fanned.results)[0] == OWN
    ids = [r.trade_id for r in fanned.results.values()]
    assert ids == sorted(ids) and list(fanned.results)[1:] == sorted(_vault(n) for n in range(999))
    with psycopg.connect(ledger_dsn) as conn:
        events = conn.execute("SELECT t.vault, e.from_state, e.to_state, e.actor, e.detail, t.amount, t.notional_usd "
                              "FROM trade_events e JOIN trades t ON t.id = e.trade_id "
                              "WHERE t.lead_signature = 'leadsig-1'").fetchall()
    assert len(events) == 1000 and {e[1:5] for e in events} == {(None, "PENDING", "watcher", "copied from poll")}
    sized = {e[0]: (e[5], e[6]) for e in events}
    assert sized[_vault(5)] == (5, Decimal("0.5")) and sized[_vault(6)] == (1_000_000, Decimal(10))
    again = ledger.run(vaults.admit_fanout(_template()))
    assert again.created == 0 and [r.trade_id for r in again.results.values()] == ids
    assert {r.existing_state for r in again.results.values()} == {TradeState.PENDING}


def test_sized_only_admits_just_the_vaults_given_an_amount(ledger: Ledger, ledger_dsn: str):
    for n in range(3):
        _register(ledger, n)
    fanned = ledger.run(vaults.admit_fanout(_template(), amounts={_vault(0): 7, _vault(2): 9}, sized_only=True))
    assert set(fanned.results) == {_vault(0), _vault(2)}  # the own vault and vault 1 were sized to nothing
    assert _trades_of(ledger_dsn, "leadsig-1") == {_vault(0): (7, "PENDING"), _vault(2): (9, "PENDING")}


def test_a_removal_waits_for_a_running_admission_then_cancels_what_it_admitted(ledger: Ledger, ledger_dsn: str):
    import threading

    from xorj.ledger import statements

    _register(ledger, 1)
    with psycopg.connect(ledger_dsn) as admitting:  # the admission's transaction, left open
        statements.run(admitting, vaults.admit_fanout(_template()))
        removal: dict[str, vaults.Removal] = {}
        remover = threading.Thread(target=lambda: removal.setdefault("done", ledger.run(vaults.remove_vault(
            STRATEGY, _vault(1), vault_object="ns/v1", detail="Vault ns/v1 deleted"))))
        remover.start()
        remover.join(1.0)
        assert remover.is_alive(), "the removal must wait for the admission holding the vault row FOR SHARE"
        admitting.commit()
    remover.join(30)
    assert removal["done"].cancelled and _trades_of(ledger_dsn, "leadsig-1")[_vault(1)][1] == "FAILED"
    assert _trades_of(ledger_dsn, "leadsig-1")[OWN][1] == "PENDING"
