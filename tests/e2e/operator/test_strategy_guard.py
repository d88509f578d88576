"""Issue 11, confused deputy, on the real API server with the real operator: what a TradingStrategy
may not borrow (an unbound Secret, an http endpoint, a key that is not 32 bytes) is refused with a
condition and an Event, and no executor is built; a binding revoked later scales executors to zero;
a child the API server refuses sets a condition instead of raising out of the handler."""

from __future__ import annotations

import pytest

from tests.polling import wait_for
from tests.unit.controller.factories import VAULT

from .conftest import Kubectl
from .manifests import secret, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

HTTPS = {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example/swap/v1"}
EXECUTOR_IMAGE = "registry.example/xorj-executor:9.9.9"


def _condition(kube: Kubectl, name: str, type_: str) -> dict | None:
    obj = kube.get("tradingstrategy", name) or {}
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), None)


def _refused(kube: Kubectl, name: str, reason: str):
    def check():
        cond = _condition(kube, name, "SpecAccepted")
        ready = _condition(kube, name, "Ready")
        if cond and cond["status"] == "False" and cond["reason"] == reason and ready and ready["status"] == "False":
            return cond
        return None
    return check


def _warning_event(kube: Kubectl, name: str, reason: str):
    return lambda: next((e for e in kube.events(name) if e["reason"] == reason and e["type"] == "Warning"), None)


def test_operator_refuses_what_a_strategy_may_not_borrow(kube: Kubectl, operators) -> None:
    kube.apply(secret("unbound-vault", {"keypair.json": "[]"}))  # a Secret nobody bound to a strategy
    kube.apply(secret("beta-vault", {"keypair.json": "[]"}, bound_to=("beta",)))  # another strategy's
    operators(extra_env={"XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": "false",
                         "XORJ_OPERATOR_EXECUTOR_IMAGE": EXECUTOR_IMAGE})
    kube.apply(strategy("stranger", endpoints=HTTPS, vault={"publicKey": VAULT,
                                                             "secretName": "unbound-vault"}))
    kube.apply(strategy("thief", endpoints=HTTPS, vault={"publicKey": VAULT,
                                                          "secretName": "beta-vault"}))
    kube.apply(strategy("plain", endpoints={"rpcUrl": "http://rpc.example", "swapApiUrl": "https://swap.example"}))
    kube.apply(strategy("ghost", endpoints=HTTPS, vault={"publicKey": VAULT,
                                                          "secretName": "no-such-secret"}))
    # CEL cannot decode base58: 44 'z' pass the schema's pattern but are 33 bytes
    kube.apply(strategy("crooked", endpoints=HTTPS, traders=["z" * 44]))
    # an API key Secret needs the binding too (else: any Secret sent to an endpoint of one's choosing)
    kube.apply(strategy("alpha", endpoints={**HTTPS, "swapApiKeySecretRef": {"name": "beta-vault",
                                                                             "key": "keypair.json"}}))

    for name, reason, needle in (
        ("stranger", "SecretNotBound", "trading.xorj.io/strategies: stranger"),
        ("thief", "SecretNotBound", "'beta-vault' (vault keypair (spec.vault.secretName)) is not bound"),
        ("plain", "InsecureEndpoint", "spec.endpoints.rpcUrl must use https"),
        ("ghost", "SecretNotFound", "'no-such-secret'"),
        ("crooked", "InvalidSpec", "must decode from base58 to exactly 32 bytes"),
        ("alpha", "SecretNotBound", "swapApiKeySecretRef"),
    ):
        cond = wait_for(_refused(kube, name, reason), 60, f"{name} refused with {reason}")
        assert needle in cond["message"], cond
        event = wait_for(_warning_event(kube, name, reason), 30, f"a {reason} Event for {name}")
        assert needle in event["message"], event
    # no executor for any of them
    for name in ("stranger", "thief", "plain", "ghost", "crooked", "alpha"):
        assert kube.get("deployment", f"{name}-executor") is None, f"an executor was built for {name}"
        assert kube.get("configmap", f"{name}-executor-config") is None


def test_bound_strategy_runs_the_operators_image_and_a_revoked_binding_stops_it(kube: Kubectl, operators) -> None:
    operators(extra_env={"XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": "false",
                         "XORJ_OPERATOR_EXECUTOR_IMAGE": EXECUTOR_IMAGE})
    kube.apply(strategy("alpha", endpoints=HTTPS, executor={"replicas": 2}))  # vault-keypair is bound to alpha
    wait_for(lambda: kube.get("deployment", "alpha-executor"), 60, "the executor Deployment")
    pod = kube.get("deployment", "alpha-executor")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == EXECUTOR_IMAGE
    assert pod["automountServiceAccountToken"] is False
    cond = wait_for(lambda: (c := _condition(kube, "alpha", "SpecAccepted")) and c["status"] == "True" and c, 60,
                    "SpecAccepted")
    assert cond["reason"] == "Accepted"

    # the binding revoked (anyone who may edit the Secret may do that): executors scaled to zero
    kube.run("annotate", "secret", "vault-keypair", "trading.xorj.io/strategies-")
    wait_for(_refused(kube, "alpha", "SecretNotBound"), 60, "alpha refused once unbound")
    wait_for(lambda: kube.get("deployment", "alpha-executor")["spec"]["replicas"] == 0, 60, "executors scaled to 0")


def test_a_child_the_api_server_refuses_sets_a_condition(kube: Kubectl, operators) -> None:
    """The Deployment is refused (a CPU request above its limit: valid quantities, an invalid pod);
    the handler does not raise (the operators fixture fails on a traceback in the log): ChildrenApplied
    and Ready say why, and a fixed spec heals it at the next reconcile."""
    operators()
    kube.apply(strategy("alpha", executor={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}))
    cond = wait_for(lambda: (c := _condition(kube, "alpha", "ChildrenApplied")) and c["status"] == "False" and c,
                    60, "ChildrenApplied False")
    assert cond["reason"] == "ApplyFailed"
    assert "Deployment alpha-executor" in cond["message"] and "limit" in cond["message"], cond
    assert _condition(kube, "alpha", "Ready")["status"] == "False"
    kube.apply(strategy("alpha", executor={"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}))
    wait_for(lambda: (c := _condition(kube, "alpha", "ChildrenApplied")) and c["status"] == "True", 60,
             "ChildrenApplied True after the fix")
    assert kube.get("deployment", "alpha-executor") is not None
