"""The chart's ValidatingAdmissionPolicies on the real API server (admissionregistration.k8s.io/v1).

- Secret bindings: only a vault binder (the chart's vaultBinding.binders; the cluster admin here) may
  add or change the annotation trading.xorj.io/strategies on a Secret; a tenant who may edit Secrets
  can create and update unbound ones, and can remove a binding (a revocation), never add one.
- https endpoints: a TradingStrategy with an http endpoint is refused unless the chart's development
  setting executor.allowInsecureEndpoints is on.
- Ledger clients: the label trading.xorj.io/ledger-client (which the bundled ledger's NetworkPolicy
  admits) is refused on a tenant's Pods, Deployments and ReplicaSets, created or changed; the
  operator's executor Deployment still becomes labelled pods, made by kube-controller-manager's
  controllers under the identity the chart's ledgerClient.creators lists.

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
from tests.e2e.waiting import wait_until
from tests.unit.chart.helm import CHART, KUBE_VERSION, TEST_ENDPOINT_SETS, TEST_LEDGER_PASSWORD, TEST_LEDGER_TLS_SECRET

pytestmark = [pytest.mark.cluster]

ANNOTATION = "trading.xorj.io/strategies"
TENANT = ("--as=tenant-1", "--as-group=tenants")
HTTPS = {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example"}


def _policies(k8s_cluster, namespace: str, *sets: str) -> list[dict]:
    args = ["template", "xorj", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
            "--set", f"watchNamespaces={{{namespace}}}", "--show-only", "templates/admission-policies.yaml",
            "--set-string", f"postgresql.password={TEST_LEDGER_PASSWORD}",
            # helm template keeps no generated certificate: name one, as the unit renders do
            "--set-string", f"postgresql.tls.existingSecret={TEST_LEDGER_TLS_SECRET}"]
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


LEDGER_CLIENT = "trading.xorj.io/ledger-client"


def _ledger_client_policy(k8s_cluster, namespace: str, *creators: str) -> list[dict]:
    """The chart's ledger-client policy for this namespace; creators replace ledgerClient.creators.users."""
    sets = [f"ledgerClient.creators.users={{{','.join(creators)}}}"] if creators else []
    docs = [d for d in _policies(k8s_cluster, namespace, *sets) if d["metadata"]["name"].endswith("-ledger-client")]
    assert len(docs) == 2
    k8s_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return docs


def _pod(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.example/tenant:1"}]}}


def _workload(kind: str, name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, **labels}},
                                  "spec": _pod(name, {})["spec"]}}}


def _other_pod_makers(labels: dict[str, str]) -> list[dict]:
    suffix = "-labelled" if labels else "-plain"
    statefulset = _workload("StatefulSet", "set" + suffix, labels)
    statefulset["spec"]["serviceName"] = "set"
    daemonset = _workload("DaemonSet", "daemon" + suffix, labels)
    del daemonset["spec"]["replicas"]
    job_template = {"metadata": {"labels": labels}, "spec": {**_pod("job", {})["spec"], "restartPolicy": "Never"}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job" + suffix},
           "spec": {"template": job_template}}
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cron" + suffix},
               "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": job_template}}}}
    controller = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc" + suffix},
                  "spec": {"replicas": 0, "selector": {"app": "rc" + suffix},
                           "template": {"metadata": {"labels": {"app": "rc" + suffix, **labels}},
                                        "spec": _pod("rc", {})["spec"]}}}
    return [statefulset, daemonset, job, cronjob, controller]


