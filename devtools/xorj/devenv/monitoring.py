"""Prometheus, Alertmanager and a webhook receiver for the local environment, as host processes
(like Postgres and the chain): `xorj dev up` starts them, `xorj dev down` stops them.

- Prometheus (the toolchain's, built from its Go module) scrapes what the chart's ServiceMonitors
  select, through an equivalent static configuration rendered from them: one scrape job per
  ServiceMonitor endpoint (its path and interval), whose targets are a ``file_sd`` file the
  environment writes (it knows where the operator, the executors and the chain listen, which the
  Kubernetes service discovery would find in a cluster). Each target carries the labels the
  Prometheus Operator would give it (``namespace``, ``service``, ``job`` = the Service, ``pod``,
  ``endpoint``), so the chart's rules read the same series here as in a cluster.
- It evaluates the chart's PrometheusRule groups, rendered from the chart into a rule file.
- Alertmanager routes every alert to the local webhook receiver (``xorj dev alert-receiver``), which
  appends each alert it is sent (firing and resolved) as a JSON line to ``alerts-received.jsonl``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xorj.devenv.processes import cmdline, process_running, terminate
from xorj.devenv.waiting import wait_until_ready
from xorj.errors import EnvironmentSetupError

# the order `down` stops them in: no alert is sent to a receiver already gone
PROCESS_NAMES = ("prometheus", "alertmanager", "alert-receiver")
START_SECONDS = 120.0
# Faster than a cluster's defaults, so that the demo and the chaos probes see an alert within seconds
EVALUATION_INTERVAL = "5s"
SCRAPE_INTERVAL = "5s"
RECEIVED_FILE = "alerts-received.jsonl"
# The development and chaos environments cap every alert's `for:` at this, as they shorten leases and
# breaker windows: an alert fires and resolves within a demo or an experiment (the expressions are the
# chart's; the promtool unit tests check the chart's own `for:` durations).
DEV_MAX_FOR = "10s"


def template_args(release: str, chart: Path, namespace: str, ledger_secret: str) -> list[str]:
    """`helm template` arguments that render the chart's ServiceMonitors and PrometheusRule as a
    cluster install with the operator and the watcher would (the demo runs them on the host, but it is
    still what their ServiceMonitors select), scraping every SCRAPE_INTERVAL. The watcher's endpoints
    are placeholders the chart requires to render it: only its ServiceMonitor and Service are read."""
    return ["template", release, str(chart), "--namespace", namespace,
            "--set", "operator.enabled=true", "--set", "postgresql.enabled=false", "--set", "networkPolicy.enabled=false",
            "--set", "watcher.enabled=true", "--set", "watcher.rpcUrl=http://127.0.0.1:8899",
            "--set", "watcher.priceApiUrl=http://127.0.0.1:8899/price/v3",
            "--set", f"ledger.existingSecret={ledger_secret}",
            "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
            "--set", f"metrics.serviceMonitor.interval={SCRAPE_INTERVAL}",
            "--show-only", "templates/servicemonitor.yaml", "--show-only", "templates/prometheusrule.yaml",
            "--show-only", "templates/operator-deployment.yaml", "--show-only", "templates/watcher.yaml"]


def chart_service(manifests: str, component: str) -> str:
    """The name of the chart's Service of ``component`` (the operator's metrics Service): the job
    label its targets get in a cluster."""
    for document in yaml.safe_load_all(manifests):
        if (isinstance(document, dict) and document.get("kind") == "Service"
                and document["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component):
            return document["metadata"]["name"]
    raise EnvironmentSetupError(f"the rendered chart has no Service of component {component!r}")


def static_job(name: str, address: str, labels: dict[str, str], path: str = "/metrics") -> dict[str, Any]:
    """A scrape job for a host process no ServiceMonitor describes (the local chain)."""
    return {"job_name": name, "metrics_path": path,
            "static_configs": [{"targets": [address], "labels": {"job": name, **labels}}]}


@dataclass(frozen=True)
class Target:
    """One process to scrape, with the labels the Kubernetes service discovery would have given it."""

    address: str  # host:port
    namespace: str
    service: str
    pod: str
    extra_labels: dict[str, str] = field(default_factory=dict)

    def group(self) -> dict[str, Any]:
        labels = {"namespace": self.namespace, "service": self.service, "job": self.service, "pod": self.pod,
                  "endpoint": "metrics", **self.extra_labels}
        return {"targets": [self.address], "labels": labels}


def chart_monitoring(manifests: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ServiceMonitors and PrometheusRules of a rendered chart (``helm template`` output)."""
    monitors, rules = [], []
    for document in yaml.safe_load_all(manifests):
        if isinstance(document, dict) and document.get("kind") == "ServiceMonitor":
            monitors.append(document)
        elif isinstance(document, dict) and document.get("kind") == "PrometheusRule":
            rules.append(document)
    if not monitors or not rules:
        raise EnvironmentSetupError("the rendered chart has no ServiceMonitor or no PrometheusRule: render it with "
                                    "metrics.serviceMonitor.enabled=true and metrics.prometheusRule.enabled=true")
    return monitors, rules


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``1m``, ``90s``, ``1h30m``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise EnvironmentSetupError(f"for: {text!r} is not a Prometheus duration")
    return sum(int(n) * units[u] for n, u in parts)


