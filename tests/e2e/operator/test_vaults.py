"""Vaults on the real API server and ledger: Vault objects become rows of the ledger's vault registry
(only with a Secret bound to their strategy), one CopyTrade of a 3-vault strategy becomes 3 trades
whose states its status counts as an executor (the ledger driver) moves them, deleting a Vault
cancels its PENDING trade, and the API server refuses invalid Vaults naming the field and rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from solders.keypair import Keypair

from tests.polling import wait_for
from xorj.domain.trades import ReasonCode, TradeState
from xorj.ledger import Ledger, vaults

from .conftest import Kubectl
from .ledger_driver import LedgerDriver
from .manifests import VAULT, copytrade, secret, signature, strategy, vault

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def _ready_reason(kube: Kubectl, name: str, reason: str):
    def check():
        obj = kube.get("vault", name)
        conds = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions", [])}
        return obj if conds.get("Ready", {}).get("reason") == reason else None
    return check


class _NotYet(dict):
    """A status that does not match yet: falsy for wait_for, and shown in its timeout message."""

    def __bool__(self) -> bool:
        return False


def _vault_counts(kube: Kubectl, name: str, **expected: int):
    def check():
        status = (kube.get("copytrade", name) or {}).get("status") or {}
        counts = status.get("vaults") or {}
        return status if all(counts.get(k) == v for k, v in expected.items()) else _NotYet(status)
    return check


def test_vaults_fan_a_copytrade_out_and_its_status_counts_their_trades(kube: Kubectl, operators,
                                                                        ledger: Ledger) -> None:
    keys = [str(Keypair().pubkey()) for _ in range(3)]
    kube.apply(secret("unbound-keypair", {"keypair.json": "[]"}))
    operators()
    kube.apply(strategy("alpha"))
    for n, key in enumerate(keys[:2], start=1):
        kube.apply(vault(f"v{n}", "alpha", key, limits={"maxDailyTrades": 5}))
    kube.apply(vault("v3", "alpha", keys[2], secret_name="unbound-keypair"))
    for name in ("v1", "v2"):
        wait_for(_ready_reason(kube, name, "Active"), 60, f"Vault {name} registered")
    refused = wait_for(_ready_reason(kube, "v3", "SecretNotBound"), 60, "Vault v3 refused")
    assert "trading.xorj.io/strategies" in refused["status"]["conditions"][-1]["message"]
    key = f"{kube.namespace}/alpha"
    rows = {r.pubkey: r for r in ledger.run(vaults.list_vaults(key))}
    assert set(rows) == {keys[0], keys[1]} and rows[keys[0]].max_daily_trades == 5
    listed = kube.run("get", "vaults", "--field-selector", "spec.strategy=alpha").stdout
    assert keys[0] in listed and "Active" in listed

    kube.apply(copytrade("ct1", "alpha", signature("lead-vaults")))
    admitted = wait_for(_vault_counts(kube, "ct1", total=3, pending=3), 60, "ct1 fanned out to 3 vaults")
    assert admitted["phase"] == "PENDING" and admitted["admission"] == "Admitted"
    trades = {t.vault: t for t in LedgerDriver(ledger, key).ledger.claim_trades(key, "probe", limit=10,
                                                                                lease_seconds=0.1)}
    assert set(trades) == {VAULT, keys[0], keys[1]}  # the strategy's own vault and each registered Vault
    assert admitted["tradeId"] == str(trades[VAULT].trade_id)  # tradeId: its own vault's trade, as before

    kube.run("delete", "vault", "v2", "--wait=true", "--timeout=60s")
    cancelled = ledger.get_trade(trades[keys[1]].trade_id)
    assert (cancelled.state, cancelled.reason) == (TradeState.FAILED, ReasonCode.CANCELLED)
    assert "vault removed" in (cancelled.detail or "")
    wait_for(_vault_counts(kube, "ct1", total=3, pending=2, failed=1), 30, "the cancelled trade counted")

    driver = LedgerDriver(ledger, key)
    wait_for(lambda: len(driver.claim_all()) == 2, 10, "the two PENDING trades claimed")
    first = driver.submit(trades[VAULT].trade_id)
    out = wait_for(_vault_counts(kube, "ct1", submitted=1, pending=1), 30, "one trade SUBMITTED")
    assert out["phase"] == "SUBMITTED"
    driver.confirm(trades[VAULT].trade_id, first)
    driver.confirm(trades[keys[0]].trade_id, driver.submit(trades[keys[0]].trade_id))
    done = wait_for(_vault_counts(kube, "ct1", total=3, confirmed=2, failed=1), 30, "all terminal")
    assert done["phase"] == "FAILED" and done["vaults"]["summary"] == "2/3"
    terminal = next(c for c in done["conditions"] if c["type"] == "Terminal")
    assert (terminal["status"], terminal["reason"]) == ("True", "PartiallyConfirmed")
    assert "2/3" in kube.run("get", "copytrade", "ct1").stdout  # the Vaults printer column


def test_the_api_server_refuses_invalid_vaults_naming_the_field_and_rule(kube: Kubectl) -> None:
    key = str(Keypair().pubkey())
    bad = vault("bad", "alpha", key)
    bad["spec"]["publicKey"] = "0OIl" * 10
    result = kube.apply(bad, check=False)
    assert result.returncode != 0 and "spec.publicKey" in result.stderr
    bad = vault("bad", "alpha", key)
    bad["spec"]["limits"] = {"maxDailyTrades": 0}
    result = kube.apply(bad, check=False)
    assert result.returncode != 0 and "spec.limits.maxDailyTrades" in result.stderr

    kube.apply(vault("good", "alpha", key))
    moved = vault("good", "other", key)
    result = kube.apply(moved, check=False)
    assert result.returncode != 0 and "spec.strategy is immutable" in result.stderr
    rekeyed = vault("good", "alpha", str(Keypair().pubkey()))
    result = kube.apply(rekeyed, check=False)
    assert result.returncode != 0 and "spec.publicKey is immutable" in result.stderr


def test_deleting_a_pending_many_vault_copytrade_cancels_every_vaults_trade(kube: Kubectl, operators,
                                                                            ledger: Ledger) -> None:
    operators()
    kube.apply(strategy("alpha"))
    kube.apply(vault("v1", "alpha", str(Keypair().pubkey())))
    wait_for(_ready_reason(kube, "v1", "Active"), 60, "Vault v1 registered")
    lead = signature("lead-deleted")
    kube.apply(copytrade("ct2", "alpha", lead))
    wait_for(_vault_counts(kube, "ct2", total=2, pending=2), 60, "ct2 fanned out to 2 vaults")
    kube.run("delete", "copytrade", "ct2", "--wait=true", "--timeout=60s")
    key = f"{kube.namespace}/alpha"
    counts = ledger.run(vaults.fanout_counts(key, lead))
    assert (counts.total, counts.failed, counts.pending) == (2, 2, 0) and counts.last_finished_at is not None


def test_a_binding_revoked_on_the_secret_alone_takes_the_vault_out_within_the_recheck_period(
        kube: Kubectl, operators, ledger: Ledger) -> None:
    """Only the Secret changes (its binding annotation removed, as a binder revokes it): the Vault gets
    no event, yet within XORJ_OPERATOR_VAULT_RECHECK_SECONDS it is out of the registry, its PENDING
    trade cancelled, and a new lead swap gives it no trade; bound again, it is back as quickly."""
    public_key = str(Keypair().pubkey())
    kube.apply(secret("v1-keypair", {"keypair.json": "[]"}, bound_to=("alpha",)))
    operators(extra_env={"XORJ_OPERATOR_VAULT_RECHECK_SECONDS": "2"})
    kube.apply(strategy("alpha"))
    kube.apply(vault("v1", "alpha", public_key, secret_name="v1-keypair"))
    generation = wait_for(_ready_reason(kube, "v1", "Active"), 60, "Vault v1 registered")["metadata"]["generation"]
    key = f"{kube.namespace}/alpha"
    first_lead = signature("lead-before-revoked")
    kube.apply(copytrade("ct1", "alpha", first_lead))
    wait_for(_vault_counts(kube, "ct1", total=2, pending=2), 60, "ct1 fanned out to 2 vaults")

    kube.run("annotate", "secret", "v1-keypair", "trading.xorj.io/strategies-")
    refused = wait_for(_ready_reason(kube, "v1", "SecretNotBound"), 20, "the revoked binding noticed")
    assert refused["metadata"]["generation"] == generation  # the Vault itself never changed
    row = next(r for r in ledger.run(vaults.list_vaults(key)) if r.pubkey == public_key)
    assert row.removed_at is not None
    counts = ledger.run(vaults.fanout_counts(key, first_lead))
    assert (counts.total, counts.pending, counts.failed) == (2, 1, 1)  # its PENDING trade cancelled
    later_lead = signature("lead-after-revoked")
    kube.apply(copytrade("ct2", "alpha", later_lead))
    wait_for(lambda: ((kube.get("copytrade", "ct2") or {}).get("status") or {}).get("admission") == "Admitted",
             60, "ct2 admitted")
    assert ledger.run(vaults.fanout_counts(key, later_lead)).total == 1  # the strategy's own vault only

    kube.run("annotate", "secret", "v1-keypair", "trading.xorj.io/strategies=alpha")
    wait_for(_ready_reason(kube, "v1", "Active"), 20, "the binding granted again noticed")
    row = next(r for r in ledger.run(vaults.list_vaults(key)) if r.pubkey == public_key)
    assert row.removed_at is None


def test_a_many_vault_copytrades_ttl_counts_from_its_last_vaults_trade(kube: Kubectl, operators,
                                                                        ledger: Ledger) -> None:
    """Its own vault's trade finishes first, the other vault's TTL + 3 s later: status.finishedAt is
    the last finish, and the CopyTrade outlives the TTL counted from its own vault's trade."""
    ttl = 4
    operators()
    kube.apply(strategy("alpha"))
    kube.apply(vault("v1", "alpha", str(Keypair().pubkey())))
    wait_for(_ready_reason(kube, "v1", "Active"), 60, "Vault v1 registered")
    kube.apply(copytrade("ct-ttl", "alpha", signature("lead-ttl"), ttlSecondsAfterFinished=ttl))
    wait_for(_vault_counts(kube, "ct-ttl", total=2, pending=2), 60, "ct-ttl fanned out to 2 vaults")
    key = f"{kube.namespace}/alpha"
    driver = LedgerDriver(ledger, key)
    trades = {t.vault: t.trade_id for t in driver.claim_all()}
    assert len(trades) == 2
    own = trades[VAULT]
    other = next(t for v, t in trades.items() if v != VAULT)
    first = driver.confirm(own, driver.submit(own))
    wait_for(_vault_counts(kube, "ct-ttl", confirmed=1, pending=1), 30, "the own vault's trade mirrored")
    time.sleep(ttl + 3)  # the TTL counted from the own vault's trade has run out
    last = driver.confirm(other, driver.submit(other))
    done = wait_for(_vault_counts(kube, "ct-ttl", confirmed=2), 30, "both vaults' trades mirrored")
    assert last.finished_at is not None and first.finished_at is not None
    finished = datetime.fromisoformat(done["finishedAt"])
    assert abs(finished - last.finished_at) < timedelta(seconds=1)  # the last vault's, not its own's
    assert finished - first.finished_at >= timedelta(seconds=ttl)
    time.sleep(1)
    assert kube.get("copytrade", "ct-ttl") is not None, "deleted before its TTL from the last vault's trade"
    wait_for(lambda: kube.get("copytrade", "ct-ttl") is None, 60, "ct-ttl deleted after its TTL")
    assert datetime.now(UTC) >= last.finished_at + timedelta(seconds=ttl)


