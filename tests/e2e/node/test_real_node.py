"""A real node: pods from the project's image run, connect to each other, to Services and to
host services, die with their pod, and outlive a kubelet restart; ``down`` leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.node.conftest import wait_service_routed
from xorj.devenv.cluster import LocalCluster
from xorj.devenv.node import LocalChainNode
from xorj.devenv.node.host import NodeHost
from xorj.devenv.node.processes import cmdline

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
BASE = "localhost/xorj-base:bookworm"


def test_node_registers_with_kubelet_and_containerd(node_cluster: LocalCluster, real_node: LocalChainNode) -> None:
    node = json.loads(node_cluster.kubectl("get", "node", real_node.name, "-o", "json").stdout)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == str(node_cluster.toolchain.pins.kubernetes)
    assert info["containerRuntimeVersion"].startswith("containerd://")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert real_node.status().running


def test_project_image_runs_and_logs(project_image: str, pods) -> None:
    name = pods.run("xorj-version", project_image, args=["--version"])
    pod = pods.wait_phase(name, ("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded"
    from xorj import __version__

    assert f"version {__version__}" in pods.logs(name)


def test_pod_to_pod_service_and_host(project_image: str, pods, node_cluster: LocalCluster,
                                     real_node: LocalChainNode) -> None:
    label = f"xorj-web-{time.monotonic_ns()}"  # this test's server only, not a leftover of an earlier run
    server = pods.run("web", BASE, command=["python3", "-m", "http.server", "8000"], labels={"app": label},
                      restart="Always", ready_on_port=8000)
    server_ip = pods.wait_ready(server)["status"]["podIP"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": server},
               "spec": {"selector": {"app": label}, "ports": [{"port": 80, "targetPort": 8000, "protocol": "TCP"}]}}
    node_cluster.kubectl("apply", "-f", "-", input=json.dumps(service))
    service_ip = node_cluster.kubectl("get", "service", server, "-o", "jsonpath={.spec.clusterIP}").stdout
    # What the client below depends on: the pod is a ready endpoint and kube-proxy has routed the new
    # cluster IP to it (until then kube-proxy REJECTs it: "Connection refused").
    wait_service_routed(node_cluster, real_node, server, server_ip, 8000)
    # A host service on 127.0.0.1 only, as Postgres and the local chain are.
    host_server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = host_server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
        host_port = int(line.split(" port ")[1].split()[0])
        host_address = real_node.expose_host_port(host_port)
        urls = [f"http://{server_ip}:8000/", f"http://{service_ip}/", f"http://{host_address}/"]
        script = ("import urllib.request as u\n"
                  f"for url in {urls!r}:\n"
                  "    try: print(url, u.urlopen(url, timeout=5).status)\n"
                  "    except Exception as e: print(url, 'ERR', e)\n")
        client = pods.run("client", BASE, command=["python3", "-c", script])
        pods.wait_phase(client, ("Succeeded", "Failed"))
        output = pods.logs(client)
    finally:
        host_server.kill()
    for url in urls:
        assert f"{url} 200" in output, output


def test_pods_resolve_services_by_name_and_connect(project_image: str, pods, node_cluster: LocalCluster,
                                                  real_node: LocalChainNode) -> None:
    """Cluster DNS (CoreDNS behind kube-dns, see xorj.devenv.node.dns): a pod finds a Service by its
    short name and its full name, gets the Service's cluster IP, and connects through it."""
    label = f"xorj-dns-{time.monotonic_ns()}"
    server = pods.run("dns-web", BASE, command=["python3", "-m", "http.server", "8000"], labels={"app": label},
                      restart="Always", ready_on_port=8000)
    server_ip = pods.wait_ready(server)["status"]["podIP"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": server},
               "spec": {"selector": {"app": label}, "ports": [{"port": 80, "targetPort": 8000, "protocol": "TCP"}]}}
    node_cluster.kubectl("apply", "-f", "-", input=json.dumps(service))
    service_ip = node_cluster.kubectl("get", "service", server, "-o", "jsonpath={.spec.clusterIP}").stdout
    api_ip = node_cluster.kubectl("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout
    wait_service_routed(node_cluster, real_node, server, server_ip, 8000)
    names = [server, f"{server}.default.svc.cluster.local", "kubernetes.default"]
    script = ("import socket, urllib.request as u\n"
              f"for name in {names!r}:\n"
              "    try: print('resolved', name, socket.gethostbyname(name))\n"
              "    except Exception as e: print('resolved', name, 'ERR', e)\n"
              f"try: print('fetched', u.urlopen('http://{server}/', timeout=5).status)\n"
              "except Exception as e: print('fetched ERR', e)\n"
              "print(open('/etc/resolv.conf').read())\n")
    client = pods.run("dns-client", BASE, command=["python3", "-c", script])
    pods.wait_phase(client, ("Succeeded", "Failed"))
    output = pods.logs(client)

    assert f"resolved {server} {service_ip}" in output, output
    assert f"resolved {server}.default.svc.cluster.local {service_ip}" in output, output
    assert f"resolved kubernetes.default {api_ip}" in output, output
    assert "fetched 200" in output, output
    dns_ip = real_node.layout().cluster_dns_ip
    assert f"nameserver {dns_ip}" in output, output
    assert node_cluster.kubectl("get", "service", "kube-dns", "-n", "kube-system", "-o",
                                "jsonpath={.spec.clusterIP}").stdout == dns_ip


def test_pods_reach_the_api_server_through_the_kubernetes_service_with_tls_verified(
        project_image: str, pods) -> None:
    """What an in-cluster client (the chart's operator as a pod) does: connect to
    KUBERNETES_SERVICE_HOST (the Service's IP) and verify the server against the ServiceAccount's CA."""
    script = ("import os, ssl, urllib.request as u\n"
              "ca = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'\n"
              "url = f\"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}/version\"\n"
              "try: print('api', url, u.urlopen(url, timeout=10, context=ssl.create_default_context(cafile=ca)).status)\n"
              "except Exception as e: print('api', url, 'ERR', e)\n")
    client = pods.run("api-client", BASE, command=["python3", "-c", script])
    pods.wait_phase(client, ("Succeeded", "Failed"))
    output = pods.logs(client)

    assert "api https://10.0.0.1:443/version 200" in output, output


def test_network_policy_denies_ingress(project_image: str, pods, node_cluster: LocalCluster) -> None:
    label = f"xorj-np-{time.monotonic_ns()}"
    server = pods.run("np-web", BASE, command=["python3", "-m", "http.server", "8000"], labels={"app": label},
                      restart="Always", ready_on_port=8000)
    server_ip = pods.wait_ready(server)["status"]["podIP"]  # listening: the first probe must get 200
    script = ("import urllib.request as u\n"
              f"try: print('status', u.urlopen('http://{server_ip}:8000/', timeout=4).status)\n"
              "except Exception as e: print('ERR', e)\n")

    def probe() -> str:
        client = pods.run("np-client", BASE, command=["python3", "-c", script])
        pods.wait_phase(client, ("Succeeded", "Failed"))
        return pods.logs(client)

    assert "status 200" in probe()
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": label},
              "spec": {"podSelector": {"matchLabels": {"app": label}}, "policyTypes": ["Ingress"]}}
    node_cluster.kubectl("apply", "-f", "-", input=json.dumps(policy))
    deadline = time.monotonic() + 30
    denied = ""
    while time.monotonic() < deadline:
        denied = probe()
        if "ERR" in denied:
            break
    assert "ERR" in denied and "status 200" not in denied, denied
    node_cluster.kubectl("delete", "networkpolicy", label)


