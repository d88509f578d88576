"""The local monitoring's configuration, rendered from the chart: Prometheus' (one scrape job per
ServiceMonitor endpoint, targets from files, the chart's rule groups) passes `promtool check config`,
Alertmanager's passes `amtool check-config`, and targets carry the labels the chart's rules select on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.fixtures.promtool import promtool
from tests.fixtures.toolchain import toolchain_binary
from tests.unit.chart.helm import CHART, helm
from xorj.devenv.alert_receiver import records_of
from xorj.devenv.monitoring import (
    Monitoring,
    Target,
    chart_service,
    static_job,
    template_args,
)

PORTS = {"prometheus": 19090, "alertmanager": 19093, "alert-receiver": 19095}


def configured(tmp_path: Path) -> tuple[Monitoring, str]:
    rendered = helm(*template_args("xorj", CHART, "xorj", "xorj-ledger"))
    assert rendered.returncode == 0, rendered.stderr
    monitoring = Monitoring(tmp_path, lambda name: Path(toolchain_binary(name)))
    monitoring.configure(rendered.stdout, PORTS, extra_jobs=[static_job("xorj-chain", "127.0.0.1:8899",
                                                                         {"namespace": "xorj"})])
    return monitoring, rendered.stdout


def test_prometheus_configuration_is_valid_and_mirrors_the_service_monitors(tmp_path: Path) -> None:
    monitoring, rendered = configured(tmp_path)
    checked = promtool("check", "config", str(monitoring.prometheus_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(monitoring.prometheus_path.read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"serviceMonitor/xorj/xorj-operator/0", "serviceMonitor/xorj/xorj-executors/0",
                         "serviceMonitor/xorj/xorj-watcher/0", "xorj-chain"}
    assert all(j["metrics_path"] == "/metrics" for j in jobs.values())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]
    groups = yaml.safe_load(monitoring.rules_path.read_text())["groups"]
    assert "XorjOperatorDown" in {r.get("alert") for g in groups for r in g["rules"]}
    assert chart_service(rendered, "operator") == "xorj-operator-metrics"
    assert chart_service(rendered, "watcher") == "xorj-watcher"
    assert "XorjWatcherLagging" in {r.get("alert") for g in groups for r in g["rules"]}


def test_the_watcher_is_scraped_from_its_service_monitor_when_it_runs(tmp_path: Path) -> None:
    monitoring, _ = configured(tmp_path)
    (job,) = [j for j in yaml.safe_load(monitoring.prometheus_path.read_text())["scrape_configs"]
              if j["job_name"] == "serviceMonitor/xorj/xorj-watcher/0"]
    assert job["metrics_path"] == "/metrics"
    (files,) = [c["files"] for c in job["file_sd_configs"]]
    assert json.loads(Path(files[0]).read_text()) == []  # no watcher runs yet: nothing to scrape
    monitoring.set_targets("watcher", [Target("127.0.0.1:8081", "xorj", "xorj-watcher", "watcher-7")])
    (group,) = json.loads(Path(files[0]).read_text())
    assert group["targets"] == ["127.0.0.1:8081"] and group["labels"]["job"] == "xorj-watcher"


def test_targets_carry_the_labels_the_rules_select_on(tmp_path: Path) -> None:
    monitoring, _ = configured(tmp_path)
    monitoring.set_targets("operator", [Target("127.0.0.1:9999", "xorj", "xorj-operator-metrics", "operator-1")])
    (group,) = json.loads((monitoring.targets_dir / "xorj-operator.json").read_text())
    assert group == {"targets": ["127.0.0.1:9999"],
                     "labels": {"namespace": "xorj", "service": "xorj-operator-metrics", "job": "xorj-operator-metrics",
                                "pod": "operator-1", "endpoint": "metrics"}}


def test_alertmanager_configuration_is_valid_and_sends_resolved_alerts_to_the_receiver(tmp_path: Path) -> None:
    monitoring, _ = configured(tmp_path)
    checked = subprocess.run([toolchain_binary("amtool"), "check-config", str(monitoring.alertmanager_path)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (webhook,) = yaml.safe_load(monitoring.alertmanager_path.read_text())["receivers"][0]["webhook_configs"]
    assert webhook == {"url": "http://127.0.0.1:19095/alerts", "send_resolved": True}


def test_the_receiver_refuses_a_payload_without_alerts() -> None:
    import pytest

    with pytest.raises(ValueError, match="alerts: must be a list"):
        records_of({"status": "firing"}, 0.0)
    (record,) = records_of({"receiver": "local-webhook", "alerts": [
        {"status": "firing", "labels": {"alertname": "X", "severity": "critical"}, "annotations": {"summary": "s"}}]},
        1.0)
    assert (record["alertname"], record["status"], record["annotations"]) == ("X", "firing", {"summary": "s"})


def test_the_development_cap_shortens_only_longer_for_durations() -> None:
    import pytest

    from xorj.devenv.monitoring import rule_file
    from xorj.errors import EnvironmentSetupError

    rule = {"spec": {"groups": [{"name": "g", "rules": [
        {"alert": "Slow", "expr": "up == 0", "for": "5m"}, {"alert": "Quick", "expr": "up == 0", "for": "5s"},
        {"alert": "Now", "expr": "up == 0"}, {"record": "r", "expr": "up"}]}]}}
    capped = {r.get("alert") or r["record"]: r.get("for") for r in rule_file([rule], "10s")["groups"][0]["rules"]}
    assert capped == {"Slow": "10s", "Quick": "5s", "Now": None, "r": None}
    assert rule["spec"]["groups"][0]["rules"][0]["for"] == "5m", "the chart's own rule must stay as it is"
    assert rule_file([rule])["groups"][0]["rules"][0]["for"] == "5m"
    with pytest.raises(EnvironmentSetupError, match="for: '5 minutes'"):
        rule_file([{"spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "5 minutes"}]}]}}],
                  "10s")


def test_xorj_dev_alert_receiver_is_a_command() -> None:
    from click.testing import CliRunner

    from xorj.cli import cli

    result = CliRunner().invoke(cli, ["dev", "alert-receiver", "--help"])
    assert result.exit_code == 0, result.output
    assert "--out" in result.output and "Alertmanager's webhook" in result.output
    refused = CliRunner().invoke(cli, ["dev", "alert-receiver", "--out", "x.jsonl"])
    assert refused.exit_code != 0 and "--port" in refused.output


def test_executor_pods_are_discovered_through_the_api_server_as_the_service_monitor_selects(tmp_path: Path) -> None:
    """On the real node the executors are pods: Prometheus finds them as the Prometheus Operator's
    rendering of the ServiceMonitor would, so a replaced pod is scraped at its new address."""
    rendered = helm(*template_args("xorj", CHART, "xorj", "xorj-ledger"))
    assert rendered.returncode == 0, rendered.stderr
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    monitoring = Monitoring(tmp_path / "m", lambda name: Path(toolchain_binary(name)))
    monitoring.configure(rendered.stdout, PORTS, discovered={"executor": kubeconfig})
    checked = promtool("check", "config", str(monitoring.prometheus_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(monitoring.prometheus_path.read_text())["scrape_configs"]}
    executors = jobs["serviceMonitor/xorj/xorj-executors/0"]
    assert "file_sd_configs" not in executors
    (sd,) = executors["kubernetes_sd_configs"]
    assert sd == {"role": "endpoints", "kubeconfig_file": str(kubeconfig), "namespaces": {"names": ["xorj"]}}
    keep = {tuple(r["source_labels"]): r["regex"] for r in executors["relabel_configs"] if r.get("action") == "keep"}
    assert keep == {("__meta_kubernetes_service_label_app_kubernetes_io_component",): "executor",
                    ("__meta_kubernetes_service_label_app_kubernetes_io_part_of",): "xorj-operator",
                    ("__meta_kubernetes_endpoint_port_name",): "metrics"}
    copied = {r["target_label"]: r.get("source_labels", [r.get("replacement")])[0]
              for r in executors["relabel_configs"] if "target_label" in r}
    assert copied == {"namespace": "__meta_kubernetes_namespace", "service": "__meta_kubernetes_service_name",
                      "job": "__meta_kubernetes_service_name", "pod": "__meta_kubernetes_pod_name",
                      "endpoint": "metrics"}
    # the host processes (operator, watcher) keep their target files
    assert "file_sd_configs" in jobs["serviceMonitor/xorj/xorj-operator/0"]
