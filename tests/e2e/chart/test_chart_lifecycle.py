"""The chart on the real local cluster: install, upgrade, uninstall; the operator under its own RBAC."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.e2e.waiting import wait_until
from tests.unit.chart.helm import CHART, TEST_ENDPOINT_SETS

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

OPERATOR_SA = "xorj-operator"
EXECUTOR_SA = "xorj-executor"


def install(k8s_cluster, namespace: str, *sets: str, action: str = "install"):
    args = [action, "xorj", str(CHART), "--namespace", namespace]
    for s in (*TEST_ENDPOINT_SETS, *sets):  # the chart has no open default for executor egress
        args += ["--set", s]
    result = k8s_cluster.helm(*args, check=False)
    assert result.returncode == 0, f"helm {action} failed: {result.stderr}"
    return result


def get_json(k8s_cluster, *args: str) -> dict:
    return json.loads(k8s_cluster.kubectl("get", *args, "-o", "json").stdout)


def test_install_upgrade_uninstall(k8s_cluster, k8s_namespace) -> None:
    ns = k8s_namespace
    result = install(k8s_cluster, ns, f"watchNamespaces={{{ns}}}")
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {ns} get traderpools,tradingstrategies,copytrades" in notes

    # CRDs served, with the short names and category users type
    resources = k8s_cluster.kubectl("api-resources", "--api-group=trading.xorj.io", "-o", "name").stdout.split()
    assert {"copytrades.trading.xorj.io", "tradingstrategies.trading.xorj.io"} <= set(resources)
    assert "kopfpeerings.kopf.dev" in k8s_cluster.kubectl("api-resources", "--api-group=kopf.dev", "-o", "name").stdout

    deployment = get_json(k8s_cluster, "deployment", "xorj-operator", "-n", ns)
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    # kwok runs the pods: the operator Deployment becomes available
    wait_until(lambda: get_json(k8s_cluster, "deployment", "xorj-operator", "-n", ns)["status"].get(
        "availableReplicas") == 1, what="operator Deployment available")
    statefulset = get_json(k8s_cluster, "statefulset", "xorj-postgresql", "-n", ns)
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    wait_until(lambda: k8s_cluster.kubectl("get", "pvc", "data-xorj-postgresql-0", "-n", ns, check=False)
               .returncode == 0, what="the ledger's PVC")
    secret = get_json(k8s_cluster, "secret", "xorj-ledger", "-n", ns)
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32
    # the ledger's TLS: a CA and a certificate for the Service's name, made once at install
    tls = {k: base64.b64decode(v) for k, v in get_json(k8s_cluster, "secret", "xorj-postgresql-tls", "-n", ns)
           ["data"].items()}
    ca, cert = x509.load_pem_x509_certificate(tls["ca.crt"]), x509.load_pem_x509_certificate(tls["tls.crt"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"xorj-postgresql.{ns}.svc" in names.get_values_for_type(x509.DNSName)
    policies = {p["metadata"]["name"] for p in get_json(k8s_cluster, "networkpolicies", "-n", ns)["items"]}
    assert policies == {"xorj-default-deny", "xorj-executors", "xorj-operator", "xorj-ledger"}

    # upgrade: a changed value rolls out, the generated ledger password is kept
    install(k8s_cluster, ns, f"watchNamespaces={{{ns}}}", "operator.replicas=2", "networkPolicy.enabled=false",
            action="upgrade")
    assert get_json(k8s_cluster, "deployment", "xorj-operator", "-n", ns)["spec"]["replicas"] == 2
    secret = get_json(k8s_cluster, "secret", "xorj-ledger", "-n", ns)
    assert base64.b64decode(secret["data"]["password"]).decode() == password
    kept = get_json(k8s_cluster, "secret", "xorj-postgresql-tls", "-n", ns)["data"]
    assert {k: base64.b64decode(v) for k, v in kept.items()} == tls  # a new CA would lock the operator out
    assert not get_json(k8s_cluster, "networkpolicies", "-n", ns)["items"]
    history = json.loads(k8s_cluster.helm("history", "xorj", "-n", ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    # uninstall: everything the release made is gone (CRDs stay, as Helm intends)
    k8s_cluster.helm("uninstall", "xorj", "-n", ns, "--wait")
    for kind in ("deployment", "statefulset", "secret", "role", "rolebinding", "serviceaccount"):
        left = [i["metadata"]["name"] for i in get_json(k8s_cluster, kind, "-n", ns)["items"]
                if i["metadata"]["name"].startswith("xorj")]
        assert not left, f"{kind} left after uninstall: {left}"
    assert k8s_cluster.kubectl("get", "crd", "copytrades.trading.xorj.io", check=False).returncode == 0


def can_i(k8s_cluster, namespace: str, account: str, verb: str, resource: str, ns: str | None = None) -> bool:
    result = k8s_cluster.kubectl("auth", "can-i", verb, resource, "-n", ns or namespace,
                                 f"--as=system:serviceaccount:{namespace}:{account}", check=False)
    return result.stdout.strip() == "yes"


def test_rbac_grants_what_the_operator_needs_and_nothing_else(k8s_cluster, k8s_namespace) -> None:
    ns = k8s_namespace
    install(k8s_cluster, ns, "operator.enabled=false", "postgresql.enabled=false",
            "ledger.existingSecret=ledger", "ledger.existingSecretKey=dsn")
    allowed = [("patch", "copytrades.trading.xorj.io"), ("patch", "copytrades.trading.xorj.io/status"),
               ("watch", "tradingstrategies.trading.xorj.io"), ("create", "deployments.apps"),
               ("patch", "poddisruptionbudgets.policy"), ("create", "events"), ("patch", "kopfpeerings.kopf.dev"),
               # issue 11: the binding check reads a named Secret's metadata (get only)
               ("get", "secrets")]
    for verb, resource in allowed:
        assert can_i(k8s_cluster, ns, OPERATOR_SA, verb, resource), f"operator cannot {verb} {resource}"
    denied = [("list", "secrets"), ("watch", "secrets"), ("update", "secrets"),
              ("create", "pods"), ("create", "pods/exec"), ("delete", "deployments.apps"),
              ("create", "roles.rbac.authorization.k8s.io"), ("create", "serviceaccounts/token"),
              ("list", "nodes"), ("delete", "customresourcedefinitions.apiextensions.k8s.io")]
    for verb, resource in denied:
        assert not can_i(k8s_cluster, ns, OPERATOR_SA, verb, resource), f"operator may {verb} {resource}"
    assert not can_i(k8s_cluster, ns, OPERATOR_SA, "list", "copytrades.trading.xorj.io", ns="default")
    for verb, resource in [("get", "pods"), ("get", "secrets"), ("list", "copytrades.trading.xorj.io"),
                           ("get", "configmaps")]:
        assert not can_i(k8s_cluster, ns, EXECUTOR_SA, verb, resource), f"executor may {verb} {resource}"


def service_account_kubeconfig(k8s_cluster, namespace: str, account: str, path: Path,
                               server: str | None = None) -> Path:
    """A kubeconfig that authenticates only with a bound token of ``account``; ``server`` overrides
    the API address (the recording proxy)."""
    token = k8s_cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(k8s_cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = dict(next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"])
    if server:
        cluster = {"server": server}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": account, "namespace": namespace}}],
    }))
    path.chmod(0o600)
    return path


def api_server_and_ca(k8s_cluster, tmp_path: Path) -> tuple[str, str | None]:
    admin = yaml.safe_load(k8s_cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"]
    ca = cluster.get("certificate-authority")
    if cluster.get("certificate-authority-data"):
        ca = str(tmp_path / "ca.crt")
        Path(ca).write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    elif ca and not Path(ca).is_absolute():
        ca = str(k8s_cluster.kubeconfig.parent / ca)
    return cluster["server"], ca


def chart_operator_grants(k8s_cluster, namespace: str) -> set[tuple[str, str, str]]:
    role = get_json(k8s_cluster, "role", "xorj-operator", "-n", namespace)
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


# Grants the scenario below cannot exercise, each with the code path that needs it.
NOT_EXERCISED: dict[tuple[str, str, str], str] = {
    ("trading.xorj.io", "tradingstrategies", "get"):
        "reconcile._strategy_vault GETs a strategy only when the watch-fed index has not seen it yet "
        "(a CopyTrade applied right after its strategy), and finalize_copytrade only when a "
        "non-terminal CopyTrade is deleted: a run may or may not make either",
}


@pytest.mark.postgres
def test_operator_runs_under_the_charts_service_account(k8s_cluster, k8s_namespace, ledger_dsn, ledger_owner_dsn,
                                                        tmp_path) -> None:
    """The operator, authenticated only as the chart's ServiceAccount and seen through a recording
    proxy, reconciles a strategy into its children, pauses it, admits a CopyTrade, mirrors its terminal
    state, deletes it after its TTL and finalizes the strategy's deletion: no request is refused, and
    every verb the chart grants is one it used."""
    from tests.e2e.chart.api_recorder import ApiRecorder, rbac_calls
    from xorj.devenv.postgres import free_port
    from xorj.ledger.repository import Ledger

    ns = k8s_namespace
    install(k8s_cluster, ns, "operator.enabled=false", "postgresql.enabled=false",
            "ledger.existingSecret=ledger", "ledger.existingSecretKey=dsn",
            "executor.allowInsecureEndpoints=true")  # the strategy below points at http://127.0.0.1
    # the vault Secret, bound to the strategy by the cluster admin (a vault binder)
    k8s_cluster.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "vault", "namespace": ns, "annotations": {"trading.xorj.io/strategies": "rbac-proof"}},
        "stringData": {"keypair.json": "[]"},
    }))
    server, ca = api_server_and_ca(k8s_cluster, tmp_path)
    recorder = ApiRecorder(server, ca).start()
    kubeconfig = service_account_kubeconfig(k8s_cluster, ns, OPERATOR_SA, tmp_path / "operator.kubeconfig",
                                            server=recorder.url)
    # as the chart runs it: the ledger's owner (not a superuser), making the namespace's executor login
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "XORJ_LEDGER_DSN": ledger_owner_dsn,
           "XORJ_OPERATOR_EXECUTOR_SERVICE_ACCOUNT": EXECUTOR_SA,
           "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET": "xorj-ledger-executor", "XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": "true",
           "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET_KEY": "dsn", "XORJ_OPERATOR_COPYTRADE_RESYNC_SECONDS": "1",
           "XORJ_OPERATOR_STRATEGY_RESYNC_SECONDS": "2", "XORJ_OPERATOR_ALLOW_INSECURE_ENDPOINTS": "true"}
    log_path = tmp_path / "operator.log"
    xorj = str(Path(sys.executable).parent / "xorj")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([xorj, "operator", f"--namespace={ns}", "--peering-name=xorj-operator",
                                    f"--health-port={free_port()}", f"--metrics-port={free_port()}",
                                    "--log-format=json"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive():
        assert process.poll() is None, log_path.read_text()[-3000:]
        return True

    try:
        k8s_cluster.apply(yaml.safe_dump({
            "apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "metadata": {"name": "rbac-proof", "namespace": ns},
            "spec": {"traders": ["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"],
                     "vault": {"publicKey": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "secretName": "vault"},
                     "endpoints": {"rpcUrl": "http://127.0.0.1:1", "swapApiUrl": "http://127.0.0.1:1"}},
        }))

        def reconciled():
            alive()
            names = {}
            for kind in ("deployment", "configmap", "service", "poddisruptionbudget"):
                items = get_json(k8s_cluster, kind, "-n", ns, "-l", "trading.xorj.io/strategy=rbac-proof")["items"]
                names[kind] = [i["metadata"]["name"] for i in items]
            status = get_json(k8s_cluster, "tradingstrategy", "rbac-proof", "-n", ns).get("status") or {}
            return all(names.values()) and status.get("conditions") and names

        wait_until(reconciled, timeout=90, what="the strategy reconciled by the operator")
        wait_until(lambda: alive() and k8s_cluster.kubectl("get", "secret", "xorj-ledger-executor", "-n", ns,
                                                           check=False).returncode == 0,
                   timeout=60, what="the namespace's executor ledger login Secret")
        # the periodic resync reads the Deployment back to check for drift
        wait_until(lambda: alive() and ("apps", "deployments", "get") in rbac_calls(recorder.calls),
                   timeout=90, what="the resync's drift check")
        deployment = get_json(k8s_cluster, "deployment", "rbac-proof-executor", "-n", ns)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == EXECUTOR_SA
        k8s_cluster.kubectl("patch", "tradingstrategy", "rbac-proof", "-n", ns, "--type=merge",
                            "-p", '{"spec":{"paused":true}}')
        wait_until(lambda: alive() and get_json(k8s_cluster, "deployment", "rbac-proof-executor", "-n", ns)
                   ["spec"]["replicas"] == 0, timeout=60, what="paused strategy scaled to zero")

        # A CopyTrade: admitted into the ledger, then (as an executor would) ended there; the
        # operator mirrors FAILED into its status and deletes it after its TTL.
        k8s_cluster.apply(yaml.safe_dump({
            "apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
            "metadata": {"name": "rbac-proof-1", "namespace": ns},
            "spec": {"strategy": "rbac-proof", "leadTrader": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU",
                     "leadSignature": "5" * 88, "inputMint": "So11111111111111111111111111111111111111112",
                     "outputMint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "amount": 1000,
                     "ttlSecondsAfterFinished": 0},
        }))
        trade_id = wait_until(lambda: alive() and (get_json(k8s_cluster, "copytrade", "rbac-proof-1", "-n", ns)
                                                   .get("status") or {}).get("tradeId"),
                              timeout=60, what="the CopyTrade admitted")
        with Ledger.connect(ledger_dsn, apply_migrations=False) as ledger:
            ledger.cancel_trade(int(trade_id), "ended by the RBAC test", actor="test")
        wait_until(lambda: alive() and k8s_cluster.kubectl("get", "copytrade", "rbac-proof-1", "-n", ns,
                                                           check=False).returncode != 0,
                   timeout=60, what="the terminal CopyTrade deleted after its TTL")
        # A TraderPool listed in a labelled ConfigMap: scored (ConfigMaps listed, status patched), then
        # named by the strategy's topN (the pool read at the strategy's resync).
        k8s_cluster.apply(yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "rbac-pool-list", "namespace": ns, "labels": {"xorj.io/pool": "rbac"}},
            "data": {"wallets": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU\n"}}))
        k8s_cluster.apply(yaml.safe_dump({
            "apiVersion": "trading.xorj.io/v1alpha1", "kind": "TraderPool",
            "metadata": {"name": "rbac-pool", "namespace": ns},
            "spec": {"walletConfigMaps": {"matchLabels": {"xorj.io/pool": "rbac"}}}}))
        wait_until(lambda: alive() and (get_json(k8s_cluster, "traderpool", "rbac-pool", "-n", ns).get("status")
                                        or {}).get("candidates") == 1, timeout=60, what="the pool scored")
        k8s_cluster.kubectl("patch", "tradingstrategy", "rbac-proof", "-n", ns, "--type=merge",
                            "-p", '{"spec":{"traders":null,"topN":{"count":1,"pool":"rbac-pool"}}}')
        wait_until(lambda: alive() and ("trading.xorj.io", "traderpools", "get") in rbac_calls(recorder.calls),
                   timeout=60, what="the strategy reading its pool")
        # A Vault of the strategy: registered (finalizer and status patched), then deleted (finalized)
        k8s_cluster.apply(yaml.safe_dump({
            "apiVersion": "trading.xorj.io/v1alpha1", "kind": "Vault",
            "metadata": {"name": "rbac-vault", "namespace": ns},
            "spec": {"strategy": "rbac-proof", "publicKey": "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T",
                     "secretName": "vault"}}))
        wait_until(lambda: alive() and any(
            c["type"] == "Registered" and c["status"] == "True"
            for c in (get_json(k8s_cluster, "vault", "rbac-vault", "-n", ns).get("status") or {}).get("conditions", [])),
            timeout=60, what="the Vault registered")
        k8s_cluster.kubectl("delete", "vault", "rbac-vault", "-n", ns, "--wait=true", "--timeout=60s")
        k8s_cluster.kubectl("delete", "tradingstrategy", "rbac-proof", "-n", ns, "--wait=true", "--timeout=60s")
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=40)
        recorder.stop()

    # Nothing refused, kopf's cluster-wide scans included: refused, kopf retries them for about a
    # minute before it starts watching (the operator sets settings.scanning.disabled).
    refused = sorted({(c.method, c.path) for c in recorder.calls if c.status == 403})
    assert not refused, f"the chart's RBAC refused the operator: {refused}\n{log_path.read_text()[-2000:]}"
    used = rbac_calls(recorder.calls)
    granted = chart_operator_grants(k8s_cluster, ns)
    unused = sorted(granted - used - set(NOT_EXERCISED))
    assert not unused, f"granted but never used by the operator: {unused}; used: {sorted(used)}"
