"""Pieces of `xorj dev up` that need no services: reading the chain's state, owning processes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from xorj.devenv.demo import Demo, process_alive, read_chain_info, rehost, start_process, stop_process, url_port
from xorj.errors import EnvironmentSetupError


def write_chain_state(directory: Path, **overrides) -> None:
    (directory / "vaults").mkdir(parents=True)
    keypair = directory / "vaults" / "V.json"
    keypair.write_text("[1, 2, 3]")
    state = {"rpc_url": "http://127.0.0.1:1/", "swap_api_url": "http://127.0.0.1:1/swap/v1",
             "mints": {"USDC": {"address": "U" * 43, "decimals": 6}, "SOL": {"address": "S" * 43, "decimals": 9}},
             "vaults": {"V" * 43: str(keypair)}}
    state.update(overrides)
    (directory / "chain.json").write_text(json.dumps(state))


def test_chain_state_gives_endpoints_mints_and_the_vault(tmp_path: Path) -> None:
    assert read_chain_info(tmp_path) is None  # not written yet: keep waiting
    write_chain_state(tmp_path)
    info = read_chain_info(tmp_path)
    assert info.rpc_url == "http://127.0.0.1:1" and info.swap_api_url == "http://127.0.0.1:1/swap/v1"
    assert (info.input_mint, info.output_mint) == ("U" * 43, "S" * 43)  # the vaults hold USDC
    assert info.vault_public_key == "V" * 43 and info.vault_keypair == b"[1, 2, 3]"
    assert "1, 2, 3" not in repr(info.vault_public_key)


def test_incomplete_chain_state_is_a_clear_error(tmp_path: Path) -> None:
    write_chain_state(tmp_path, vaults={})
    with pytest.raises(EnvironmentSetupError, match="vault keypair"):
        read_chain_info(tmp_path)


def test_chain_vaults_after_the_strategy_and_follower_vaults_are_the_fanout_vaults(tmp_path: Path) -> None:
    (tmp_path / "vaults").mkdir()
    vaults = {}
    for letter in "ABCD":
        (tmp_path / "vaults" / f"{letter}.json").write_text(f"[{ord(letter)}]")
        vaults[letter * 43] = str(tmp_path / "vaults" / f"{letter}.json")
    write_chain_state(tmp_path / "chain", vaults=vaults)
    info = read_chain_info(tmp_path / "chain")
    assert (info.vault_public_key, info.follower_vault_public_key) == ("A" * 43, "B" * 43)
    assert info.fanout_vaults == (("C" * 43, b"[67]"), ("D" * 43, b"[68]"))
    assert "[67]" not in repr(info)  # keys never printed


@pytest.mark.parametrize(("vaults", "executors", "rule"), [
    (0, "pods", "vaults: 0 is not between 1 and 64"),
    (65, "pods", "vaults: 65 is not between 1 and 64"),
    (3, "processes", "vaults: 3 needs --executors pods"),
])
def test_the_demo_vault_count_is_checked(vaults: int, executors: str, rule: str) -> None:
    with pytest.raises(EnvironmentSetupError, match=rule):
        Demo(executors=executors, vaults=vaults)


def test_processes_are_recognised_and_stopped_with_their_group(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    sleeper = [sys.executable, "-c", "import pathlib, subprocess, sys, time; "
               "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
               f"pathlib.Path({str(child_pid_file)!r}).write_text(str(c.pid)); time.sleep(600)"]
    record = start_process("sleeper", sleeper, dict(os.environ), tmp_path / "sleeper.log", marker="import pathlib")
    deadline = time.monotonic() + 20
    while not child_pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = {"pid": int(child_pid_file.read_text()), "marker": "time.sleep(600)"}
    assert process_alive(record) and process_alive(child)
    assert not process_alive({**record, "marker": "something else"}), "a reused pid is not ours"
    stop_process(record, grace=5)
    assert not process_alive(record)
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:  # reaped by init, not by us
        time.sleep(0.05)
    assert not process_alive(child), "the whole process group is stopped"
    assert not process_alive(None)


def test_rehost_moves_urls_and_dsns_to_the_relayed_address_keeping_the_rest() -> None:
    assert rehost("http://127.0.0.1:8899", "198.51.100.9:8899") == "http://198.51.100.9:8899"
    assert rehost("http://127.0.0.1:8080/swap/v1", "10.0.0.1:18080") == "http://10.0.0.1:18080/swap/v1"
    assert (rehost("postgresql://postgres@127.0.0.1:5433/xorj?sslmode=disable", "198.51.100.9:5433")
            == "postgresql://postgres@198.51.100.9:5433/xorj?sslmode=disable")
    assert rehost("postgresql://u:p%40ss@localhost:5432/db", "h:1") == "postgresql://u:p%40ss@h:1/db"
    assert url_port("postgresql://postgres@127.0.0.1:5433/xorj") == 5433
    with pytest.raises(EnvironmentSetupError, match="explicit port"):
        url_port("https://rpc.example")


def test_executor_mode_is_checked_by_name(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_DEMO_EXECUTORS", "containers")
    with pytest.raises(EnvironmentSetupError, match="executors: 'containers' is not one of pods, processes"):
        Demo()


def test_operator_mode_is_checked_by_name_and_a_pod_needs_the_real_node(monkeypatch) -> None:
    monkeypatch.setenv("XORJ_DEMO_OPERATOR", "container")
    with pytest.raises(EnvironmentSetupError, match="operator: 'container' is not one of pod, process"):
        Demo()
    with pytest.raises(EnvironmentSetupError, match="operator: pod needs the real node"):
        Demo(executors="processes", operator="pod")
    assert Demo(executors="pods", operator="pod").operator == "pod"


def test_the_operator_is_the_charts_pod_wherever_there_is_a_node_and_a_process_is_the_fallback(monkeypatch) -> None:
    """Issue 17 section 3: `xorj dev up` runs the operator as `helm install` does, a pod of the chart's
    Deployment on the real node; `--operator process` (or $XORJ_DEMO_OPERATOR) keeps the host process,
    which is also all there is without a node (executor processes)."""
    monkeypatch.delenv("XORJ_DEMO_OPERATOR", raising=False)
    monkeypatch.delenv("XORJ_DEMO_EXECUTORS", raising=False)
    assert Demo().operator == "pod"  # executors default to pods on the real node
    assert Demo(executors="pods", ledger="ha").operator == "pod"  # the chart's HA ledger too
    # an external HA ledger's NetworkPolicy admits the executors' namespace only: a process operator
    assert Demo(executors="pods", ledger="external-ha").operator == "process"
    with pytest.raises(EnvironmentSetupError, match="ledger: external-ha runs with the operator as a process"):
        Demo(executors="pods", ledger="external-ha", operator="pod")
    assert Demo(executors="processes").operator == "process"
    assert Demo(executors="pods", operator="process").operator == "process"
    monkeypatch.setenv("XORJ_DEMO_OPERATOR", "process")
    assert Demo(executors="pods").operator == "process"
    assert Demo(executors="pods", operator="pod").operator == "pod"  # the option over the environment


def test_the_operator_pod_with_the_ha_ledger_installs_the_charts_own_ledger_and_no_ca_of_the_demos(
        tmp_path: Path, monkeypatch) -> None:
    """With --ledger ha the operator pod reads the chart's own ledger Secret and CA: no host ledger
    Secret or CA Secret is applied, the chart's ledger is on (ledger.mode=ha) and its operator too."""

    from xorj.devenv.demo import LEDGER_CA_SECRET, LEDGER_SECRET, ChainInfo, PodEndpoints

    chain = ChainInfo("http://xorj-chain:8899", "http://xorj-swap-api:8080/swap/v1", "U" * 43, "S", "V", b"[1]")
    demo = Demo(root=tmp_path, namespace="hadev", executors="pods", ledger="ha")
    assert demo.operator == "pod"
    applied: list[dict] = []
    helm_args: list[str] = []

    kubectl = _recording_kubectl(applied)

    class Layout:
        host_ip, api_port, link_ip = "192.0.2.2", 32123, "192.0.2.1"

    class Node:
        def layout(self):
            return Layout()

    monkeypatch.setattr(demo, "kubectl", kubectl)
    monkeypatch.setattr(demo, "_helm", lambda *args: helm_args.extend(args))
    monkeypatch.setattr(demo, "_local_node", lambda: Node())
    monkeypatch.setattr(demo.cluster, "controller_manager_user", lambda: "kwok-admin")
    endpoints = PodEndpoints(None, chain, scraper_ip="192.0.2.1", relays={"rpc": "192.0.2.2:1", "swapApi": "192.0.2.2:2"})
    data = {"image": "localhost/xorj-operator:0.1.0-abc", "processes": {}}  # no postgres_root: no host ledger
    demo._install_chart(None, chain, [*endpoints.chart_values(), *demo._ha_chart_values(),
                                      *demo._operator_pod_values(data, endpoints)])
    values = dict(a.split("=", 1) for a in helm_args if "=" in a and not a.startswith("-"))
    assert values["postgresql.enabled"] == "true" and values["ledger.mode"] == "ha"
    assert "ledger.caSecret" not in values and "ledger.existingSecret" not in values
    # operator.enabled=false comes first (the process fallback's install); the pod's values override it
    assert [a for a in helm_args if a.startswith("operator.enabled=")][-1] == "operator.enabled=true"
    secrets = {m["metadata"]["name"] for m in applied if m.get("kind") == "Secret"}
    assert LEDGER_SECRET not in secrets and LEDGER_CA_SECRET not in secrets, secrets