def _key_sources(kube: Kubectl, *secret_names: str):
    """The executor Deployment once its keys directory projects exactly ``secret_names`` (whole)."""
    def check():
        dep = kube.get("deployment", "alpha-executor") or {}
        volumes = {v["name"]: v for v in (((dep.get("spec") or {}).get("template") or {}).get("spec") or {})
                   .get("volumes", [])}
        sources = (volumes.get("vault") or {}).get("projected", {}).get("sources", [])
        whole = [s["secret"]["name"] for s in sources if "items" not in s["secret"]]
        return dep if whole == list(secret_names) else None
    return check


def test_vault_keys_reach_the_executor_pods_and_a_key_in_a_mounted_secret_rolls_nothing(
        kube: Kubectl, operators) -> None:
    """The executor Deployment mounts the Secrets of its strategy's Vaults (whole, in a projected keys
    directory): two Vaults in one keyring Secret are one source; a third in the same Secret leaves the
    pod template as it is (the kubelet updates the files in place); one in a new Secret adds a source;
    a key name already taken by another Secret is refused naming both."""
    keys = [str(Keypair().pubkey()) for _ in range(4)]
    kube.apply(secret("alpha-keyring", {f"{k}.json": "[]" for k in keys[:2]}, bound_to=("alpha",)))
    operators()
    kube.apply(strategy("alpha"))
    wait_for(lambda: kube.get("deployment", "alpha-executor"), 60, "the one-vault executor Deployment")
    assert "secret" in next(v for v in kube.get("deployment", "alpha-executor")["spec"]["template"]["spec"]["volumes"]
                            if v["name"] == "vault")  # no Vault yet: today's pod
    for n, key in enumerate(keys[:2], start=1):
        kube.apply(vault(f"v{n}", "alpha", key, secret_name="alpha-keyring", secretKey=f"{key}.json"))
    dep = wait_for(_key_sources(kube, "alpha-keyring"), 60, "the keyring Secret projected")
    pod = dep["spec"]["template"]["spec"]
    sources = next(v for v in pod["volumes"] if v["name"] == "vault")["projected"]["sources"]
    assert sources[0] == {"secret": {"name": "vault-keypair", "items": [{"key": "keypair.json",
                                                                           "path": "keypair.json"}]}}
    # by default the signer sidecar alone reads the keys directory; the executor's settings name no key
    config = kube.get("configmap", "alpha-executor-config")["data"]
    assert not {"XORJ_VAULT_KEYS_DIR", "XORJ_VAULT_KEYPAIR_FILE"} & set(config)
    signer = next(c for c in pod["containers"] if c["name"] == "signer")
    assert {e["name"]: e.get("value") for e in signer["env"]}["XORJ_SIGNER_KEYS_DIR"] == "/var/run/xorj/vault"
    generation, template = dep["metadata"]["generation"], dep["spec"]["template"]

    # a third vault: its key added to the mounted Secret, then its Vault
    kube.apply(secret("alpha-keyring", {f"{k}.json": "[]" for k in keys[:3]}, bound_to=("alpha",)))
    kube.apply(vault("v3", "alpha", keys[2], secret_name="alpha-keyring", secretKey=f"{keys[2]}.json"))
    wait_for(_ready_reason(kube, "v3", "Active"), 60, "Vault v3 registered")
    # a fourth in a new Secret: one more source, one rollout; v3's event came before it
    kube.apply(secret("alpha-keyring-2", {f"{keys[3]}.json": "[]"}, bound_to=("alpha",)))
    kube.apply(vault("v4", "alpha", keys[3], secret_name="alpha-keyring-2", secretKey=f"{keys[3]}.json"))
    wait_for(_ready_reason(kube, "v4", "Active"), 60, "Vault v4 registered")
    rolled = wait_for(_key_sources(kube, "alpha-keyring", "alpha-keyring-2"), 60, "the new Secret projected")
    assert rolled["metadata"]["generation"] == generation + 1  # v3 changed nothing, v4 one template
    rolled_sources = next(v for v in rolled["spec"]["template"]["spec"]["volumes"] if v["name"] == "vault")
    assert rolled_sources["projected"]["sources"][:2] == sources
    assert template != rolled["spec"]["template"]

    # a key name that the keyring Secret already gives: refused, naming both Secrets; the pods stay
    kube.apply(secret("alpha-keyring-3", {f"{keys[0]}.json": "[]"}, bound_to=("alpha",)))
    kube.apply(vault("v5", "alpha", str(Keypair().pubkey()), secret_name="alpha-keyring-3",
                     secretKey=f"{keys[0]}.json"))

    def collision():
        conds = {c["type"]: c for c in ((kube.get("tradingstrategy", "alpha") or {}).get("status") or {})
                 .get("conditions", [])}
        applied = conds.get("ChildrenApplied") or {}
        return applied if applied.get("status") == "False" else None
    refused = wait_for(collision, 60, "the key collision refused")
    assert "'alpha-keyring'" in refused["message"] and "'alpha-keyring-3'" in refused["message"]
    assert kube.get("deployment", "alpha-executor")["metadata"]["generation"] == generation + 1
