"""helm lint and helm template: clean for every supported shape of the values."""

from __future__ import annotations

import base64
import re

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.unit.chart.helm import (
    CHART,
    KUBE_VERSION,
    TEST_ENDPOINT_SETS,
    TEST_LEDGER_PASSWORD,
    TEST_LEDGER_TLS_SECRET,
    helm,
    named,
    of_kind,
    render,
    template,
)

VARIANTS = {
    "defaults": (),
    "ha-ledger": ("ledger.mode=ha",),
    "external-ledger": ("postgresql.enabled=false", "ledger.existingSecret=pg-app",
                        "ledger.podSelector.cnpg\\.io/cluster=pg"),
    "monitoring": ("metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"),
    "multi-namespace": ("watchNamespaces={team-a,team-b}",),
    "operator-off": ("operator.enabled=false",),
    "standalone": ("operator.peering=", "networkPolicy.enabled=false"),
    "watcher": ("watcher.enabled=true", "watcher.rpcUrl=https://rpc.example",
                "watcher.priceApiUrl=https://price.example/price/v3", "watcher.wsUrl=wss://rpc.example"),
}


@pytest.mark.parametrize("sets", VARIANTS.values(), ids=VARIANTS.keys())
def test_lint_is_clean(sets: tuple[str, ...]) -> None:
    args = [a for s in sets for a in ("--set", s)]
    result = helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART),
                  "--set-string", f"postgresql.password={TEST_LEDGER_PASSWORD}",
                  "--set-string", f"postgresql.tls.existingSecret={TEST_LEDGER_TLS_SECRET}",
                  *[a for s in TEST_ENDPOINT_SETS for a in ("--set", s)], *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


# The admission policies (issue 11) are the chart's only cluster-scoped objects.
CLUSTER_SCOPED = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