@pytest.mark.parametrize("ledger", ["ha", "external-ha"])
def test_an_ha_ledger_needs_the_real_node(ledger: str) -> None:
    with pytest.raises(EnvironmentSetupError, match=f"ledger: {ledger} runs the chart's Patroni StatefulSet"):
        Demo(executors="processes", ledger=ledger)
    assert Demo(executors="pods", ledger=ledger).ledger == ledger


def _recording_kubectl(applied: list[dict]):
    """A stand-in for Demo.kubectl that keeps each manifest applied through stdin and succeeds."""
    import subprocess

    def kubectl(*args: str, input: str | None = None, check: bool = True):
        if input is not None:
            applied.append(json.loads(input))
        return subprocess.CompletedProcess(args, 0, "", "")

    return kubectl


def test_demo_binds_its_vault_and_uses_the_explicit_development_setting(tmp_path: Path, monkeypatch) -> None:
    """Issue 11: the demo's strategy must pass the operator's checks, openly: its vault Secret carries
    the binding to the strategy it applies, its http endpoints are allowed by the development setting
    (chart value and operator setting), and the strategy names no image."""
    import base64

    from xorj.controller import guard
    from xorj.controller.models import TradingStrategy
    from xorj.devenv.demo import ChainInfo

    vault = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
    chain = ChainInfo("http://127.0.0.1:8899", "http://127.0.0.1:8080/swap/v1", "U", "S", vault, b"[1]")
    demo = Demo(root=tmp_path, namespace="demo-ns", executors="processes")
    applied: list[dict] = []
    helm_args: list[str] = []

    kubectl = _recording_kubectl(applied)

    monkeypatch.setattr(demo, "kubectl", kubectl)
    monkeypatch.setattr(demo, "_helm", lambda *args: helm_args.extend(args))
    # the local controller manager's identity (LocalCluster.controller_manager_user asks the cluster)
    monkeypatch.setattr(demo.cluster, "controller_manager_user", lambda: "kwok-admin")
    demo._install_chart("postgresql://u@127.0.0.1:1/x", chain, [])
    strategy = demo._apply_strategy(chain)

    assert "executor.allowInsecureEndpoints=true" in helm_args
    # the chart's ledger-client policy must let this cluster's controllers make the executors' pods
    creators = next(a for a in helm_args if a.startswith("ledgerClient.creators.users="))
    users = json.loads(creators.split("=", 1)[1])
    assert users[-1] == "kwok-admin" and "system:serviceaccount:kube-system:replicaset-controller" in users
    name = strategy["metadata"]["name"]
    secrets = {m["metadata"]["name"]: m for m in applied if m["kind"] == "Secret"}
    vault_secret = secrets[strategy["spec"]["vault"]["secretName"]]
    assert guard.bound_strategies(vault_secret["metadata"]["annotations"]) == {name}
    assert base64.b64decode(vault_secret["data"]["keypair.json"]) == b"[1]"
    assert "image" not in strategy["spec"].get("executor", {})
    spec = TradingStrategy.model_validate(strategy).spec
    annotations = {n: s["metadata"].get("annotations") or {} for n, s in secrets.items()}
    assert guard.check(name, spec, allow_insecure_endpoints=True, secrets=annotations) is None
    assert guard.check(name, spec, allow_insecure_endpoints=False, secrets=annotations).reason == "InsecureEndpoint"


