"""The operator's settings are grouped by concern, and every group reads the environment variables the
operator has always read (the chart and existing deployments set them)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from xorj.controller.settings import OperatorSettings

# Every variable the flat settings read before they were grouped, with a value and where it lands.
ENVIRONMENT = {
    "XORJ_LEDGER_DSN": ("postgresql://op@db/ledger", lambda s: s.ledger_dsn.get_secret_value()),
    "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET": ("led", lambda s: s.executor.ledger_secret),
    "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET_KEY": ("k", lambda s: s.executor.ledger_secret_key),
    "XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": ("true", lambda s: s.executor.ledger_logins),
    "XORJ_OPERATOR_EXECUTOR_LEDGER_DSN": ("postgresql://db2/ledger", lambda s: s.executor.ledger_dsn.get_secret_value()),
    "XORJ_OPERATOR_EXECUTOR_IMAGE": ("registry.local/xorj:2", lambda s: s.executor.image),
    "XORJ_OPERATOR_EXECUTOR_IMAGE_PULL_POLICY": ("Always", lambda s: s.executor.image_pull_policy),
    "XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": ("true", lambda s: s.trading.allow_insecure_endpoints),
    "XORJ_OPERATOR_EXECUTOR_METRICS_PORT": ("9999", lambda s: s.executor.metrics_port),
    "XORJ_OPERATOR_EXECUTOR_SERVICE_ACCOUNT": ("exec", lambda s: s.executor.service_account),
    "XORJ_OPERATOR_EXECUTOR_LOG_LEVEL": ("DEBUG", lambda s: s.executor.log_level),
    "XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR": ('{"a": "b"}', lambda s: s.executor.node_selector),
    "XORJ_OPERATOR_EXECUTOR_TOLERATIONS": ('[{"key": "k"}]', lambda s: s.executor.tolerations),
    "XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR": ("true", lambda s: s.executor.signer_sidecar),
    "XORJ_OPERATOR_EXECUTOR_SIGNER_LEDGER_SECRET_KEY": ("sig", lambda s: s.executor.signer_ledger_secret_key),
    "XORJ_OPERATOR_GLOBAL_HALT": ("true", lambda s: s.trading.global_halt),
    "XORJ_OPERATOR_GLOBAL_HALT_REASON": ("incident 7", lambda s: s.trading.global_halt_reason),
    "XORJ_OPERATOR_COPYTRADE_RESYNC_SECONDS": ("2.5", lambda s: s.timing.copytrade_resync_seconds),
    "XORJ_OPERATOR_STRATEGY_RESYNC_SECONDS": ("3.5", lambda s: s.timing.strategy_resync_seconds),
    "XORJ_OPERATOR_VAULT_RECHECK_SECONDS": ("7.5", lambda s: s.timing.vault_recheck_seconds),
    "XORJ_OPERATOR_STRATEGY_DRAIN_SECONDS": ("7", lambda s: s.timing.strategy_drain_seconds),
    "XORJ_OPERATOR_ALERT_DELIVERY_SECONDS": ("0.5", lambda s: s.timing.alert_delivery_seconds),
    "XORJ_OPERATOR_WATCH_SERVER_TIMEOUT": ("11", lambda s: s.watching.server_timeout),
    "XORJ_OPERATOR_WATCH_CLIENT_TIMEOUT": ("12", lambda s: s.watching.client_timeout),
    "XORJ_OPERATOR_WATCH_INACTIVITY_TIMEOUT": ("13", lambda s: s.watching.inactivity_timeout),
    "XORJ_OPERATOR_WATCH_STALE_SECONDS": ("14", lambda s: s.watching.stale_seconds),
    "XORJ_OPERATOR_RECONCILE_RPC_URL": ("https://rpc.example/?api-key=s", lambda s: s.reconciling.rpc_url.get_secret_value()),
    "XORJ_OPERATOR_RECONCILE_INTERVAL_SECONDS": ("15", lambda s: s.reconciling.interval_seconds),
    "XORJ_OPERATOR_RECONCILE_GRACE_SECONDS": ("16", lambda s: s.reconciling.grace_seconds),
    "XORJ_OPERATOR_RECONCILE_GRACE_SLOTS": ("17", lambda s: s.reconciling.grace_slots),
    "XORJ_OPERATOR_RECONCILE_BASELINE_MARGIN_SECONDS": ("18", lambda s: s.reconciling.baseline_margin_seconds),
    "XORJ_OPERATOR_RECONCILE_RPC_TIMEOUT_SECONDS": ("19", lambda s: s.reconciling.rpc_timeout_seconds),
    "XORJ_OPERATOR_POOL_SCORE_SECONDS": ("20", lambda s: s.pools.score_seconds),
    "XORJ_OPERATOR_POOL_SWAPS_CHECK_SECONDS": ("20.5", lambda s: s.pools.swaps_check_seconds),
    "XORJ_OPERATOR_TRADER_CASH_MINTS": ('["M1"]', lambda s: s.pools.cash_mints),
    "XORJ_OPERATOR_HEALTH_HOST": ("127.0.0.2", lambda s: s.serving.health_host),
    "XORJ_OPERATOR_HEALTH_PORT": ("8181", lambda s: s.serving.health_port),
    "XORJ_OPERATOR_METRICS_PORT": ("9191", lambda s: s.serving.metrics_port),
    "XORJ_OPERATOR_MEMORY_PROFILE_FRAMES": ("3", lambda s: s.serving.memory_profile_frames),
    "XORJ_OPERATOR_PEERING_NAME": ("peers", lambda s: s.peering.name),
    "XORJ_OPERATOR_PEERING_LIFETIME": ("21", lambda s: s.peering.lifetime),
    "XORJ_OPERATOR_PRIORITY": ("22", lambda s: s.peering.priority),
    "XORJ_OPERATOR_STANDALONE": ("true", lambda s: s.peering.standalone),
}
EXPECTED = {
    "XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": True,
    "XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": True, "XORJ_OPERATOR_EXECUTOR_METRICS_PORT": 9999,
    "XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR": {"a": "b"}, "XORJ_OPERATOR_EXECUTOR_TOLERATIONS": [{"key": "k"}],
    "XORJ_OPERATOR_GLOBAL_HALT": True, "XORJ_OPERATOR_TRADER_CASH_MINTS": ["M1"],
    "XORJ_OPERATOR_STANDALONE": True, "XORJ_OPERATOR_RECONCILE_GRACE_SLOTS": 17,
}


def test_every_variable_the_flat_settings_read_lands_in_its_group(monkeypatch) -> None:
    for name, (value, _) in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    for name, (value, read) in ENVIRONMENT.items():
        got = read(settings)
        # each value differs from its default: a variable read into no field, or another, fails here
        assert got == (EXPECTED[name] if name in EXPECTED else type(got)(value)), name
    assert OperatorSettings.environment_names() == set(ENVIRONMENT)


def test_defaults_hold_without_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://op@db/ledger")
    settings = OperatorSettings()
    assert settings.executor.image == "xorj-operator:latest" and settings.timing.strategy_resync_seconds == 10.0
    assert settings.peering.priority == 0 and settings.peering.standalone is False
    assert settings.serving.health_port == 8080 and settings.reconciling.rpc_url is None
    assert settings.executor.defaults().image == "xorj-operator:latest"


def test_a_bad_value_is_refused_naming_the_variable_field(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://op@db/ledger")
    monkeypatch.setenv("XORJ_OPERATOR_WATCH_STALE_SECONDS", "-1")
    with pytest.raises(ValidationError, match="stale_seconds"):
        OperatorSettings()
