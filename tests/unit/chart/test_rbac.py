"""Least privilege: namespaced Roles only, no wildcards, nothing the operator does not use."""

from __future__ import annotations

import pytest

from tests.unit.chart.helm import of_kind, render

DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}
# secrets: "get" for the metadata of the Secrets a strategy names (issue 11's binding check; the
# operator asks for PartialObjectMetadata, see test_operator_reads_secret_metadata_only), and writing
# the executors' ledger login Secret (test_operator_writes_only_the_executor_ledger_secret)
FORBIDDEN_RESOURCES = {"pods/exec", "pods/attach", "serviceaccounts/token", "roles",
                       "rolebindings", "clusterroles", "clusterrolebindings", "nodes", "*"}


def rules_of(documents) -> list[dict]:
    return [r for role in of_kind(documents, "Role") for r in role["rules"]]


def grants(rules) -> set[tuple[str, str, str]]:
    return {(g, res, v) for r in rules for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={a,b}",), ("operator.enabled=false",)])
def test_no_cluster_wide_grants_and_no_wildcards(sets) -> None:
    documents = render(*sets)
    assert not of_kind(documents, "ClusterRole") and not of_kind(documents, "ClusterRoleBinding")
    for group, resource, verb in grants(rules_of(documents)):
        assert group != "*" and resource not in FORBIDDEN_RESOURCES and verb not in DANGEROUS_VERBS, (
            group, resource, verb)
    for rule in rules_of(documents):
        assert "resourceNames" not in rule or rule["resourceNames"]


def test_a_role_per_watched_namespace_bound_to_the_operator_only() -> None:
    documents = render("watchNamespaces={a,b}")
    assert {r["metadata"]["namespace"] for r in of_kind(documents, "Role")} == {"a", "b"}
    for binding in of_kind(documents, "RoleBinding"):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "xorj-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "xorj-operator",
                                        "namespace": "xorj"}]


def test_executors_are_bound_to_nothing() -> None:
    documents = render("watchNamespaces={a,b}")
    for binding in of_kind(documents, "RoleBinding"):
        assert all(s["name"] != "xorj-executor" for s in binding["subjects"])


def test_operator_may_apply_every_child_of_a_strategy() -> None:
    """Server-side apply of each object xorj.controller.tradingstrategy.desired builds needs create and patch."""
    from xorj.controller.models import TradingStrategySpec
    from xorj.controller.tradingstrategy import desired

    spec = TradingStrategySpec.model_validate({
        "traders": ["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"],
        "vault": {"publicKey": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "secretName": "vault"},
        "endpoints": {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example"},
    })
    children = desired.children(desired.Owner("s", "u"), "xorj", spec, desired.ExecutorDefaults())
    granted = grants(rules_of(render()))
    plural = {"ConfigMap": "configmaps", "Service": "services", "Deployment": "deployments",
              "PodDisruptionBudget": "poddisruptionbudgets"}
    for child in children:
        group = child["apiVersion"].rpartition("/")[0]
        for verb in ("create", "patch"):  # server-side apply, creating or updating
            assert (group, plural[child["kind"]], verb) in granted, (child["kind"], verb)


def test_operator_may_mirror_status_and_post_events() -> None:
    granted = grants(rules_of(render()))
    for resource in ("tradingstrategies", "copytrades", "traderpools"):
        for verb in ("list", "watch", "patch"):
            assert ("trading.xorj.io", resource, verb) in granted
        assert ("trading.xorj.io", f"{resource}/status", "patch") in granted
    assert ("", "events", "create") in granted
    assert ("", "configmaps", "list") in granted  # TraderPool.spec.walletConfigMaps
    assert ("kopf.dev", "kopfpeerings", "patch") in granted
    assert ("kopf.dev", "kopfpeerings", "patch") not in grants(rules_of(render("operator.peering=")))


def test_operator_reads_secrets_only_by_get_and_writes_only_the_executor_ledger_secret() -> None:
    """Issue 11: the operator checks each referenced Secret's binding annotation: it may get a Secret
    (never list or watch one), and it asks for the metadata only. It makes each namespace's ledger
    login Secret: it may create Secrets (a name cannot limit create) and patch that one only. Without
    executor logins, it may only get."""
    rules = [r for r in rules_of(render("watchNamespaces={a,b}")) if "secrets" in r["resources"]]
    assert {v for r in rules if not r.get("resourceNames") for v in r["verbs"]} == {"get", "create"}
    by_name = [r for r in rules if r.get("resourceNames")]
    assert by_name and all(r["resourceNames"] == ["xorj-ledger-executor"] and r["verbs"] == ["patch"]
                           for r in by_name)
    without = grants(rules_of(render("ledger.executorLogins=false")))
    assert {v for g, r, v in without if r == "secrets"} == {"get"}


def test_operator_reads_secret_metadata_only() -> None:
    from xorj.controller import kube

    assert kube.METADATA_ONLY.startswith("application/json;as=PartialObjectMetadata;")


def test_pool_scoring_interval_is_a_chart_value() -> None:
    from tests.unit.chart.helm import named, template
    from tests.unit.chart.helm import render as render_chart

    def env(*values: str) -> dict[str, str]:
        (container,) = named(render_chart(*values), "Deployment", "xorj-operator")["spec"]["template"]["spec"][
            "containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert env()["XORJ_OPERATOR_POOL_SCORE_SECONDS"] == "60"
    assert env("operator.poolScoreSeconds=15")["XORJ_OPERATOR_POOL_SCORE_SECONDS"] == "15"
    refused = template("operator.poolScoreSeconds=0")
    assert refused.returncode != 0 and "poolScoreSeconds" in refused.stderr
    assert env()["XORJ_OPERATOR_POOL_SWAPS_CHECK_SECONDS"] == "5"
    assert env("operator.poolSwapsCheckSeconds=2")["XORJ_OPERATOR_POOL_SWAPS_CHECK_SECONDS"] == "2"
    refused = template("operator.poolSwapsCheckSeconds=0")
    assert refused.returncode != 0 and "poolSwapsCheckSeconds" in refused.stderr
