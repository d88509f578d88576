"""`xorj dev up --ledger ha` (xorj.devenv.ha_ledger): the chart values that put the chart's Patroni
ledger on the real node, and the DSN the host processes reach its primary Service with."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from tests.unit.chart.helm import KUBE_VERSION, TEST_ENDPOINT_SETS, helm, helm_binary, named, template
from xorj.chaos.ledger_failover import parse_location
from xorj.devenv import ha_ledger
from xorj.devenv.demo import CHART, EXECUTOR_NODE_TAINT
from xorj.devenv.files import write_private
from xorj.errors import EnvironmentSetupError

TOLERATION = {**EXECUTOR_NODE_TAINT, "operator": "Equal"}


def test_the_dev_values_run_the_chart_ha_ledger_on_the_real_node_with_its_api_server_egress() -> None:
    values = ha_ledger.chart_values(node_selector={"xorj.dev/node": "real"}, toleration=TOLERATION,
                                    api_host="192.0.2.2", api_port=32123)
    result = helm("template", "xorj", str(CHART), "--namespace", "hadev", "--set", "operator.enabled=false",
                  "--set-string", "postgresql.password=pw", "--set-string", "postgresql.tls.existingSecret=tls",
                  "--set", "networkPolicy.rpc.cidrs={127.0.0.1/32}", "--set", "networkPolicy.rpc.ports={8899}",
                  "--set", "networkPolicy.swapApi.cidrs={127.0.0.1/32}", "--set", "networkPolicy.swapApi.ports={8080}",
                  *values)
    assert result.returncode == 0, result.stderr
    documents = result.documents()
    statefulset = named(documents, "StatefulSet", "xorj-postgresql")
    pod = statefulset["spec"]["template"]["spec"]
    assert statefulset["spec"]["replicas"] == 3  # the chart's default: a synchronous standby survives a loss
    assert pod["nodeSelector"] == {"xorj.dev/node": "real"} and pod["tolerations"] == [TOLERATION]
    assert "volumeClaimTemplates" not in statefulset["spec"]  # the node has no volume provisioner
    # the primary Service follows Patroni's leader lock (its Endpoints), not a pod label
    assert "selector" not in named(documents, "Service", "xorj-postgresql")["spec"]
    egress = named(documents, "NetworkPolicy", "xorj-ledger")["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "192.0.2.2/32"}}], "ports": [{"protocol": "TCP", "port": 32123}]} in egress


def test_the_operator_pod_uses_the_chart_ha_ledger_as_a_users_install_does() -> None:
    """`xorj dev up --ledger ha` with the operator pod (the default): the chart's own ledger Secret (its
    primary Service by name, verify-full) and the chart's own CA, mounted where the DSN names it; the
    ledger's policy admits the operator pod, whose policy reaches the members. No CA Secret of the demo's."""
    import base64

    from xorj.devenv.demo import LEDGER_CA_PATH, LEDGER_CA_SECRET, operator_pod_values

    values = [*ha_ledger.chart_values(node_selector={"xorj.dev/node": "real"}, toleration=TOLERATION,
                                      api_host="192.0.2.2", api_port=32123),
              *operator_pod_values(image="localhost/xorj-operator:0.1.0-abc", api_host="192.0.2.2", api_port=32123,
                                   reconcile_rpc_url="http://xorj-chain:8899", cash_mint="U" * 43,
                                   node_selector={"xorj.dev/node": "real"}, ledger_ca_secret=None)]
    assert f"ledger.caSecret={LEDGER_CA_SECRET}" not in values
    # helm template cannot generate the CA a live install generates (the chart's <release>-postgresql-tls):
    # name that Secret as the rendering needs it
    result = helm("template", "xorj", str(CHART), "--namespace", "hadev", "--set-string", "postgresql.password=pw",
                  "--set-string", "postgresql.tls.existingSecret=xorj-postgresql-tls",
                  "--set", "networkPolicy.rpc.cidrs={192.0.2.2/32}", "--set", "networkPolicy.rpc.ports={8899}",
                  "--set", "networkPolicy.swapApi.cidrs={192.0.2.2/32}", "--set", "networkPolicy.swapApi.ports={8080}",
                  *values)
    assert result.returncode == 0, result.stderr
    documents = result.documents()
    pod = named(documents, "Deployment", "xorj-operator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["XORJ_LEDGER_DSN"]["valueFrom"] == {"secretKeyRef": {"name": "xorj-ledger", "key": "dsn"}}
    dsn = conninfo_to_dict(base64.b64decode(named(documents, "Secret", "xorj-ledger")["data"]["dsn"]).decode())
    assert (dsn["host"], dsn["sslmode"], dsn["sslrootcert"]) == ("xorj-postgresql.hadev.svc", "verify-full",
                                                                 LEDGER_CA_PATH)
    ca_volume = next(v for v in pod["volumes"] if v["name"] == "ledger-ca")
    assert ca_volume["secret"]["secretName"] == "xorj-postgresql-tls"  # the chart's own CA
    mount = next(m for m in container["volumeMounts"] if m["name"] == "ledger-ca")
    assert mount["mountPath"] == str(Path(LEDGER_CA_PATH).parent)
    assert pod["nodeSelector"] == {"xorj.dev/node": "real"}
    operator_labels = named(documents, "Deployment", "xorj-operator")["spec"]["selector"]["matchLabels"]
    ingress = named(documents, "NetworkPolicy", "xorj-ledger")["spec"]["ingress"]
    assert {"podSelector": {"matchLabels": operator_labels}} in ingress[0]["from"]
    egress = named(documents, "NetworkPolicy", "xorj-operator")["spec"]["egress"]
    assert any(rule["ports"] == [{"protocol": "TCP", "port": 5432}]
               and rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ledger"
               for rule in egress), egress


def test_the_host_dsn_keeps_the_login_and_goes_through_the_relay_checking_the_chart_ca(tmp_path: Path) -> None:
    chart_dsn = ("postgresql://xorj:p%40ss%2Fword@xorj-postgresql.hadev.svc:5432/xorj"
                 "?sslmode=verify-full&sslrootcert=/var/run/xorj/ledger/ca.crt")
    dsn = ha_ledger.host_dsn(chart_dsn, "127.0.0.1:40123", tmp_path / "ca.crt")
    parsed = conninfo_to_dict(dsn)
    assert (parsed["host"], parsed["port"], parsed["dbname"]) == ("127.0.0.1", "40123", "xorj")
    assert (parsed["user"], parsed["password"]) == ("xorj", "p@ss/word")
    # the certificate names the Service, not 127.0.0.1: the CA is checked, the name cannot be
    assert (parsed["sslmode"], parsed["sslrootcert"]) == ("verify-ca", str(tmp_path / "ca.crt"))
    executor = conninfo_to_dict(ha_ledger.executor_dsn("hadev", "xorj", "xorj", tmp_path / "ca.crt"))
    assert (executor["host"], executor["sslmode"]) == ("xorj-postgresql.hadev.svc", "verify-full")
    assert "password" not in executor and "user" not in executor  # the operator adds each namespace's login
    # both refuse, at connect time, a member that does not take writes (a replica, a demoted primary)
    assert parsed["target_session_attrs"] == executor["target_session_attrs"] == "read-write"


def test_the_primary_endpoint_is_what_the_service_endpointslices_route_to() -> None:
    """What kube-proxy reads: the EndpointSlices' ready addresses; none or two is no primary yet."""
    import json
    import subprocess

    def kubectl_answering(*slices: list[tuple[str, bool]]):
        def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            assert "kubernetes.io/service-name=xorj-postgresql" in args
            items = [{"endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in s]}
                     for s in slices]
            return subprocess.CompletedProcess(args, 0, json.dumps({"items": items}), "")
        return kubectl

    assert ha_ledger.primary_endpoint(kubectl_answering([("10.0.0.7", True)]), "hadev", "xorj") == "10.0.0.7"
    assert ha_ledger.primary_endpoint(kubectl_answering([("10.0.0.7", True), ("10.0.0.8", False)]), "hadev",
                                      "xorj") == "10.0.0.7"
    assert ha_ledger.primary_endpoint(kubectl_answering([("10.0.0.7", True)], [("10.0.0.8", True)]), "hadev",
                                      "xorj") is None
    assert ha_ledger.primary_endpoint(kubectl_answering(), "hadev", "xorj") is None


def test_the_host_dsn_file_is_private(tmp_path: Path) -> None:
    (tmp_path / ha_ledger.DSN_FILE).write_text("an older, world-readable file")
    (tmp_path / ha_ledger.DSN_FILE).chmod(0o644)
    write_private(tmp_path / ha_ledger.DSN_FILE, b"postgresql://xorj:secret@127.0.0.1:1/xorj")
    assert (tmp_path / ha_ledger.DSN_FILE).stat().st_mode & 0o077 == 0
    assert ha_ledger.read_dsn(tmp_path) == "postgresql://xorj:secret@127.0.0.1:1/xorj"
    assert ha_ledger.read_dsn(tmp_path / "none") is None


# -- external-ha: the chart's Patroni ledger alone in its own namespace, and the release pointed at it

def _render_external_ledger(namespace: str, client_namespace: str) -> list[dict]:
    values = ha_ledger.external_render_values(password="pw", client_namespace=client_namespace)
    node = ha_ledger.chart_values(node_selector={"xorj.dev/node": "real"}, toleration=TOLERATION,
                                  api_host="192.0.2.2", api_port=32123)
    endpoints = [arg for item in TEST_ENDPOINT_SETS for arg in ("--set", item)]
    result = subprocess.run([helm_binary(), *ha_ledger.external_render_args(CHART, namespace), "--kube-version",
                             KUBE_VERSION, *node, *endpoints], input=json.dumps(values), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return ha_ledger.ledger_documents([d for d in yaml.safe_load_all(result.stdout) if d], namespace)


def test_the_external_ledger_is_the_charts_patroni_ledger_alone_in_its_namespace() -> None:
    documents = _render_external_ledger("xorj-ledger", "xorj")
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
    assert "StatefulSet/ledger-postgresql" in kinds and "PodDisruptionBudget/ledger-postgresql" in kinds
    assert "Role/ledger-postgresql" in kinds  # Patroni's store: its ConfigMaps and pods, in its namespace
    # none of the operator's release: no default-deny, no executor policy, no operator, no CRD
    assert not [k for k in kinds if "default-deny" in k or "executor" in k or "operator" in k]
    assert all(d["metadata"]["namespace"] == "xorj-ledger" for d in documents)
    statefulset = named(documents, "StatefulSet", "ledger-postgresql")
    assert statefulset["spec"]["selector"]["matchLabels"].items() >= ha_ledger.external_pod_selector().items()
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == ha_ledger.tls_secret_name(ha_ledger.EXTERNAL_RELEASE)
    assert not [d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-tls")]  # given
    # the DSN a user copies into the operator's release: the Service across namespaces, its name verified
    secret = named(documents, "Secret", ha_ledger.ledger_secret_name(ha_ledger.EXTERNAL_RELEASE))
    dsn = conninfo_to_dict(base64.b64decode(secret["data"]["dsn"]).decode())
    assert dsn["host"] in ha_ledger.service_names("xorj-ledger")  # the certificate the demo issues names it
    assert (dsn["host"], dsn["sslmode"]) == ("ledger-postgresql.xorj-ledger.svc", "verify-full")
    # its own policy admits the executors of the operator's namespace (with the ledger-client label)
    ingress = named(documents, "NetworkPolicy", "ledger-ledger")["spec"]["ingress"]
    peers = [p for rule in ingress for p in rule.get("from", [])]
    executors = [p for p in peers if p.get("namespaceSelector")]
    assert [p["namespaceSelector"]["matchLabels"] for p in executors] == [{"kubernetes.io/metadata.name": "xorj"}]
    assert executors[0]["podSelector"]["matchLabels"]["trading.xorj.io/ledger-client"] == "true"
    assert {"to": [{"ipBlock": {"cidr": "192.0.2.2/32"}}], "ports": [{"protocol": "TCP", "port": 32123}]} in \
        named(documents, "NetworkPolicy", "ledger-ledger")["spec"]["egress"]  # Patroni's store


def test_the_operators_release_reaches_exactly_the_external_ledgers_members() -> None:
    result = template("postgresql.enabled=false", "ledger.existingSecret=xorj-ledger", "ledger.existingSecretKey=dsn",
                      extra=ha_ledger.external_client_values("xorj-ledger", "xorj-ledger-ca"))
    assert result.returncode == 0, result.stderr
    documents = result.documents()
    assert not [d for d in documents if d["kind"] == "StatefulSet"]  # no ledger of its own
    egress = named(documents, "NetworkPolicy", "xorj-executors")["spec"]["egress"]
    assert {"to": [{"podSelector": {"matchLabels": ha_ledger.external_pod_selector()},
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "xorj-ledger"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}]} in egress


def test_only_the_ledgers_documents_are_kept_and_only_in_its_namespace() -> None:
    def document(kind: str, component: str | None, namespace: str = "l") -> dict:
        labels = {"app.kubernetes.io/component": component} if component else {}
        return {"kind": kind, "metadata": {"name": kind.lower(), "namespace": namespace, "labels": labels}}

    rendered = [document("StatefulSet", "ledger"), document("NetworkPolicy", None),
                document("NetworkPolicy", "executor"), document("Service", "ledger")]
    assert [d["kind"] for d in ha_ledger.ledger_documents(rendered, "l")] == ["StatefulSet", "Service"]
    with pytest.raises(EnvironmentSetupError, match="Service/service outside namespace l"):
        ha_ledger.ledger_documents([document("StatefulSet", "ledger"), document("Service", "ledger", "other")], "l")
    with pytest.raises(EnvironmentSetupError, match="no ledger StatefulSet"):
        ha_ledger.ledger_documents([document("Service", "ledger")], "l")


def test_the_chaos_experiment_finds_the_external_ledger_by_the_location_the_demo_records() -> None:
    where = parse_location(ha_ledger.external_location("xorj-ledger"), "xorj")
    assert (where.namespace, where.selector) == ("xorj-ledger", "app.kubernetes.io/instance=ledger,"
                                                                "app.kubernetes.io/component=ledger")
    assert (where.primary_label, where.container) == ("role=primary", "patroni")  # the chart's Patroni
