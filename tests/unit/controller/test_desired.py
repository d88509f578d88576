"""Desired children of a TradingStrategy: owned, wired together, rolled on spec change, paused to 0."""

from __future__ import annotations

import json

from xorj.controller.models import TradingStrategySpec
from xorj.controller.settings import ExecutorSettings, OperatorSettings
from xorj.controller.tradingstrategy import desired

from .factories import strategy_spec

OWNER = desired.Owner(name="alpha", uid="1234-uid")
DEFAULTS = desired.ExecutorDefaults()
# the opt-out: the executor's in-process keyring, the executor container mounting the key
KEYRING = desired.ExecutorDefaults(signer_sidecar=False)


def _spec(**overrides) -> TradingStrategySpec:
    return TradingStrategySpec.model_validate(strategy_spec(**overrides))


def _by_kind(spec: TradingStrategySpec, defaults: desired.ExecutorDefaults = DEFAULTS) -> dict[str, dict]:
    return {c["kind"]: c for c in desired.children(OWNER, "ns1", spec, defaults)}


def test_all_four_children_owned_by_the_strategy() -> None:
    kids = _by_kind(_spec())
    assert set(kids) == {"ConfigMap", "Service", "PodDisruptionBudget", "Deployment"}
    for child in kids.values():
        refs = child["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "trading.xorj.io/v1alpha1",
                "kind": "TradingStrategy",
                "name": "alpha",
                "uid": "1234-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert child["metadata"]["namespace"] == "ns1"


def test_with_the_keyring_opt_out_the_executor_runs_with_configmap_env_and_vault_file() -> None:
    kids = _by_kind(_spec(), KEYRING)
    dep = kids["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["xorj", "executor"]
    assert container["envFrom"] == [{"configMapRef": {"name": kids["ConfigMap"]["metadata"]["name"]}}]
    dsn = next(e for e in container["env"] if e["name"] == "XORJ_LEDGER_DSN")
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "xorj-ledger", "key": "dsn"}
    vault_volume = next(v for v in pod["volumes"] if v["name"] == "vault")
    assert vault_volume["secret"]["secretName"] == "vault-keypair"
    mount = container["volumeMounts"][0]
    keypair_path = kids["ConfigMap"]["data"]["XORJ_VAULT_KEYPAIR_FILE"]
    assert keypair_path.startswith(mount["mountPath"] + "/")
    # the keypair itself never travels through the ConfigMap
    assert all("secret" not in k.lower() or k == "XORJ_VAULT_KEYPAIR_FILE" for k in kids["ConfigMap"]["data"])
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert kids["Service"]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert kids["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_vault_key_is_readable_by_the_executor_user_only() -> None:
    pod = _by_kind(_spec())["Deployment"]["spec"]["template"]["spec"]
    # a kubelet writes Secret files as root: without fsGroup and group read the non-root executor
    # could not open its own key
    assert pod["securityContext"]["runAsUser"] == desired.EXECUTOR_UID
    assert pod["securityContext"]["fsGroup"] == desired.EXECUTOR_UID
    vault_volume = next(v for v in pod["volumes"] if v["name"] == "vault")
    assert vault_volume["secret"]["defaultMode"] == 0o440
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True


def test_executors_land_where_the_operator_is_told() -> None:
    anywhere = _by_kind(_spec())["Deployment"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in anywhere and "tolerations" not in anywhere
    settings = OperatorSettings(
        XORJ_LEDGER_DSN="postgresql://x@h/db",
        executor=ExecutorSettings(node_selector={"xorj.dev/node": "real"},
                                  tolerations=[{"key": "vaults", "operator": "Exists", "effect": "NoSchedule"}]),
    )
    pinned = desired.deployment(OWNER, "ns1", _spec(), settings.executor.defaults())["spec"]["template"]["spec"]
    assert pinned["nodeSelector"] == {"xorj.dev/node": "real"}
    assert pinned["tolerations"] == [{"effect": "NoSchedule", "key": "vaults", "operator": "Exists"}]


def test_node_selector_and_tolerations_come_from_the_environment_as_json(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://x@h/db")
    monkeypatch.setenv("XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR", '{"disktype": "ssd"}')
    monkeypatch.setenv("XORJ_OPERATOR_EXECUTOR_TOLERATIONS", '[{"key": "k", "operator": "Exists"}]')
    defaults = OperatorSettings().executor.defaults()
    assert defaults.node_selector == (("disktype", "ssd"),)
    assert [json.loads(t) for t in defaults.tolerations] == [{"key": "k", "operator": "Exists"}]
    hash(defaults)  # the defaults stay a value: usable as a cache key


def test_spec_change_rolls_executors_but_pause_and_scale_do_not() -> None:
    def hash_of(spec: TradingStrategySpec) -> str:
        return _by_kind(spec)["Deployment"]["spec"]["template"]["metadata"]["annotations"][
            desired.CONFIG_HASH_ANNOTATION
        ]

    base = hash_of(_spec())
    assert hash_of(_spec()) == base  # deterministic
    assert hash_of(_spec(slippage={"initialBps": 150})) != base
    assert hash_of(_spec(endpoints={"rpcUrl": "http://127.0.0.1:9", "swapApiUrl": "http://127.0.0.1:8080"})) != base
    assert hash_of(_spec(paused=True)) == base
    assert hash_of(_spec(executor={"replicas": 3})) == base


def test_paused_scales_to_zero() -> None:
    assert _by_kind(_spec(executor={"replicas": 3}))["Deployment"]["spec"]["replicas"] == 3
    assert _by_kind(_spec(executor={"replicas": 3}, paused=True))["Deployment"]["spec"]["replicas"] == 0
    assert _by_kind(_spec(paused=True))["ConfigMap"]["data"]["XORJ_PAUSED"] == "true"


def test_configmap_carries_the_policy() -> None:
    data = _by_kind(_spec(slippage={"initialBps": 120, "stepBps": 40, "capBps": 300}))["ConfigMap"]["data"]
    assert data["XORJ_STRATEGY"] == "ns1/alpha"
    assert data["XORJ_SLIPPAGE_INITIAL_BPS"] == "120"
    assert data["XORJ_SLIPPAGE_STEP_BPS"] == "40"
    assert data["XORJ_SLIPPAGE_CAP_BPS"] == "300"
    assert all(isinstance(v, str) for v in data.values())


def test_money_reaches_the_executor_as_the_decimal_the_cr_wrote(monkeypatch) -> None:
    """The CR's numbers become Decimal text, not a float's repr: 12345678901234567.89 USD stays that
    amount (a float would send 1.2345678901234568e+16), and 0.1 stays 0.1."""
    from decimal import Decimal

    from xorj.executor.settings import load_settings

    spec = _spec(risk={"maxTradeNotionalUsd": 0.1, "maxDailyVolumeUsd": "12345678901234567.89",
                       "maxPositionShare": 0.3, "maxPriceImpactBps": 7})
    data = _by_kind(spec)["ConfigMap"]["data"]
    assert data["XORJ_MAX_TRADE_NOTIONAL_USD"] == "0.1"
    assert data["XORJ_MAX_DAILY_VOLUME_USD"] == "12345678901234567.89"
    assert data["XORJ_MAX_POSITION_SHARE"] == "0.3"
    assert data["XORJ_MAX_PRICE_IMPACT"] == "0.0007"
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    settings = load_settings()
    assert settings.max_daily_volume_usd == Decimal("12345678901234567.89")
    assert settings.max_trade_notional_usd == Decimal("0.1") and settings.max_position_share == Decimal("0.3")


def test_the_crd_defaults_are_the_domains_and_the_executor_falls_back_on_them(monkeypatch) -> None:
    """One set of defaults: an empty spec.risk / spec.slippage means the domain's policy, and so does
    an executor started with none of those variables."""
    from xorj.domain.risk import CircuitBreaker, RiskLimits
    from xorj.domain.slippage import SlippagePolicy
    from xorj.executor.settings import load_settings

    spec = _spec()
    assert spec.risk.to_domain() == RiskLimits() and spec.slippage.to_domain() == SlippagePolicy()
    monkeypatch.setenv("XORJ_STRATEGY", "ns1/alpha")
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    for key, value in _by_kind(spec, KEYRING)["ConfigMap"]["data"].items():
        if key in {"XORJ_VAULT_PUBKEY", "XORJ_VAULT_KEYPAIR_FILE", "XORJ_RPC_URL", "XORJ_SWAP_API_URL"}:
            monkeypatch.setenv(key, value)
    bare = load_settings()
    assert bare.risk_limits() == RiskLimits()
    assert bare.slippage_policy() == SlippagePolicy()
    assert spec.risk.circuit_breaker.to_domain() == CircuitBreaker() == bare.circuit_breaker()


def test_the_real_executor_accepts_the_configmap(monkeypatch) -> None:
    """Contract with xorj.executor.settings: every variable we set parses, and means what we meant."""
    from xorj.executor.settings import load_settings

    spec = _spec(slippage={"initialBps": 120, "stepBps": 40, "capBps": 300, "maxAttempts": 4},
                 risk={"maxPriceImpactBps": 150, "maxDailyTrades": 7}, executor={"concurrency": 9})
    kids = _by_kind(spec, KEYRING)
    for key, value in kids["ConfigMap"]["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    settings = load_settings()
    assert settings.strategy == "ns1/alpha"
    assert settings.slippage_initial_bps == 120 and settings.slippage_step_bps == 40
    assert settings.effective_slippage_cap_bps == 300 and settings.slippage_max_attempts == 4
    assert settings.concurrency == 9 and settings.max_daily_trades == 7
    assert float(settings.max_price_impact) == 0.015
    assert settings.http_port == DEFAULTS.metrics_port
    assert str(settings.vault_keypair_file).endswith("/keypair.json")
    env_names = {e["name"] for e in kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_names == {"XORJ_LEDGER_DSN", "XORJ_EXECUTOR_ID"}


def test_executor_mounts_the_ledger_ca_from_its_ledger_secret_when_there_is_one() -> None:
    pod = _by_kind(_spec())["Deployment"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "ledger-ca")
    assert volume["secret"] == {"secretName": "xorj-ledger", "defaultMode": 0o444,
                                "items": [{"key": "ca.crt", "path": "ca.crt"}], "optional": True}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "ledger-ca")
    assert mount == {"name": "ledger-ca", "mountPath": desired.LEDGER_CA_MOUNT_DIR, "readOnly": True}


def test_executor_image_comes_from_the_operator_settings(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    monkeypatch.setenv("XORJ_OPERATOR_EXECUTOR_IMAGE", "registry.local/xorj@sha256:" + "a" * 64)
    monkeypatch.setenv("XORJ_OPERATOR_EXECUTOR_IMAGE_PULL_POLICY", "Always")
    defaults = OperatorSettings().executor.defaults()
    container = desired.deployment(OWNER, "ns1", _spec(), defaults)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/xorj@sha256:" + "a" * 64
    assert container["imagePullPolicy"] == "Always"


def test_executor_pods_get_no_service_account_token() -> None:
    pod = _by_kind(_spec())["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False


def test_api_keys_come_from_secrets_never_the_configmap(monkeypatch) -> None:
    """The keys reach the executor's environment through secretKeyRef (the kubelet reads them); the
    ConfigMap and the Deployment object hold only the Secrets' names."""
    from xorj.executor.settings import load_settings

    spec = _spec(endpoints={"rpcUrl": "https://rpc.example/v1?commitment=confirmed", "swapApiUrl": "https://swap.example",
                            "rpcApiKeySecretRef": {"name": "rpc-key", "key": "token", "queryParameter": "api-key"},
                            "swapApiKeySecretRef": {"name": "swap-key", "key": "token"}})
    kids = _by_kind(spec)
    env = {e["name"]: e for e in kids["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["XORJ_RPC_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "rpc-key", "key": "token"}}
    assert env["XORJ_SWAP_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "swap-key", "key": "token"}}
    data = kids["ConfigMap"]["data"]
    assert "XORJ_RPC_API_KEY" not in data and "XORJ_SWAP_API_KEY" not in data
    # what the executor then does with them (the kubelet would set these two from the Secrets)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    monkeypatch.setenv("XORJ_RPC_API_KEY", "rpc-s3cret")
    monkeypatch.setenv("XORJ_SWAP_API_KEY", "swap-s3cret")
    settings = load_settings()
    assert settings.rpc_url_with_key() == "https://rpc.example/v1?commitment=confirmed&api-key=rpc-s3cret"
    assert settings.swap_api_key is not None and settings.swap_api_key.get_secret_value() == "swap-s3cret"
    assert "rpc-s3cret" not in repr(settings) and "swap-s3cret" not in repr(settings)


def test_only_executor_pods_carry_the_ledger_client_label() -> None:
    # The bundled ledger's NetworkPolicy admits pods with this label, and the chart's admission policy
    # lets only the operator (and the controllers making its pods) set it: it belongs on the pod
    # template, never on the Service's selector, the PDB or other children a tenant could mimic.
    kids = _by_kind(_spec())
    template = kids["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert template[desired.LEDGER_CLIENT_LABEL] == "true"
    assert desired.LEDGER_CLIENT_LABEL == "trading.xorj.io/ledger-client"
    assert desired.LEDGER_CLIENT_LABEL not in kids["Deployment"]["spec"]["selector"]["matchLabels"]
    assert desired.LEDGER_CLIENT_LABEL not in kids["Service"]["spec"]["selector"]
    for child in kids.values():
        assert desired.LEDGER_CLIENT_LABEL not in child["metadata"]["labels"], child["kind"]


def test_every_executor_variable_the_operator_renders_is_a_setting_the_executor_reads() -> None:
    """The names come from the executor's settings model: none can drift from what it parses."""
    import pytest

    from xorj.executor.settings import ExecutorSettings, executor_variable

    read = {f"XORJ_{name.upper()}" for name in ExecutorSettings.model_fields}
    objects = _by_kind(_spec())
    rendered = set(objects["ConfigMap"]["data"])
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    rendered |= {entry["name"] for entry in container["env"]}
    assert rendered and rendered <= read, rendered - read
    with pytest.raises(KeyError, match="max_trade_notional"):
        executor_variable("max_trade_notional")  # not a setting: refused where the operator renders it


def test_the_policy_the_operator_renders_is_the_policy_the_executor_builds(monkeypatch) -> None:
    from decimal import Decimal

    from xorj.domain.risk import RiskLimits
    from xorj.domain.slippage import SlippagePolicy
    from xorj.executor.settings import load_settings, policy_environment

    policy = SlippagePolicy(initial_bps=70, step_bps=15, cap_bps=260, max_attempts=5)
    limits = RiskLimits(max_trade_notional_usd=Decimal("12.34"), max_daily_volume_usd=Decimal("99999999999.99"),
                        max_daily_trades=7, max_position_share=Decimal("0.25"), max_price_impact=Decimal("0.003"))
    for key, value in policy_environment(policy, limits).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    monkeypatch.setenv("XORJ_STRATEGY", "ns1/alpha")
    settings = load_settings(rpc_url="http://127.0.0.1:1", swap_api_url="http://127.0.0.1:2",
                             vault_keypair_file="/dev/null")
    assert settings.slippage_policy() == policy and settings.risk_limits() == limits


def test_the_strategys_circuit_breaker_is_the_one_its_executors_run(monkeypatch) -> None:
    """spec.risk.circuitBreaker reaches the executor: a strategy that wants its breaker to reopen after
    20 s (as the chaos environments do) gets executors whose breaker reopens after 20 s."""
    from datetime import timedelta

    from xorj.domain.risk import CircuitBreaker
    from xorj.executor.settings import load_settings

    spec = _spec(risk={"circuitBreaker": {"failuresInARow": 4, "failuresInWindow": 9, "windowSeconds": 30,
                                          "openSeconds": 20}})
    for key, value in _by_kind(spec)["ConfigMap"]["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    breaker = load_settings().circuit_breaker()
    assert breaker == CircuitBreaker(failures_in_window=9, window=timedelta(seconds=30), failures_in_a_row=4,
                                     open_for=timedelta(seconds=20))


def test_signer_sidecar_alone_holds_the_vault_key(monkeypatch) -> None:
    """The signer boundary in the pod, the default for a one-vault strategy too: the vault Secret is
    mounted into the signer container only; the executor reaches it through the socket on a shared
    emptyDir, and its settings hold no key path. Both containers' variables are what their settings
    models read."""
    from xorj.executor.settings import load_settings
    from xorj.signer.settings import load_signer_settings

    defaults = DEFAULTS
    spec = _spec(endpoints={"rpcUrl": "https://rpc.example/v1", "swapApiUrl": "https://swap.example",
                            "rpcApiKeySecretRef": {"name": "rpc-key", "key": "token", "queryParameter": "api-key"}})
    kids = {c["kind"]: c for c in desired.children(OWNER, "ns1", spec, defaults)}
    pod = kids["Deployment"]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {desired.EXECUTOR_CONTAINER, desired.SIGNER_CONTAINER}
    executor, signer = containers[desired.EXECUTOR_CONTAINER], containers[desired.SIGNER_CONTAINER]
    mounts = {name: {m["name"] for m in c["volumeMounts"]} for name, c in containers.items()}
    assert "vault" not in mounts["executor"] and "vault" in mounts["signer"]
    assert "signer-socket" in mounts["executor"] and "signer-socket" in mounts["signer"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["signer-socket"] and volumes["vault"]["secret"]["secretName"]
    assert signer["command"] == ["xorj", "signer"] and signer["image"] == executor["image"]
    data = kids["ConfigMap"]["data"]
    assert "XORJ_VAULT_KEYPAIR_FILE" not in data and "XORJ_VAULT_PUBKEY" not in data
    # the executor container's settings: the socket, no key
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://u@127.0.0.1/x")
    settings = load_settings()
    assert settings.vault_keypair_file is None and str(settings.signer_socket) == desired.SIGNER_SOCKET
    # the signer container's settings (the kubelet would set the two secretKeyRef values)
    env = {e["name"]: e for e in signer["env"]}
    assert env["XORJ_SIGNER_LEDGER_DSN"]["valueFrom"]["secretKeyRef"]["key"] == "signer-dsn"
    assert env["XORJ_SIGNER_RPC_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "rpc-key", "key": "token"}}
    for name, entry in env.items():
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
    monkeypatch.setenv("XORJ_SIGNER_LEDGER_DSN", "postgresql://s@127.0.0.1/x")
    monkeypatch.setenv("XORJ_SIGNER_RPC_API_KEY", "rpc-s3cret")
    signer_settings = load_signer_settings()
    assert str(signer_settings.socket) == desired.SIGNER_SOCKET
    assert str(signer_settings.keypair_file).startswith(desired.VAULT_MOUNT_DIR)
    assert signer_settings.rpc_url_with_key() == "https://rpc.example/v1?api-key=rpc-s3cret"
    assert signer_settings.slippage_cap_bps == spec.slippage.to_domain().cap_bps


def test_signer_sidecar_is_an_operator_setting(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://x@h/db")
    assert OperatorSettings().executor.defaults().signer_sidecar is True  # on unless opted out
    assert OperatorSettings().executor.defaults() == DEFAULTS  # what the builder tests above build with
    monkeypatch.setenv("XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR", "false")  # the in-process keyring
    assert OperatorSettings().executor.defaults().signer_sidecar is False