@pytest.mark.parametrize("sets", VARIANTS.values(), ids=VARIANTS.keys())
def test_template_renders_valid_objects(sets: tuple[str, ...]) -> None:
    documents = render(*sets)
    assert documents
    for d in documents:
        assert d.get("apiVersion") and d.get("kind"), d
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", d["metadata"]["name"]), d["metadata"]
        assert len(d["metadata"]["name"]) <= 63
        if d["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in d["metadata"], d["metadata"]
        else:
            assert d["metadata"].get("namespace"), f"{d['kind']} {d['metadata']['name']} has no namespace"


def test_operator_deployment_is_recreate_for_kopf_peering() -> None:
    deployment = named(render(), "Deployment", "xorj-operator")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "operator" and "--namespace=xorj" in args
    assert "--peering-name=xorj-operator" in args and "--standalone" not in args


def test_standalone_when_peering_is_off() -> None:
    documents = render("operator.peering=")
    args = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args and not any(a.startswith("--peering") for a in args)
    assert not of_kind(documents, "KopfPeering")


def test_operator_disabled_still_installs_rbac_and_accounts() -> None:
    documents = render("operator.enabled=false")
    assert not of_kind(documents, "Deployment")
    assert of_kind(documents, "Role") and of_kind(documents, "RoleBinding")
    assert {d["metadata"]["name"] for d in of_kind(documents, "ServiceAccount")} == {
        "xorj-operator", "xorj-executor"}


def test_executor_defaults_reach_the_operator() -> None:
    documents = render("executor.metricsPort=9200", "image.repository=reg.local/xorj", "image.tag=1.2.3")
    container = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg.local/xorj:1.2.3"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["XORJ_OPERATOR_EXECUTOR_SERVICE_ACCOUNT"] == "xorj-executor"
    assert env["XORJ_OPERATOR_EXECUTOR_METRICS_PORT"] == "9200"
    assert env["XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET"] == "xorj-ledger-executor"  # each namespace's own login
    assert env["XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS"] == "true"
    assert env["XORJ_LEDGER_DSN"] == {"secretKeyRef": {"name": "xorj-ledger", "key": "dsn"}}
    assert "XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR" not in env  # unset: executors may run anywhere
    # issue 11: the executor image is the operator's (here: the chart's image), http is off
    assert env["XORJ_OPERATOR_EXECUTOR_IMAGE"] == "reg.local/xorj:1.2.3"
    assert env["XORJ_OPERATOR_EXECUTOR_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert env["XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS"] == "false"


def test_executor_image_and_development_setting_from_values() -> None:
    documents = render("executor.image.repository=reg.local/executor", "executor.image.tag=2.0",
                       "executor.image.pullPolicy=Always", "executor.allowInsecureEndpoints=true")
    container = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["XORJ_OPERATOR_EXECUTOR_IMAGE"] == "reg.local/executor:2.0"
    assert env["XORJ_OPERATOR_EXECUTOR_IMAGE_PULL_POLICY"] == "Always"
    assert env["XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS"] == "true"


@pytest.mark.parametrize("sets, expected", [((), True), (("executor.signerSidecar=false",), False)],
                         ids=["default", "opt-out"])
def test_the_signer_sidecar_is_a_chart_value_the_operator_reads(monkeypatch, sets, expected) -> None:
    """executor.signerSidecar, on by default: the vault keys only in the signer sidecar of each executor
    pod; false is the opt-out to the executor's in-process keyring."""
    from xorj.controller.settings import OperatorSettings

    documents = render(*sets)
    container = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://x@h/db")
    monkeypatch.setenv("XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR", env["XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR"])
    assert OperatorSettings().executor.signer_sidecar is expected


def test_a_signer_sidecar_value_that_is_no_boolean_is_refused_naming_it() -> None:
    result = template(extra=("--set-string", "executor.signerSidecar=maybe"))
    assert result.returncode != 0 and "signerSidecar" in result.stderr


def test_executor_placement_reaches_the_operator_as_json(monkeypatch) -> None:
    from xorj.controller.settings import OperatorSettings

    documents = render("executor.nodeSelector.pool=vaults", "executor.tolerations[0].key=vaults",
                       "executor.tolerations[0].operator=Exists")
    container = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    monkeypatch.setenv("XORJ_LEDGER_DSN", "postgresql://x@h/db")
    for name in ("XORJ_OPERATOR_EXECUTOR_NODE_SELECTOR", "XORJ_OPERATOR_EXECUTOR_TOLERATIONS"):
        monkeypatch.setenv(name, env[name])
    settings = OperatorSettings()  # parsed as the operator parses its environment
    assert settings.executor.node_selector == {"pool": "vaults"}
    assert settings.executor.tolerations == [{"key": "vaults", "operator": "Exists"}]


def test_bundled_ledger_login_of_the_operator_stays_in_the_release_namespace() -> None:
    """Issue 11: the operator's login (the schema's owner) is not copied to watched namespaces:
    executors get their namespace's own login from the operator. Its DSN verifies the server."""
    documents = render("watchNamespaces={team-a}")
    secrets = [d for d in of_kind(documents, "Secret") if d["metadata"]["name"] == "xorj-ledger"]
    assert [d["metadata"]["namespace"] for d in secrets] == ["xorj"]
    data = {k: base64.b64decode(v).decode() for k, v in secrets[0]["data"].items()}
    assert data["password"] == TEST_LEDGER_PASSWORD
    # stable across renders, and not the operator's password
    assert len(data["superuser-password"]) == 64 and data["password"] not in data["superuser-password"]
    assert data == {k: base64.b64decode(v).decode() for k, v in named(
        render("watchNamespaces={team-a}"), "Secret", "xorj-ledger")["data"].items()}
    assert data["dsn"] == (f"postgresql://xorj:{data['password']}@xorj-postgresql.xorj.svc:5432/xorj"
                           "?sslmode=verify-full&sslrootcert=/var/run/xorj/ledger/ca.crt")
    assert not [d for d in of_kind(documents, "Secret") if d["metadata"]["namespace"] == "team-a"]


def test_bundled_ledger_has_no_network_superuser_and_serves_tls_only() -> None:
    documents = render()
    statefulset = named(documents, "StatefulSet", "xorj-postgresql")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["POSTGRES_USER"] == "postgres"  # the bootstrap superuser, which the app never uses
    assert env["XORJ_LEDGER_OWNER"] == {"secretKeyRef": {"name": "xorj-ledger", "key": "username"}}
    args = container["args"]
    settings = dict(a.split("=", 1) for a in args[2::2])
    assert args[0] == "postgres" and settings["ssl"] == "on"
    config = named(documents, "ConfigMap", "xorj-postgresql-config")["data"]
    assert settings["hba_file"].endswith("/pg_hba.conf")
    hba = [line.split() for line in config["pg_hba.conf"].splitlines() if line and not line.startswith("#")]
    assert hba == [["local", "all", "postgres", "peer"], ["local", "all", "all", "reject"],
                   ["hostssl", "all", "postgres", "all", "reject"], ["hostssl", "all", "all", "all", "scram-sha-256"],
                   ["host", "all", "all", "all", "reject"]]
    init = config["10-xorj-owner.sh"]
    assert "LOGIN CREATEROLE NOSUPERUSER" in init and 'ALTER DATABASE :"db" OWNER TO :"owner"' in init
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["initdb"] == "/docker-entrypoint-initdb.d"
    assert settings["ssl_key_file"].startswith(mounts["tls"] + "/")
    tls_volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"] == {"secretName": TEST_LEDGER_TLS_SECRET, "defaultMode": 0o640}


def test_helm_template_without_a_tls_secret_refuses_instead_of_inventing_a_ca() -> None:
    """A CA generated on every GitOps render would replace the one the server started with. (A real
    install generates it once and keeps it: tests/e2e/chart checks that.)"""
    result = template(ledger_tls=None)
    assert result.returncode != 0
    assert "postgresql.tls.existingSecret is required when rendering without a cluster" in result.stderr


def test_the_given_tls_secret_serves_the_ledger_and_only_its_ca_reaches_the_operator() -> None:
    documents = render()
    assert not [d for d in of_kind(documents, "Secret") if d["metadata"]["name"] == "xorj-postgresql-tls"]
    pod = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "ledger-ca")
    assert volume["secret"]["secretName"] == TEST_LEDGER_TLS_SECRET
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never the server's key
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "ledger-ca")
    assert mount["mountPath"] == "/var/run/xorj/ledger"