@pytest.fixture
def ledger_client_namespace(k8s_cluster, k8s_namespace):
    """A tenant who may create and edit Pods, Deployments and ReplicaSets in the namespace, and the
    operator's ServiceAccount (xorj-operator, as the chart names it) with its rights on Deployments."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "workloads"},
            "rules": [{"apiGroups": [""], "resources": ["pods", "pods/ephemeralcontainers"],
                       "verbs": ["get", "create", "update", "patch"]},
                      {"apiGroups": [""], "resources": ["replicationcontrollers"], "verbs": ["create"]},
                      {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"],
                       "verbs": ["get", "create", "update", "patch"]},
                      {"apiGroups": ["apps"], "resources": ["statefulsets", "daemonsets"], "verbs": ["create"]},
                      {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["create"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "workloads"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "workloads"},
               "subjects": [{"kind": "User", "name": "tenant-1", "apiGroup": "rbac.authorization.k8s.io"},
                            {"kind": "ServiceAccount", "name": "xorj-operator", "namespace": k8s_namespace}]}
    for obj in (role, binding):
        assert _kubectl(k8s_cluster, k8s_namespace, "apply", "-f", "-", input=json.dumps(obj)).returncode == 0
    yield k8s_namespace
    for name in ("secret-binding", "https-endpoints", "ledger-client"):
        for kind in ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy"):
            k8s_cluster.kubectl("delete", kind, f"xorj-{k8s_namespace}-{name}", "--ignore-not-found", check=False)


def test_a_tenant_cannot_put_the_ledger_client_label_on_a_pod(k8s_cluster, ledger_client_namespace) -> None:
    ns = ledger_client_namespace
    _ledger_client_policy(k8s_cluster, ns)
    n = 0

    def tenant_creates_labelled_pod() -> subprocess.CompletedProcess[str]:
        nonlocal n
        n += 1
        pod = _pod(f"copycat-{n}", {LEDGER_CLIENT: "true", "app.kubernetes.io/component": "executor"})
        return _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(pod), tenant=True)

    refused = _refused_soon(tenant_creates_labelled_pod)
    assert refused.returncode != 0, "the tenant created a pod with the ledger-client label"
    assert f"the label {LEDGER_CLIENT} admits a pod to the ledger" in refused.stderr, refused.stderr
    assert "and tenant-1 is not one" in refused.stderr
    # any value of it, not only "true"
    result = _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(_pod("other", {LEDGER_CLIENT: "x"})),
                      tenant=True)
    assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, result.stderr

    # without the label: fine; adding it to the running pod afterwards: refused
    assert _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(_pod("plain", {"app": "plain"})),
                    tenant=True).returncode == 0
    result = _kubectl(k8s_cluster, ns, "label", "pod", "plain", f"{LEDGER_CLIENT}=true", tenant=True)
    assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, result.stderr
    labels = json.loads(_kubectl(k8s_cluster, ns, "get", "pod", "plain", "-o", "json").stdout)["metadata"]["labels"]
    assert LEDGER_CLIENT not in labels
    assert _kubectl(k8s_cluster, ns, "label", "pod", "plain", "team=blue", tenant=True).returncode == 0

    # nor through a workload whose pods an allowed controller would make: Deployment and ReplicaSet
    for kind in ("Deployment", "ReplicaSet"):
        labelled = _workload(kind, f"copycat-{kind.lower()}", {LEDGER_CLIENT: "true"})
        result = _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(labelled), tenant=True)
        assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, (kind, result.stderr)
    # ...nor through any other kind that makes pods (without --use-service-account-credentials every
    # controller acts as the one allowed system:kube-controller-manager)
    for manifest in _other_pod_makers({LEDGER_CLIENT: "true"}):
        result = _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(manifest), tenant=True)
        assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, (
            manifest["kind"], result.stderr)
    for manifest in _other_pod_makers({}):  # the same without the label: the tenant's to make
        result = _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(manifest), tenant=True)
        assert result.returncode == 0, (manifest["kind"], result.stderr)
    plain = _workload("Deployment", "tenant-app", {})
    assert _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(plain), tenant=True).returncode == 0
    patch = json.dumps({"spec": {"template": {"metadata": {"labels": {LEDGER_CLIENT: "true"}}}}})
    result = _kubectl(k8s_cluster, ns, "patch", "deployment", "tenant-app", "--type=merge", "-p", patch, tenant=True)
    assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, result.stderr


def _executor_deployment(namespace: str, strategy: str) -> dict:
    """The executor Deployment exactly as the operator builds it (owner reference left out: there is
    no TradingStrategy here, and the garbage collector would delete a child of a missing owner)."""
    from tests.unit.controller.factories import strategy_spec
    from xorj.controller.models import TradingStrategySpec
    from xorj.controller.tradingstrategy import desired

    spec = TradingStrategySpec.model_validate(strategy_spec())
    deployment = desired.deployment(desired.Owner(name=strategy, uid="no-owner"), namespace, spec,
                                     desired.ExecutorDefaults())
    del deployment["metadata"]["ownerReferences"]
    assert deployment["spec"]["template"]["metadata"]["labels"][desired.LEDGER_CLIENT_LABEL] == "true"
    return deployment


def test_the_operators_executor_deployment_still_becomes_labelled_pods(k8s_cluster, ledger_client_namespace) -> None:
    ns = ledger_client_namespace
    operator = (f"--as=system:serviceaccount:{ns}:xorj-operator",)
    chart_defaults = yaml.safe_load((CHART / "values.yaml").read_text())["ledgerClient"]["creators"]["users"]
    controllers = k8s_cluster.local.controller_manager_user()

    # With the chart's defaults alone, on this cluster (whose controller manager runs as the admin,
    # without --use-service-account-credentials), the Deployment controller is refused the
    # ReplicaSet: the policy does judge the controllers' own requests, by their identity.
    _ledger_client_policy(k8s_cluster, ns)
    refused = _refused_soon(lambda: _kubectl(k8s_cluster, ns, "create", "-f", "-", tenant=True,
                                             input=json.dumps(_pod("probe", {LEDGER_CLIENT: "true"}))))
    assert refused.returncode != 0, refused.stdout
    first = _executor_deployment(ns, "alpha")
    assert _kubectl(k8s_cluster, ns, *operator, "create", "-f", "-", input=json.dumps(first)).returncode == 0

    def replica_set_refused() -> str | None:
        status = json.loads(_kubectl(k8s_cluster, ns, "get", "deployment", "alpha-executor", "-o", "json").stdout)
        for condition in status.get("status", {}).get("conditions", []):
            if condition.get("reason") == "ReplicaSetCreateError":
                return condition["message"]
        return None

    message = wait_until(replica_set_refused, 90, "the ReplicaSet of the first Deployment refused")
    assert f"and {controllers} is not one" in message, message

    # With this cluster's controller identity listed, the operator's Deployment becomes pods: made by
    # the Deployment and ReplicaSet controllers, carrying the label the ledger admits.
    _ledger_client_policy(k8s_cluster, ns, *chart_defaults, controllers)
    second = _executor_deployment(ns, "beta")
    assert _kubectl(k8s_cluster, ns, *operator, "create", "-f", "-", input=json.dumps(second)).returncode == 0

    def labelled_pods() -> list[dict]:
        pods = json.loads(_kubectl(k8s_cluster, ns, "get", "pods", "-l", "trading.xorj.io/strategy=beta",
                                   "-o", "json").stdout)["items"]
        return pods

    pods = wait_until(labelled_pods, 90, "the executor pods of the second Deployment")
    for pod in pods:
        assert pod["metadata"]["labels"][LEDGER_CLIENT] == "true"
        assert [o["kind"] for o in pod["metadata"]["ownerReferences"]] == ["ReplicaSet"]
    # the tenant may not run its own code inside a labelled pod: an ephemeral container is refused
    # there, and admitted on the tenant's own unlabelled pod (so it is the policy, not RBAC, refusing)
    debug = json.dumps({"spec": {"ephemeralContainers": [{"name": "debug", "image": "registry.example/tools:1"}]}})
    result = _kubectl(k8s_cluster, ns, "patch", "pod", pods[0]["metadata"]["name"], "--subresource=ephemeralcontainers",
                      "--type=strategic", "-p", debug, tenant=True)
    assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, result.stderr
    assert _kubectl(k8s_cluster, ns, "create", "-f", "-", input=json.dumps(_pod("own", {"app": "own"})),
                    tenant=True).returncode == 0
    result = _kubectl(k8s_cluster, ns, "patch", "pod", "own", "--subresource=ephemeralcontainers",
                      "--type=strategic", "-p", debug, tenant=True)
    assert result.returncode == 0, result.stderr
    # nor change the operator's labelled Deployment's pods
    patch = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "executor", "image": "evil:1"}]}}}})
    result = _kubectl(k8s_cluster, ns, "patch", "deployment", "beta-executor", "--type=strategic", "-p", patch,
                      tenant=True)
    assert result.returncode != 0 and "admits a pod to the ledger" in result.stderr, result.stderr
    # ...but a change that keeps the pod spec (scaling) is the tenant's to make
    assert _kubectl(k8s_cluster, ns, "patch", "deployment", "beta-executor", "--type=merge",
                    "-p", json.dumps({"spec": {"replicas": 2}}), tenant=True).returncode == 0
