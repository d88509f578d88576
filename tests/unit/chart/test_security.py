"""Pod security of every pod the chart makes, and of the executor pods the operator makes."""

from __future__ import annotations

import pytest

from tests.unit.chart.helm import pod_templates, render

VARIANTS = [(), ("watchNamespaces={a,b}",), ("postgresql.enabled=false", "ledger.existingSecret=s")]


def effective(pod: dict, container: dict, key: str):
    value = container.get("securityContext", {}).get(key)
    return value if value is not None else pod.get("securityContext", {}).get(key)


def assert_restricted(workload: str, pod: dict) -> None:
    containers = pod.get("initContainers", []) + pod["containers"]
    for c in containers:
        where = f"{workload} container {c['name']}"
        sc = c.get("securityContext", {})
        assert effective(pod, c, "runAsNonRoot") is True, f"{where}: runAsNonRoot"
        uid = effective(pod, c, "runAsUser")
        assert uid is None or uid > 0, f"{where}: runs as uid 0"
        seccomp = effective(pod, c, "seccompProfile") or {}
        assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault"
        assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
        assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL"
        assert not sc.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
        assert not sc.get("privileged"), f"{where}: privileged"
        assert c.get("resources", {}).get("limits", {}).get("memory"), f"{where}: memory limit"
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume, f"{workload}: hostPath volume {volume['name']}"


@pytest.mark.parametrize("sets", VARIANTS)
def test_chart_pods_meet_the_restricted_standard(sets) -> None:
    pods = pod_templates(render(*sets))
    assert pods
    for workload, pod in pods:
        assert_restricted(workload, pod)


def test_read_only_root_pods_get_a_writable_tmp() -> None:
    for workload, pod in pod_templates(render()):
        for c in pod["containers"]:
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{workload} {c['name']}: no writable /tmp on a read-only root"


def test_only_the_operator_gets_an_api_token() -> None:
    documents = render()
    for workload, pod in pod_templates(documents):
        if workload == "Deployment/xorj-operator":
            assert pod["serviceAccountName"] == "xorj-operator"
        else:
            assert pod.get("automountServiceAccountToken") is False, workload
    executor_accounts = [d for d in documents if d["kind"] == "ServiceAccount"
                         and d["metadata"]["name"] == "xorj-executor"]
    assert executor_accounts and all(a["automountServiceAccountToken"] is False for a in executor_accounts)


def test_executor_pods_the_operator_creates_meet_it_too() -> None:
    """The operator's executor Deployment, built with the chart's defaults, is restricted as well."""
    from xorj.controller.models import TradingStrategySpec
    from xorj.controller.tradingstrategy import desired

    spec = TradingStrategySpec.model_validate({
        "traders": ["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"],
        "vault": {"publicKey": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "secretName": "vault"},
        "endpoints": {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example"},
    })
    defaults = desired.ExecutorDefaults(service_account="xorj-executor", ledger_secret_name="xorj-ledger",
                                        ledger_secret_key="dsn", metrics_port=9102)
    deployment = desired.deployment(desired.Owner("demo", "uid-1"), "xorj", spec, defaults)
    pod = deployment["spec"]["template"]["spec"]
    pod.setdefault("securityContext", {})
    assert pod["serviceAccountName"] == "xorj-executor"
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert (sc.get("seccompProfile") or pod["securityContext"].get("seccompProfile"))["type"] == "RuntimeDefault"
