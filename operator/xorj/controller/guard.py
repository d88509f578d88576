"""What a TradingStrategy must satisfy before the operator builds executors for it. Pure: the spec,
the operator's settings and the referenced Secrets' metadata in; a refusal (or none) out.

The operator is a deputy: it builds pods that hold a vault key on behalf of whoever may create a
TradingStrategy. These checks keep a strategy from borrowing authority it was not given:

- every Secret the executors would read (vault keypair, API keys) must name this strategy in its
  binding annotation, which only a binder (the chart's ValidatingAdmissionPolicy) may set;
- endpoints are https unless the operator's development setting allows http.

(The image is not a spec field at all; public keys that do not decode to 32 bytes are refused by the
model validator, before these checks.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from xorj.controller.models import GROUP, TradingStrategySpec

# On a Secret: the TradingStrategies (names, comma-separated, in the Secret's namespace) that may use it.
SECRET_BINDING_ANNOTATION = f"{GROUP}/strategies"

# condition reasons
VAULT_SECRET_NOT_FOUND = "SecretNotFound"
SECRET_NOT_BOUND = "SecretNotBound"
INSECURE_ENDPOINT = "InsecureEndpoint"
INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class Refusal:
    """Why no executor is built: a condition reason (CamelCase) and a message naming the field."""

    reason: str
    message: str


def bound_strategies(annotations: Mapping[str, str] | None) -> frozenset[str]:
    raw = (annotations or {}).get(SECRET_BINDING_ANNOTATION, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def check_endpoints(spec: TradingStrategySpec, *, allow_insecure: bool) -> Refusal | None:
    for field, url in (("spec.endpoints.rpcUrl", spec.endpoints.rpc_url),
                       ("spec.endpoints.swapApiUrl", spec.endpoints.swap_api_url)):
        scheme = urlsplit(url).scheme.lower()
        if scheme != "https" and not (allow_insecure and scheme == "http"):
            return Refusal(INSECURE_ENDPOINT,
                           f"{field} must use https (got {scheme}://); http is allowed only when the "
                           "operator's development setting allowInsecureEndpoints is on")
    return None


def check_secret_bindings(
    strategy: str, spec: TradingStrategySpec, secrets: Mapping[str, Mapping[str, str] | None]
) -> Refusal | None:
    """``secrets``: name -> the Secret's annotations, or None when the Secret does not exist."""
    for name, purpose in spec.referenced_secrets().items():
        refusal = check_secret_binding(strategy, name, purpose, secrets.get(name))
        if refusal is not None:
            return refusal
    return None


def check_secret_binding(strategy: str, name: str, purpose: str,
                         annotations: Mapping[str, str] | None) -> Refusal | None:
    """One Secret (``annotations``: its annotations, None when it does not exist) must be bound to
    ``strategy``: the check every vault keypair passes, a strategy's spec.vault and each Vault's."""
    if annotations is None:
        return Refusal(VAULT_SECRET_NOT_FOUND, f"Secret {name!r} ({purpose}) not found")
    if strategy not in bound_strategies(annotations):
        return Refusal(SECRET_NOT_BOUND,
                       f"Secret {name!r} ({purpose}) is not bound to this strategy: it needs the "
                       f"annotation {SECRET_BINDING_ANNOTATION}: {strategy} (set by a vault binder)")
    return None


def check(
    strategy: str,
    spec: TradingStrategySpec,
    *,
    allow_insecure_endpoints: bool,
    secrets: Mapping[str, Mapping[str, str] | None],
) -> Refusal | None:
    """The first reason to refuse ``spec``, or None when executors may be built."""
    return check_endpoints(spec, allow_insecure=allow_insecure_endpoints) or check_secret_bindings(
        strategy, spec, secrets
    )