def test_the_start_up_waits_tell_a_running_process_by_its_pid_not_its_command_line(tmp_path: Path) -> None:
    """Right after the start, /proc/PID/cmdline of the new process can read empty, so a check by command
    line (process_alive) calls it gone; the start-up waits use the pid alone (_running)."""
    import subprocess

    from xorj.devenv.demo import _running

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    record = {"pid": child.pid, "marker": "a command line not (yet) readable", "log": str(tmp_path / "x.log")}
    try:
        assert not process_alive(record)
        assert _running(record)
    finally:
        child.kill()
        child.wait()
    assert not _running(record) and not _running(None)


def test_pods_name_the_host_services_and_the_policies_name_the_relays_they_forward_to() -> None:
    """Issue 17 section 3: executor pods use Service names (the chart's DNS-name setup, as in a user's
    cluster); kube-proxy forwards them to the relays before NetworkPolicy looks, so the chart's ipBlock
    rules keep naming the relays' address and ports."""
    from xorj.devenv.demo import ChainInfo, PodEndpoints, host_service_manifests, service_url

    chain = ChainInfo("http://127.0.0.1:41001", "http://127.0.0.1:41002/swap/v1", "U", "S", "V", b"[]")
    relays = {"ledger": "192.0.2.2:41000", "rpc": "192.0.2.2:41001", "swapApi": "192.0.2.2:41002"}
    dsn = service_url("ledger", "postgresql://postgres@127.0.0.1:41000/xorj?sslmode=require")
    assert dsn == "postgresql://postgres@xorj-ledger:5432/xorj?sslmode=require"
    assert service_url("rpc", chain.rpc_url) == "http://xorj-chain:8899"
    assert service_url("swapApi", chain.swap_api_url) == "http://xorj-swap-api:8080/swap/v1"

    named = ChainInfo(service_url("rpc", chain.rpc_url), service_url("swapApi", chain.swap_api_url), "U", "S", "V", b"[]")
    values = dict(v.split("=", 1) for v in PodEndpoints(dsn, named, relays=relays).chart_values()[1::2])
    assert values == {"ledger.cidrs": "{192.0.2.2/32}", "ledger.port": "41000",
                      "networkPolicy.rpc.cidrs": "{192.0.2.2/32}", "networkPolicy.rpc.ports": "{41001}",
                      "networkPolicy.swapApi.cidrs": "{192.0.2.2/32}", "networkPolicy.swapApi.ports": "{41002}"}

    documents = host_service_manifests("demo", relays)
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    slices = {d["metadata"]["labels"]["kubernetes.io/service-name"]: d for d in documents if d["kind"] == "EndpointSlice"}
    assert set(services) == set(slices) == {"xorj-ledger", "xorj-chain", "xorj-swap-api"}
    ledger, ledger_slice = services["xorj-ledger"], slices["xorj-ledger"]
    assert "selector" not in ledger["spec"]  # the endpoints are the relay's, not pods'
    assert ledger["spec"]["ports"] == [{"name": "postgres", "protocol": "TCP", "port": 5432, "targetPort": 41000}]
    assert ledger_slice["ports"] == [{"name": "postgres", "protocol": "TCP", "port": 41000}]
    assert ledger_slice["endpoints"] == [{"addresses": ["192.0.2.2"], "conditions": {"ready": True}}]
    assert all(d["metadata"]["namespace"] == "demo" for d in documents)
