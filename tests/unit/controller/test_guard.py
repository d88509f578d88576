"""The operator's own checks before it builds executors (the confused-deputy defences)."""

from __future__ import annotations

from xorj.controller import guard
from xorj.controller.models import TradingStrategySpec

from .factories import strategy_spec

HTTPS = {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example/swap/v1"}


def _spec(**overrides) -> TradingStrategySpec:
    return TradingStrategySpec.model_validate(strategy_spec(**overrides))


def _bound(*names: str) -> dict[str, str]:
    return {guard.SECRET_BINDING_ANNOTATION: ",".join(names)}


def test_http_endpoints_refused_unless_the_development_setting_allows_them() -> None:
    spec = _spec()  # the factory's endpoints are http://127.0.0.1
    refusal = guard.check_endpoints(spec, allow_insecure=False)
    assert refusal is not None and refusal.reason == guard.INSECURE_ENDPOINT
    assert "spec.endpoints.rpcUrl must use https" in refusal.message
    assert guard.check_endpoints(spec, allow_insecure=True) is None
    assert guard.check_endpoints(_spec(endpoints=HTTPS), allow_insecure=False) is None
    mixed = _spec(endpoints={"rpcUrl": "https://rpc.example", "swapApiUrl": "http://swap.example"})
    refusal = guard.check_endpoints(mixed, allow_insecure=False)
    assert refusal is not None and "spec.endpoints.swapApiUrl" in refusal.message


def test_vault_secret_must_be_bound_to_this_strategy() -> None:
    spec = _spec(endpoints=HTTPS)
    missing = guard.check_secret_bindings("alpha", spec, {"vault-keypair": None})
    assert missing is not None and missing.reason == guard.VAULT_SECRET_NOT_FOUND
    unbound = guard.check_secret_bindings("alpha", spec, {"vault-keypair": {}})
    assert unbound is not None and unbound.reason == guard.SECRET_NOT_BOUND
    assert "trading.xorj.io/strategies: alpha" in unbound.message
    other = guard.check_secret_bindings("alpha", spec, {"vault-keypair": _bound("beta")})
    assert other is not None and other.reason == guard.SECRET_NOT_BOUND
    # a prefix or a substring is not a binding
    assert guard.check_secret_bindings("alpha", spec, {"vault-keypair": _bound("alphabet")}) is not None
    assert guard.check_secret_bindings("alpha", spec, {"vault-keypair": _bound("beta", " alpha ")}) is None
    assert guard.check_secret_bindings("alpha", spec, {"vault-keypair": _bound("alpha")}) is None


def test_api_key_secrets_need_the_binding_too() -> None:
    """Otherwise a strategy could send any Secret of its namespace (another tenant's keypair) to an
    endpoint it chooses, as its "API key"."""
    spec = _spec(endpoints={**HTTPS, "swapApiKeySecretRef": {"name": "someone-elses-vault", "key": "keypair.json"}})
    assert set(spec.referenced_secrets()) == {"vault-keypair", "someone-elses-vault"}
    refusal = guard.check("alpha", spec, allow_insecure_endpoints=False,
                          secrets={"vault-keypair": _bound("alpha"), "someone-elses-vault": _bound("beta")})
    assert refusal is not None and refusal.reason == guard.SECRET_NOT_BOUND
    assert "someone-elses-vault" in refusal.message and "swapApiKeySecretRef" in refusal.message
    assert guard.check("alpha", spec, allow_insecure_endpoints=False,
                       secrets={"vault-keypair": _bound("alpha"), "someone-elses-vault": _bound("alpha")}) is None
