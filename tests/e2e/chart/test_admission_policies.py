"""The chart's ValidatingAdmissionPolicies on the real API server (admissionregistration.k8s.io/v1).

- Secret bindings: only a vault binder (the chart's vaultBinding.binders; the cluster admin here) may
  add or change the annotation trading.xorj.io/strategies on a Secret; a tenant who may edit Secrets
  can create and update unbound ones, and can remove a binding (a revocation), never add one.
- https endpoints: a TradingStrategy with an http endpoint is refused unless the chart's development
  setting executor.allowInsecureEndpoints is on.

The policies are rendered by helm from the chart and applied as the admin; the tenant is an
impersonated user with a Role on Secrets and TradingStrategies in the test namespace.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from tests.e2e.operator.manifests import strategy
from tests.unit.chart.helm import CHART, KUBE_VERSION, TEST_ENDPOINT_SETS, TEST_LEDGER_PASSWORD

pytestmark = [pytest.mark.cluster]

ANNOTATION = "trading.xorj.io/strategies"
TENANT = ("--as=tenant-1", "--as-group=tenants")
HTTPS = {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example"}


def _policies(k8s_cluster, namespace: str, *sets: str) -> list[dict]:
    args = ["template", "xorj", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
            "--set", f"watchNamespaces={{{namespace}}}", "--show-only", "templates/admission-policies.yaml",
            "--set-string", f"postgresql.password={TEST_LEDGER_PASSWORD}"]
    for item in (*TEST_ENDPOINT_SETS, *sets):
        args += ["--set", item]
    result = k8s_cluster.helm(*args)
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _kubectl(k8s_cluster, namespace: str, *args: str, input: str | None = None, tenant: bool = False):
    return k8s_cluster.kubectl(*(TENANT if tenant else ()), "-n", namespace, *args, input=input, check=False)


def _secret(name: str, bound_to: str | None = None, value: str = "[]") -> str:
    meta: dict = {"name": name}
    if bound_to is not None:
        meta["annotations"] = {ANNOTATION: bound_to}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"keypair.json": value}})


@pytest.fixture
def tenant_namespace(k8s_cluster, k8s_namespace):
    """The chart's policies for this namespace, and a tenant who may edit Secrets and strategies in it."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "tenant"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update", "patch"]},
                      {"apiGroups": ["trading.xorj.io"], "resources": ["tradingstrategies"],
                       "verbs": ["get", "create", "update", "patch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "tenant"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
               "subjects": [{"kind": "User", "name": "tenant-1", "apiGroup": "rbac.authorization.k8s.io"}]}
    for obj in (role, binding):
        assert _kubectl(k8s_cluster, k8s_namespace, "apply", "-f", "-", input=json.dumps(obj)).returncode == 0
    for path in sorted(CHART.parent.parent.joinpath("crds").glob("trading.xorj.io_*.yaml")):
        k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    k8s_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/tradingstrategies.trading.xorj.io")
    docs = _policies(k8s_cluster, k8s_namespace)
    assert {d["kind"] for d in docs} == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    k8s_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    yield k8s_namespace
    for doc in docs:
        k8s_cluster.kubectl("delete", doc["kind"], doc["metadata"]["name"], "--ignore-not-found", check=False)


def _refused_soon(run, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """A new policy takes a moment to reach the API server's admission: retry until it refuses."""
    deadline = time.monotonic() + timeout
    while True:
        result = run()
        if result.returncode != 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_only_a_vault_binder_binds_a_secret_to_a_strategy(k8s_cluster, tenant_namespace) -> None:
    ns = tenant_namespace
    # the tenant creating a Secret already bound to a strategy: refused
    n = 0

    def tenant_creates_bound() -> subprocess.CompletedProcess[str]:
        nonlocal n
        n += 1
        return _kubectl(k8s_cluster, ns, "create", "-f", "-", input=_secret(f"probe-{n}", "alpha"), tenant=True)

    refused = _refused_soon(tenant_creates_bound)
    assert refused.returncode != 0, "the tenant created a bound Secret"
    assert f"the annotation {ANNOTATION} binds this Secret" in refused.stderr, refused.stderr
    assert "only a vault binder may add or change it, and tenant-1 is not one" in refused.stderr

    # the tenant's own unbound Secret: fine; binding it afterwards: refused, as annotate and as apply
    assert _kubectl(k8s_cluster, ns, "create", "-f", "-", input=_secret("mine"), tenant=True).returncode == 0
    result = _kubectl(k8s_cluster, ns, "annotate", "secret", "mine", f"{ANNOTATION}=alpha", tenant=True)
    assert result.returncode != 0 and "only a vault binder" in result.stderr, result.stderr
    assert ANNOTATION not in (json.loads(_kubectl(k8s_cluster, ns, "get", "secret", "mine", "-o", "json").stdout)
                              ["metadata"].get("annotations") or {})

    # the admin (a binder: system:masters) binds it; the tenant may then neither widen nor re-target it
    assert _kubectl(k8s_cluster, ns, "annotate", "secret", "mine", f"{ANNOTATION}=alpha").returncode == 0
    for value in ("alpha,beta", "beta"):
        result = _kubectl(k8s_cluster, ns, "annotate", "--overwrite", "secret", "mine", f"{ANNOTATION}={value}",
                          tenant=True)
        assert result.returncode != 0 and "only a vault binder" in result.stderr, (value, result.stderr)
    # ...but may update its data (the binding unchanged), and may revoke the binding
    patch = json.dumps({"stringData": {"keypair.json": "[1]"}})
    assert _kubectl(k8s_cluster, ns, "patch", "secret", "mine", "--type=merge", "-p", patch,
                    tenant=True).returncode == 0
    assert _kubectl(k8s_cluster, ns, "annotate", "secret", "mine", f"{ANNOTATION}-", tenant=True).returncode == 0


def test_http_endpoints_refused_unless_the_development_setting_is_on(k8s_cluster, tenant_namespace) -> None:
    ns = tenant_namespace
    n = 0

    def tenant_creates_plain() -> subprocess.CompletedProcess[str]:
        nonlocal n
        n += 1  # a new name each try: until the policy is active, a probe may be admitted
        plain = strategy(f"plain-{n}", endpoints={"rpcUrl": "http://rpc.example", "swapApiUrl": "https://swap.example"})
        return _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(plain), tenant=True)

    refused = _refused_soon(tenant_creates_plain)
    assert refused.returncode != 0, "an http endpoint was admitted"
    assert "spec.endpoints.rpcUrl must use https" in refused.stderr, refused.stderr
    swap = strategy("plain", endpoints={"rpcUrl": "https://rpc.example", "swapApiUrl": "http://swap.example"})
    result = _kubectl(k8s_cluster, ns, "apply", "-f", "-", input=json.dumps(swap), tenant=True)
    assert result.returncode != 0 and "spec.endpoints.swapApiUrl must use https" in result.stderr, result.stderr
    ok = strategy("secure", endpoints=HTTPS)
    assert _kubectl(k8s_cluster, ns, "apply", "-f", "-", input=json.dumps(ok), tenant=True).returncode == 0
    # changing a stored strategy's endpoints to http is refused as well; other changes are not checked
    downgrade = strategy("secure", endpoints={**HTTPS, "swapApiUrl": "http://swap.example"})
    result = _kubectl(k8s_cluster, ns, "apply", "-f", "-", input=json.dumps(downgrade), tenant=True)
    assert result.returncode != 0 and "spec.endpoints.swapApiUrl must use https" in result.stderr, result.stderr

    # with the development setting the chart renders no endpoint policy at all
    dev = _policies(k8s_cluster, ns, "executor.allowInsecureEndpoints=true")
    assert not [d for d in dev if "https-endpoints" in d["metadata"]["name"]]
    assert [d for d in dev if "secret-binding" in d["metadata"]["name"]]
