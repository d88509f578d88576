"""Vaults (pure parts): the Vault model's rules (the operator's twin of the CRD's), its status
(Registered/Ready with the reason), a many-vault CopyTrade's aggregate status, and the domain's
per-vault limits (only ever tightening the strategy's)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from xorj.controller import crdgen
from xorj.controller.copytrade import status as ct_status
from xorj.controller.models import ConditionStatus, CopyTradeStatus, TradingStrategySpec, VaultSpec
from xorj.controller.vault import status as st
from xorj.controller.vault.reconcile import BindingCheck, binding_check
from xorj.domain.risk import DailyUsage, RiskLimits, RiskRule, VaultLimits, check_vault
from xorj.domain.trades import TradeState
from xorj.errors import InvalidInputError
from xorj.ledger.vaults import FanOutCounts

from .factories import PUBKEY_A, strategy_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _vault(**overrides) -> VaultSpec:
    raw = {"strategy": "careful", "publicKey": PUBKEY_A, "secretName": "vault-a", **overrides}
    return VaultSpec.model_validate(raw)


def test_a_vault_spec_is_read_with_defaults_and_refuses_bad_fields_by_name() -> None:
    vault = _vault(limits={"maxDailyTrades": 3})
    assert (vault.secret_key, vault.paused, vault.limits.max_daily_trades) == ("keypair.json", False, 3)
    for bad, field in [({"publicKey": "2" * 32}, "not a public key"), ({"strategy": "Not_A_Name"}, "strategy"),
                       ({"limits": {"maxDailyTrades": 0}}, "maxDailyTrades"),
                       ({"limits": {"maxTradeNotionalUsd": -1}}, "maxTradeNotionalUsd"),
                       ({"secretNmae": "typo"}, "secretNmae")]:
        with pytest.raises(ValidationError) as err:
            _vault(**bad)
        assert field in str(err.value)


def test_the_vault_crd_keeps_strategy_and_key_immutable_and_reads_well_at_scale() -> None:
    doc = crdgen.crd(crdgen.VAULT)["spec"]
    version = doc["versions"][0]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert {(r["rule"], r["fieldPath"]) for r in rules} == {
        ("self.strategy == oldSelf.strategy", ".strategy"), ("self.publicKey == oldSelf.publicKey", ".publicKey")}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == \
        ["Strategy", "PublicKey", "Paused", "Ready", "Age"]
    assert version["selectableFields"] == [{"jsonPath": ".spec.strategy"}]


def test_a_vaults_ready_says_paused_active_or_that_looser_limits_have_no_effect() -> None:
    strategy = TradingStrategySpec.model_validate(strategy_spec(risk={"maxDailyTrades": 10}))
    assert st.registered_outcome(_vault(paused=True), strategy).reason == st.PAUSED
    assert not st.registered_outcome(_vault(paused=True), strategy).ready
    assert st.registered_outcome(_vault(limits={"maxDailyTrades": 5}), strategy).reason == st.ACTIVE
    looser = st.registered_outcome(_vault(limits={"maxDailyTrades": 50}), strategy)
    assert looser.ready and looser.reason == st.LIMITS_NOT_TIGHTER and "spec.limits.maxDailyTrades" in looser.message

    refused = st.VaultOutcome(False, "SecretNotBound", "Secret 'vault-a' is not bound")
    status = st.vault_status(outcome=refused, previous=None, generation=2, now=T0)
    registered, ready = status.conditions
    assert (registered.type, registered.status, ready.status, ready.reason) == \
        (st.REGISTERED, ConditionStatus.FALSE, ConditionStatus.FALSE, "SecretNotBound")
    later = st.vault_status(outcome=refused, previous=status, generation=2, now=datetime(2026, 2, 1, tzinfo=UTC))
    assert later == status  # nothing changed: an identical status, no PATCH


@pytest.mark.parametrize("counts, phase, reason", [
    (FanOutCounts(3, pending=1, submitted=1, confirmed=1), TradeState.SUBMITTED, "InProgress"),
    (FanOutCounts(3, pending=2, confirmed=1), TradeState.PENDING, "InProgress"),
    (FanOutCounts(3, confirmed=3), TradeState.CONFIRMED, "Confirmed"),
    (FanOutCounts(3, confirmed=2, failed=1), TradeState.FAILED, "PartiallyConfirmed"),
    (FanOutCounts(3, failed=3), TradeState.FAILED, "Failed"),
])
def test_a_many_vault_copytrade_shows_counts_and_an_aggregate_phase(counts, phase, reason) -> None:
    own = CopyTradeStatus(phase=TradeState.CONFIRMED, trade_id="7", attempt_count=1, observed_generation=1)
    status = ct_status.with_fanout(own, counts, now=T0)
    assert status.phase is phase and status.vaults is not None
    assert (status.vaults.total, status.vaults.confirmed, status.vaults.summary) == \
        (3, counts.confirmed, f"{counts.confirmed}/3")
    assert (status.trade_id, status.attempt_count) == ("7", 1)  # its own vault's trade, as before
    terminal = next(c for c in status.conditions if c.type == ct_status.TERMINAL)
    assert terminal.reason == reason and terminal.status == (
        ConditionStatus.TRUE if phase.is_terminal else ConditionStatus.FALSE)


def test_a_many_vault_copytrades_ttl_counts_from_its_last_vaults_trade() -> None:
    """Its own vault's trade finished at T0, the last vault's 10 minutes later: with a 60 s TTL the
    CopyTrade is kept until 60 s after that last finish (not deleted at T0 + 60 s)."""
    from datetime import timedelta

    last = T0 + timedelta(minutes=10)
    own = CopyTradeStatus(phase=TradeState.CONFIRMED, trade_id="7", finished_at=T0, observed_generation=1)
    running = ct_status.with_fanout(own, FanOutCounts(2, submitted=1, confirmed=1), now=T0)
    assert running.finished_at is None  # not finished while a vault's trade is out: no TTL yet
    assert ct_status.ttl_remaining(running.finished_at, 60, last) is None
    done = ct_status.with_fanout(own, FanOutCounts(2, confirmed=2, last_finished_at=last), now=last)
    assert done.finished_at == last
    assert ct_status.ttl_remaining(done.finished_at, 60, last + timedelta(seconds=20)) == 40.0
    assert ct_status.ttl_remaining(done.finished_at, 60, last + timedelta(seconds=61)) == 0.0


def test_a_one_vault_copytrade_status_is_unchanged() -> None:
    own = CopyTradeStatus(phase=TradeState.PENDING, trade_id="7")
    assert ct_status.with_fanout(own, FanOutCounts(1, pending=1), now=T0) == own
    assert ct_status.with_fanout(own, None, now=T0) == own


def test_a_vaults_limits_refuse_on_top_of_the_strategys_and_name_the_vault() -> None:
    limits = VaultLimits(max_trade_notional_usd=Decimal(100), max_daily_trades=2, max_daily_volume_usd=Decimal(150))
    assert check_vault(limits, Decimal(50), DailyUsage()).allowed
    refusals = [(Decimal(101), DailyUsage(), RiskRule.MAX_TRADE_NOTIONAL),
                (Decimal(10), DailyUsage(Decimal(0), 2), RiskRule.MAX_DAILY_TRADES),
                (Decimal(60), DailyUsage(Decimal(100), 1), RiskRule.MAX_DAILY_VOLUME)]
    for notional, usage, rule in refusals:
        decision = check_vault(limits, notional, usage)
        assert not decision.allowed and decision.rule is rule and "the vault's limit" in decision.message
    assert check_vault(VaultLimits(paused=True), Decimal(1), DailyUsage()).rule is RiskRule.VAULT_PAUSED
    assert check_vault(VaultLimits(removed=True), Decimal(1), DailyUsage()).message.endswith("removed")
    strategy = RiskLimits(max_daily_trades=5, max_trade_notional_usd=Decimal(100))
    assert VaultLimits(max_daily_trades=9, max_trade_notional_usd=Decimal(50)).looser_than(strategy) == \
        ["maxDailyTrades"]
    with pytest.raises(InvalidInputError, match="vault.max_daily_trades"):
        VaultLimits(max_daily_trades=0)


def test_one_wakeup_serves_every_trade_of_a_fanout() -> None:
    from xorj.controller.runtime import Wakeups

    wakeups = Wakeups()
    event = wakeups.register_many([1, 2, 3])
    wakeups.wake(3, at=1.0)
    assert event.is_set()
    event.clear()
    wakeups.unregister_many([1, 2, 3], event)
    wakeups.wake(2, at=2.0)
    assert not event.is_set() and wakeups.take_notified_at(3) is None


def test_the_binding_recheck_keeps_only_a_vaults_secret_and_verdict_and_skips_what_is_being_reconciled() -> None:
    outcome = st.VaultOutcome(False, "SecretNotBound", "not bound")
    status = st.vault_status(outcome=outcome, previous=None, generation=3, now=T0).to_wire()
    body = {"metadata": {"name": "v1", "uid": "u1", "generation": 3},
            "spec": {"strategy": "careful", "publicKey": PUBKEY_A, "secretName": "vault-a"}, "status": status}
    assert binding_check(body) == BindingCheck("v1", "u1", "vault-a", registered=False, ready_reason="SecretNotBound")
    changed = {**body, "metadata": {**body["metadata"], "generation": 4}}  # its reconcile reads the Secret
    deleting = {**body, "metadata": {**body["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert binding_check(changed) is None and binding_check(deleting) is None