def _host_pids_with(marker: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and marker in cmdline(int(p.name))]


def test_deleting_a_pod_kills_its_container(project_image: str, pods, node_cluster: LocalCluster) -> None:
    marker = f"xorj-marker-{os.getpid()}-{time.monotonic_ns()}"
    name = pods.run("sleeper", BASE, command=["python3", "-c", "import time; time.sleep(3600)", marker])
    pods.wait_phase(name, ("Running",))
    assert _host_pids_with(marker), "the container's process is not running on the host"
    node_cluster.kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")
    deadline = time.monotonic() + 20
    while _host_pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _host_pids_with(marker)


def test_pods_survive_a_kubelet_restart(project_image: str, pods, real_node: LocalChainNode) -> None:
    name = pods.run("survivor", BASE, command=["python3", "-c", "import time; time.sleep(3600)"], restart="Always")
    before = pods.wait_phase(name, ("Running",))["status"]["containerStatuses"][0]
    from xorj.devenv.node import processes

    layout = real_node.layout()
    processes.stop("kubelet", layout.pids_dir, str(layout.state_dir))
    assert not real_node.status().processes["kubelet"]
    real_node.up()
    time.sleep(5)  # a few kubelet sync loops
    after = pods.wait_phase(name, ("Running",))["status"]["containerStatuses"][0]
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0


def test_cluster_down_removes_the_node_and_everything_it_made(real_node: LocalChainNode, node_cluster: LocalCluster) -> None:
    from .conftest import CLUSTER_NAME, xorj

    layout = real_node.layout()
    host = NodeHost(layout)
    assert real_node.joined() == CLUSTER_NAME
    down = xorj("dev", "cluster", "down", "--name", CLUSTER_NAME, "--force")
    assert down.returncode == 0, down.stderr[-3000:]
    assert not node_cluster.status().running
    assert not host.netns_path.exists()
    assert subprocess.run(["ip", "link", "show", layout.host_veth], check=False, capture_output=True).returncode != 0
    assert not any((h / layout.cgroup_root.lstrip("/")).exists() for h in host_cgroups())
    assert str(layout.state_dir) not in Path("/proc/self/mountinfo").read_text()
    assert not _host_pids_with(str(layout.state_dir))
    assert not layout.state_dir.exists()
    assert real_node.joined() is None


def host_cgroups() -> list[Path]:
    from xorj.devenv.node.host import cgroup_hierarchies

    return cgroup_hierarchies()