def test_external_ledger_ca_is_mounted_for_the_operator_when_given() -> None:
    without = named(render("postgresql.enabled=false", "ledger.existingSecret=pg-app"), "Deployment", "xorj-operator")
    assert not [v for v in without["spec"]["template"]["spec"]["volumes"] if v["name"] == "ledger-ca"]
    given = named(render("postgresql.enabled=false", "ledger.existingSecret=pg-app", "ledger.caSecret=pg-ca"),
                  "Deployment", "xorj-operator")
    volume = next(v for v in given["spec"]["template"]["spec"]["volumes"] if v["name"] == "ledger-ca")
    assert volume["secret"]["secretName"] == "pg-ca"


@pytest.mark.parametrize("password", ["p@ss:w/rd", "a b+c%d?e#f&g=h'i\"j", "Ünïcode-ключ"])
def test_ledger_dsn_encodes_any_password_so_libpq_reads_it_back(password: str) -> None:
    result = template(values={"postgresql.password": password}, ledger_password=None)
    assert result.returncode == 0, result.stderr
    secret = named(result.documents(), "Secret", "xorj-ledger", "xorj")
    dsn = base64.b64decode(secret["data"]["dsn"]).decode()
    parsed = conninfo_to_dict(dsn)  # libpq's own parser, as the executors use it
    assert (parsed["user"], parsed["password"], parsed["host"], parsed["port"], parsed["dbname"]) == (
        "xorj", password, "xorj-postgresql.xorj.svc", "5432", "xorj")
    assert base64.b64decode(secret["data"]["password"]).decode() == password


def test_helm_template_without_a_password_refuses_instead_of_inventing_one() -> None:
    # A fresh random password on every GitOps render would lock the operator out of its own ledger.
    result = template(ledger_password=None)
    assert result.returncode != 0
    assert "postgresql.password is required when rendering without a cluster" in result.stderr
    assert template(ledger_password=None).stderr == result.stderr  # the same answer every time


def test_bundled_ledger_is_a_statefulset_with_a_volume_claim() -> None:
    documents = render("postgresql.persistence.size=20Gi", "postgresql.persistence.storageClass=fast")
    statefulset = named(documents, "StatefulSet", "xorj-postgresql")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    mounts = {m["mountPath"] for m in statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert "/var/lib/postgresql/data" in mounts


def test_external_ledger_uses_the_given_secret_and_no_statefulset() -> None:
    documents = render("postgresql.enabled=false", "ledger.existingSecret=pg-app")
    assert not of_kind(documents, "StatefulSet") and not of_kind(documents, "Secret")
    container = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    dsn = next(e for e in container["env"] if e["name"] == "XORJ_LEDGER_DSN")
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "pg-app", "key": "uri"}


def test_external_ledger_without_a_secret_is_refused_with_its_name() -> None:
    result = template("postgresql.enabled=false")
    assert result.returncode != 0
    assert "ledger.existingSecret is required" in result.stderr


def test_every_setting_the_chart_passes_is_one_the_operator_reads() -> None:
    from xorj.controller.settings import OperatorSettings

    container = named(render(), "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    read = OperatorSettings.environment_names()
    passed = {e["name"] for e in container["env"] if e["name"].startswith("XORJ_")}
    assert passed <= read, f"the operator does not read {sorted(passed - read)}"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--metrics-port={port_names['metrics']}" in container["args"]
    assert f"--health-port={port_names['health']}" in container["args"]


def test_every_option_the_chart_passes_is_one_xorj_operator_takes() -> None:
    from xorj.commands.operator import operator

    options = {opt for param in operator.params for opt in getattr(param, "opts", [])}
    for variant in ((), ("operator.peering=",), ("watchNamespaces={a,b}",)):
        container = named(render(*variant), "Deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][0] == "operator"
        for arg in container["args"][1:]:
            assert arg.split("=", 1)[0] in options, f"xorj operator has no option {arg}"
