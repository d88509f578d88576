"""The highly available ledger (ledger.mode=ha, issue 17 §1): Patroni-managed Postgres with Kubernetes
as its configuration store, strict synchronous replication, a Service that follows the primary, a
PodDisruptionBudget and anti-affinity; the single Postgres and the external ledger stay as they were."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.unit.chart.helm import CHART, REPO, named, of_kind, pod_templates, render, template
from tests.unit.chart.test_security import assert_restricted
from xorj.devenv.image import PATRONI_IMAGE, PATRONI_RECIPE

HA = "ledger.mode=ha"
LEDGER_LABELS = {"app.kubernetes.io/name": "xorj-operator", "app.kubernetes.io/instance": "xorj",
                 "app.kubernetes.io/component": "ledger"}


def patroni_settings(documents) -> dict:
    return yaml.safe_load(named(documents, "ConfigMap", "xorj-postgresql-patroni")["data"]["patroni.yml"])


def test_ha_runs_patroni_members_on_the_kubernetes_store_with_strict_synchronous_replication() -> None:
    documents = render(HA)
    statefulset = named(documents, "StatefulSet", "xorj-postgresql")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "localhost/xorj-patroni:4.1.5-pg17"
    assert container["command"] == ["patroni", "/etc/xorj/patroni/patroni.yml"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PATRONI_KUBERNETES_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert {env[k]["valueFrom"]["secretKeyRef"]["key"] for k in
            ("PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD", "PATRONI_REWIND_PASSWORD")} == {
        "superuser-password", "replication-password", "rewind-password"}
    settings = patroni_settings(documents)
    assert settings["kubernetes"]["labels"] == {k: v for k, v in LEDGER_LABELS.items()}
    assert settings["kubernetes"]["use_endpoints"] is False and settings["kubernetes"]["role_label"] == "role"
    assert not {"etcd", "etcd3", "consul", "zookeeper"} & set(settings)
    dcs = settings["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is True
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    # the single Postgres is not rendered beside it
    assert len(of_kind(documents, "StatefulSet")) == 1


def test_strict_mode_and_the_member_count_are_values() -> None:
    documents = render(HA, "postgresql.ha.synchronousModeStrict=false", "postgresql.ha.replicas=2")
    assert patroni_settings(documents)["bootstrap"]["dcs"]["synchronous_mode_strict"] is False
    assert named(documents, "StatefulSet", "xorj-postgresql")["spec"]["replicas"] == 2


def test_the_ledger_service_follows_the_primary_and_the_dsn_does_not_change() -> None:
    single, ha = render(), render(HA)
    assert named(ha, "Service", "xorj-postgresql")["spec"]["selector"] == {
        **{k: v for k, v in LEDGER_LABELS.items()}, "role": "primary"}
    assert "role" not in named(single, "Service", "xorj-postgresql")["spec"]["selector"]
    dsn = [named(d, "Secret", "xorj-ledger")["data"]["dsn"] for d in (single, ha)]
    assert dsn[0] == dsn[1]
    # the members' own logins exist only with ha, and are not the operator's password
    data = named(ha, "Secret", "xorj-ledger")["data"]
    assert len({data["password"], data["replication-password"], data["rewind-password"],
                data["superuser-password"]}) == 4
    assert "replication-password" not in named(single, "Secret", "xorj-ledger")["data"]


def test_patroni_may_touch_only_its_configmaps_and_its_pods_in_the_release_namespace() -> None:
    documents = render(HA)
    role = named(documents, "Role", "xorj-postgresql", "xorj")
    grants = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
              for v in rule["verbs"]}
    assert grants == {("", "configmaps", v) for v in ("create", "get", "list", "patch", "update", "watch", "delete")} | {
        ("", "pods", v) for v in ("get", "list", "patch", "update", "watch")}
    binding = named(documents, "RoleBinding", "xorj-postgresql", "xorj")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "xorj-postgresql", "namespace": "xorj"}]
    assert binding["roleRef"]["name"] == "xorj-postgresql"
    assert not of_kind(documents, "ClusterRole") and not of_kind(documents, "ClusterRoleBinding")
    # the operator's own Role is the same as with the single Postgres
    assert named(documents, "Role", "xorj-operator", "xorj") == named(render(), "Role", "xorj-operator", "xorj")


def test_only_the_operator_and_the_ledger_members_get_an_api_token_and_all_pods_are_restricted() -> None:
    for workload, pod in pod_templates(render(HA)):
        assert_restricted(workload, pod)
        if workload == "StatefulSet/xorj-postgresql":
            assert pod["serviceAccountName"] == "xorj-postgresql" and pod["automountServiceAccountToken"] is True
        elif workload != "Deployment/xorj-operator":
            assert pod.get("automountServiceAccountToken") is False, workload


def test_a_drain_takes_one_member_and_members_spread_over_nodes() -> None:
    documents = render(HA)
    budget = named(documents, "PodDisruptionBudget", "xorj-postgresql")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": LEDGER_LABELS}}
    affinity = named(documents, "StatefulSet", "xorj-postgresql")["spec"]["template"]["spec"]["affinity"]
    (preferred,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert preferred["podAffinityTerm"]["labelSelector"]["matchLabels"] == LEDGER_LABELS
    hard = named(render(HA, "postgresql.ha.antiAffinity=hard"), "StatefulSet", "xorj-postgresql")
    (required,) = hard["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["labelSelector"]["matchLabels"] == LEDGER_LABELS
    assert not of_kind(render(), "PodDisruptionBudget")


def test_members_reach_each_other_and_the_api_server_and_clients_still_only_5432() -> None:
    policy = named(render(HA), "NetworkPolicy", "xorj-ledger")
    member = {"podSelector": {"matchLabels": LEDGER_LABELS}}
    assert {"from": [member], "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 8008}]} \
        in policy["spec"]["ingress"]
    assert all(rule["ports"] == [{"protocol": "TCP", "port": 5432}] for rule in policy["spec"]["ingress"]
               if rule["from"] != [member])
    assert {"to": [member], "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 8008}]} \
        in policy["spec"]["egress"]
    assert any(rule.get("ports") == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
               for rule in policy["spec"]["egress"])
    assert named(render(), "NetworkPolicy", "xorj-ledger")["spec"]["egress"] == []


@pytest.mark.parametrize(("setting", "field"), [
    ("ledger.mode=multi", "mode"),
    ("postgresql.ha.replicas=1", "replicas"),
    ("postgresql.ha.ttlSeconds=10", "ttlSeconds"),
    ("postgresql.ha.antiAffinity=sometimes", "antiAffinity"),
])
def test_bad_ha_values_are_refused_naming_the_field(setting: str, field: str) -> None:
    result = template(HA, setting)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


def test_the_image_recipe_builds_the_tag_the_chart_runs() -> None:
    recipe = (REPO / PATRONI_RECIPE).read_text()
    patroni = re.search(r"^ARG PATRONI_VERSION=(\S+)$", recipe, re.M).group(1)
    major = re.search(r"^ARG PG_MAJOR=(\S+)$", recipe, re.M).group(1)
    values = yaml.safe_load((CHART / "values.yaml").read_text())["postgresql"]["ha"]["image"]
    assert f"{values['repository']}:{values['tag']}" == PATRONI_IMAGE == f"localhost/xorj-patroni:{patroni}-pg{major}"
    assert "USER 999:999" in recipe  # the chart's runAsUser


def test_patroni_itself_accepts_the_rendered_settings(tmp_path) -> None:
    """Patroni's own validator (``patroni --validate-config``) on the rendered patroni.yml, with the
    environment the pod gives it."""
    import os
    import subprocess
    import sys

    from xorj.devenv.postgres import find_bin_dir

    config = tmp_path / "patroni.yml"
    config.write_text(named(render(HA), "ConfigMap", "xorj-postgresql-patroni")["data"]["patroni.yml"])
    env = {**os.environ, "PATH": f"{find_bin_dir()}:{os.environ['PATH']}", "PATRONI_NAME": "xorj-postgresql-0",
           "PATRONI_KUBERNETES_NAMESPACE": "xorj", "PATRONI_KUBERNETES_POD_IP": "10.0.0.5",
           "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "10.0.0.5:5432", "PATRONI_RESTAPI_CONNECT_ADDRESS": "10.0.0.5:8008",
           "PATRONI_SUPERUSER_PASSWORD": "s", "PATRONI_REPLICATION_PASSWORD": "r", "PATRONI_REWIND_PASSWORD": "w"}
    result = subprocess.run([sys.executable, "-m", "patroni", "--validate-config", str(config)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["single", "ha"])
def test_without_persistence_the_ledger_keeps_its_data_in_an_emptydir(mode: str) -> None:
    """A cluster with no volume provisioner (the local development cluster) runs the ledger on an
    emptyDir; the default stays a PersistentVolumeClaim per member."""
    claimed = named(render(f"ledger.mode={mode}"), "StatefulSet", "xorj-postgresql")["spec"]
    assert [t["metadata"]["name"] for t in claimed["volumeClaimTemplates"]] == ["data"]
    assert "data" not in {v["name"] for v in claimed["template"]["spec"]["volumes"]}
    ephemeral = named(render(f"ledger.mode={mode}", "postgresql.persistence.enabled=false"),
                      "StatefulSet", "xorj-postgresql")["spec"]
    assert "volumeClaimTemplates" not in ephemeral
    volumes = {v["name"]: v for v in ephemeral["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    mounts = {m["name"]: m["mountPath"] for m in ephemeral["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["data"].startswith("/var/lib/postgresql")


def test_the_chart_leaves_patronis_own_configmaps_to_patroni() -> None:
    """Patroni's Kubernetes store keeps the cluster's state in ConfigMaps named after its scope
    (<scope>-config, -leader, -sync, -failover) and takes the initialize lock by creating the first:
    a chart-made ConfigMap with one of those names keeps every member from ever initialising the
    cluster (found on the first real run: the single Postgres's xorj-postgresql-config was rendered)."""
    documents = render(HA)
    scope = patroni_settings(documents)["scope"]
    patronis = {f"{scope}-{suffix}" for suffix in ("config", "leader", "sync", "failover", "initialize")}
    assert not patronis & {d["metadata"]["name"] for d in of_kind(documents, "ConfigMap")}
    # the single Postgres keeps its pg_hba.conf and init script
    named(render(), "ConfigMap", "xorj-postgresql-config")


def test_the_members_carry_the_labels_patroni_lists_them_by() -> None:
    """Patroni's Kubernetes store selects its members by kubernetes.labels plus scope_label
    (cluster-name) = scope; a pod without the latter is invisible to the others (no replica could
    clone the leader)."""
    documents = render(HA)
    settings = patroni_settings(documents)
    selector = {**settings["kubernetes"]["labels"], settings["kubernetes"].get("scope_label", "cluster-name"):
                settings["scope"]}
    pod_labels = named(documents, "StatefulSet", "xorj-postgresql")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()


def test_a_member_clones_the_primary_with_an_immediate_checkpoint() -> None:
    """pg_basebackup's default spread checkpoint kept the first real run's replicas cloning for
    minutes; a replaced member must be a standby again within seconds."""
    assert {"checkpoint": "fast"} in patroni_settings(render(HA))["postgresql"]["basebackup"]
