"""The chart's ValidatingAdmissionPolicies, as rendered (their behaviour on the real API server is
tests/e2e/chart/test_admission_policies.py)."""

from __future__ import annotations

from tests.unit.chart.helm import of_kind, render


def _by_name(documents, kind):
    return {d["metadata"]["name"]: d for d in of_kind(documents, kind)}


def test_policies_bound_to_the_watched_namespaces_and_named_per_release_namespace() -> None:
    documents = render("watchNamespaces={a,b}")
    policies = _by_name(documents, "ValidatingAdmissionPolicy")
    bindings = _by_name(documents, "ValidatingAdmissionPolicyBinding")
    # cluster-scoped: the release namespace in the name keeps two releases from colliding
    assert set(policies) == set(bindings) == {"xorj-xorj-secret-binding", "xorj-xorj-https-endpoints",
                                               "xorj-xorj-ledger-client"}
    for name, binding in bindings.items():
        assert binding["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert binding["spec"]["policyName"] == name
        assert binding["spec"]["validationActions"] == ["Deny"]
        expression = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]
        assert expression == {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}
    for policy in policies.values():
        assert policy["spec"]["failurePolicy"] == "Fail"


def test_binders_reach_the_secret_policy() -> None:
    documents = render("vaultBinding.binders.groups={ops:vault}", "vaultBinding.binders.users={alice}")
    policy = _by_name(documents, "ValidatingAdmissionPolicy")["xorj-xorj-secret-binding"]
    binder = next(v for v in policy["spec"]["variables"] if v["name"] == "binder")["expression"]
    assert '["alice"]' in binder and '["ops:vault"]' in binder
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["secrets"]


def test_development_setting_drops_the_https_policy_and_policy_can_be_disabled() -> None:
    names = set(_by_name(render("executor.allowInsecureEndpoints=true"), "ValidatingAdmissionPolicy"))
    assert names == {"xorj-xorj-secret-binding", "xorj-xorj-ledger-client"}
    names = set(_by_name(render("vaultBinding.policy.enabled=false"), "ValidatingAdmissionPolicy"))
    assert names == {"xorj-xorj-https-endpoints", "xorj-xorj-ledger-client"}
    names = set(_by_name(render("ledgerClient.policy.enabled=false"), "ValidatingAdmissionPolicy"))
    assert names == {"xorj-xorj-secret-binding", "xorj-xorj-https-endpoints"}


def _creator_expression(documents, name: str = "xorj-xorj-ledger-client") -> str:
    policy = _by_name(documents, "ValidatingAdmissionPolicy")[name]
    return next(v for v in policy["spec"]["variables"] if v["name"] == "creator")["expression"]


def test_ledger_client_label_is_kept_to_the_operator_and_the_pod_making_controllers() -> None:
    documents = render(namespace="trading")
    creator = _creator_expression(documents, "xorj-trading-ledger-client")
    # the operator's ServiceAccount, and both identities kube-controller-manager's Deployment and
    # ReplicaSet controllers may use (with and without --use-service-account-credentials)
    assert ('["system:serviceaccount:trading:xorj-operator",'
            '"system:serviceaccount:kube-system:deployment-controller",'
            '"system:serviceaccount:kube-system:replicaset-controller",'
            '"system:kube-controller-manager"]') in creator
    assert "g in []" in creator  # no group by default: not even cluster admins
    policy = [d for d in documents if d.get("kind") == "ValidatingAdmissionPolicy"
              and d["metadata"]["name"] == "xorj-trading-ledger-client"][0]
    resources = {(g, r) for rule in policy["spec"]["matchConstraints"]["resourceRules"]
                 for g in rule["apiGroups"] for r in rule["resources"]}
    # every kind that makes pods, so no allowed controller turns a tenant's template into labelled pods
    assert resources == {("", "pods"), ("", "pods/ephemeralcontainers"), ("", "replicationcontrollers"),
                         ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
                         ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs")}
    for rule in policy["spec"]["matchConstraints"]["resourceRules"]:
        assert rule["operations"] == ["CREATE", "UPDATE"]


def test_ledger_client_creators_come_from_values() -> None:
    creator = _creator_expression(render("ledgerClient.creators.users={kwok-admin}",
                                         "ledgerClient.creators.groups={ops:platform}",
                                         "operator.serviceAccount.name=op"))
    assert '["system:serviceaccount:xorj:op","kwok-admin"]' in creator
    assert 'g in ["ops:platform"]' in creator