def rule_file(prometheus_rules: Iterable[dict[str, Any]], max_for: str | None = None) -> dict[str, Any]:
    """A Prometheus rule file holding every group of the PrometheusRules. ``max_for`` caps every
    alert's ``for:`` (the chaos environment shortens it, as it shortens leases and breaker windows,
    so an alert can fire and resolve within an experiment; the expressions stay the chart's)."""
    groups = copy.deepcopy([group for rule in prometheus_rules for group in rule["spec"]["groups"]])
    if max_for is not None:
        cap = duration_seconds(max_for)
        for group in groups:
            for rule in group["rules"]:
                if "for" in rule and duration_seconds(str(rule["for"])) > cap:
                    rule["for"] = max_for
    return {"groups": groups}


def job_name(monitor: dict[str, Any], index: int) -> str:
    """The Prometheus Operator's name for the scrape job of a ServiceMonitor's endpoint."""
    meta = monitor["metadata"]
    return f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}"


def targets_file(targets_dir: Path, monitor: dict[str, Any]) -> Path:
    return targets_dir / f"{monitor['metadata']['name']}.json"


def component(monitor: dict[str, Any]) -> str:
    return str(monitor["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def label_meta(name: str) -> str:
    """Prometheus' meta label of a Kubernetes Service label (characters outside [a-zA-Z0-9_] become _)."""
    return "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discovered_targets(monitor: dict[str, Any], endpoint: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """The ServiceMonitor's endpoint as the Prometheus Operator renders it: Kubernetes service
    discovery of Endpoints (through ``kubeconfig``), kept where the Service's labels match its selector
    and the port's name is the endpoint's, labelled namespace, service, job (the Service), pod and
    endpoint. Pods that are replaced are followed at once, with their new addresses."""
    spec = monitor["spec"]
    namespaces = spec.get("namespaceSelector", {}).get("matchNames") or [monitor["metadata"]["namespace"]]
    keep = [{"action": "keep", "source_labels": [label_meta(name)], "regex": value}
            for name, value in sorted(spec["selector"].get("matchLabels", {}).items())]
    keep.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": endpoint["port"]})
    copied = [("__meta_kubernetes_namespace", "namespace"), ("__meta_kubernetes_service_name", "service"),
              ("__meta_kubernetes_pod_name", "pod"), ("__meta_kubernetes_service_name", "job")]
    return {
        "kubernetes_sd_configs": [{"role": "endpoints", "kubeconfig_file": str(kubeconfig),
                                   "namespaces": {"names": list(namespaces)}}],
        "relabel_configs": [*keep, *({"source_labels": [source], "target_label": target} for source, target in copied),
                            {"target_label": "endpoint", "replacement": endpoint["port"]}],
    }


def prometheus_config(monitors: Iterable[dict[str, Any]], targets_dir: Path, rules_path: Path,
                      alertmanager_address: str, extra_jobs: Iterable[dict[str, Any]] = (),
                      discovered: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """The equivalent of the ServiceMonitors: one job per endpoint. The components in ``discovered``
    (component -> kubeconfig) run as pods Prometheus can reach, and are found through the API server
    as in a cluster; the others run as host processes, whose targets the environment writes to a file."""
    jobs = []
    for monitor in monitors:
        for index, endpoint in enumerate(monitor["spec"]["endpoints"]):
            kubeconfig = (discovered or {}).get(component(monitor))
            job: dict[str, Any] = {
                "job_name": job_name(monitor, index),
                "metrics_path": endpoint.get("path", "/metrics"),
                # the targets' own job label (the Service's name, as in a cluster) is the one rules match
                "honor_labels": False,
            }
            if kubeconfig is not None:
                job.update(discovered_targets(monitor, endpoint, kubeconfig))
            else:
                job["file_sd_configs"] = [{"files": [str(targets_file(targets_dir, monitor))], "refresh_interval": "5s"}]
            if endpoint.get("interval"):
                job["scrape_interval"] = endpoint["interval"]
            jobs.append(job)
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": EVALUATION_INTERVAL},
        "rule_files": [str(rules_path)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]},
        "scrape_configs": jobs + list(extra_jobs),
    }


def alertmanager_config(receiver_url: str) -> dict[str, Any]:
    """Every alert to the local webhook, firing and resolved, grouped per alert and object, quickly."""
    return {
        "route": {"receiver": "local-webhook", "group_by": ["alertname", "namespace", "strategy"],
                  "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
        "receivers": [{"name": "local-webhook",
                       "webhook_configs": [{"url": receiver_url, "send_resolved": True}]}],
    }


def received_alerts(path: Path) -> list[dict[str, Any]]:
    """What the receiver recorded: one dict per alert notification (see :mod:`xorj.devenv.alert_receiver`)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Monitoring:
    """The three processes and their files under ``root`` (``<demo state>/monitoring``).

    ``records`` is the mapping (name -> process record) the caller persists, e.g. the demo's
    demo.json ``processes``; a record has pid, marker, log, port.
    """

    def __init__(self, root: Path, binaries: Callable[[str], Path], say: Callable[[str], None] = lambda _: None):
        self.root = root
        self.binary = binaries
        self.say = say
        self.targets_dir = root / "targets"
        self.rules_path = root / "rules.yml"
        self.prometheus_path = root / "prometheus.yml"
        self.alertmanager_path = root / "alertmanager.yml"
        self.received_path = root / RECEIVED_FILE
        self.monitors: list[dict[str, Any]] = []

    # -- configuration ----------------------------------------------------------------------------

    def configure(self, manifests: str, ports: dict[str, int], extra_jobs: Iterable[dict[str, Any]] = (),
                  max_for: str | None = None, discovered: Mapping[str, Path] | None = None) -> None:
        """Write the rule file, Prometheus' and Alertmanager's configurations from the rendered chart
        (``discovered``: see :func:`prometheus_config`)."""
        self.monitors, rules = chart_monitoring(manifests)
        self.root.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(exist_ok=True)
        _write_yaml(self.rules_path, rule_file(rules, max_for))
        _write_yaml(self.prometheus_path, prometheus_config(
            self.monitors, self.targets_dir, self.rules_path, f"127.0.0.1:{ports['alertmanager']}", extra_jobs,
            discovered))
        _write_yaml(self.alertmanager_path, alertmanager_config(f"http://127.0.0.1:{ports['alert-receiver']}/alerts"))
        for monitor in self.monitors:
            path = targets_file(self.targets_dir, monitor)
            if not path.exists():
                _write_json(path, [])

    def targets_path(self, component: str) -> Path:
        """The file_sd file of the ServiceMonitor whose ``app.kubernetes.io/component`` is ``component``."""
        monitor = next((m for m in self.monitors
                        if m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component), None)
        if monitor is None:
            raise EnvironmentSetupError(f"the chart has no ServiceMonitor for component {component!r}")
        return targets_file(self.targets_dir, monitor)

    def set_targets(self, component: str, targets: Iterable[Target]) -> None:
        """The targets of the ServiceMonitor of ``component`` (operator, executor); Prometheus re-reads
        the file within seconds."""
        _write_json(self.targets_path(component), [t.group() for t in targets])

    # -- processes --------------------------------------------------------------------------------

    def start(self, records: dict[str, Any], ports: dict[str, int],
              start_process: Callable[[str, list[str], dict[str, str], Path, str], dict[str, Any]]) -> None:
        """Start whichever of the three is not running (``ports`` as given to :meth:`configure`)."""
        import sys

        logs = self.root / "logs"
        argv = {
            "alert-receiver": [sys.executable, "-m", "xorj.devenv.alert_receiver", "--host", "127.0.0.1",
                               "--port", str(ports["alert-receiver"]), "--out", str(self.received_path)],
            "alertmanager": [str(self.binary("alertmanager")), f"--config.file={self.alertmanager_path}",
                             f"--storage.path={self.root / 'alertmanager-data'}",
                             f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                             # a single local instance: no gossip cluster (it would bind 0.0.0.0:9094)
                             "--cluster.listen-address="],
            "prometheus": [str(self.binary("prometheus")), f"--config.file={self.prometheus_path}",
                           f"--storage.tsdb.path={self.root / 'prometheus-data'}",
                           f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                           "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle"],
        }
        ready_path = {"alert-receiver": "/healthz", "alertmanager": "/-/ready", "prometheus": "/-/ready"}
        for name in reversed(PROCESS_NAMES):  # receiver first: Alertmanager sends to it
            record = records.get(name)
            if record and _alive(record):
                continue
            record = start_process(name, argv[name], dict(os.environ), logs / f"{name}.log", str(self.root))
            record["port"] = ports[name]
            records[name] = record
            url = f"http://127.0.0.1:{ports[name]}{ready_path[name]}"
            wait_until_ready(f"{name} answering {url}", lambda url=url: _http_ok(url), START_SECONDS,
                             alive=lambda record=record: process_running(int(record["pid"])), logs=[record["log"]])
            self.say(f"    {name} pid {record['pid']} on 127.0.0.1:{ports[name]}")

    def reload_prometheus(self, records: dict[str, Any]) -> None:
        """Make a running Prometheus re-read its configuration and rule file."""
        import urllib.request

        record = records.get("prometheus")
        if record and _alive(record):
            request = urllib.request.Request(f"http://127.0.0.1:{record['port']}/-/reload", method="POST")
            with urllib.request.urlopen(request, timeout=10):
                pass

    @staticmethod
    def stop(records: dict[str, Any], say: Callable[[str], None] = lambda _: None) -> None:
        for name in PROCESS_NAMES:
            record = records.get(name)
            if record and _alive(record):
                say(f"stopping {name} (pid {record['pid']})")
                terminate(int(record["pid"]), grace=20, group=True, running=lambda record=record: _alive(record),
                          poll=0.2)


def urls(records: dict[str, Any]) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{records[name]['port']}" for name in PROCESS_NAMES if records.get(name)}


def _alive(record: dict[str, Any]) -> bool:
    command = cmdline(int(record["pid"]))
    return bool(command) and record["marker"] in command


def _write_yaml(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
