"""values.schema.json refuses bad values, naming the key and the rule."""

from __future__ import annotations

import json

import pytest

from tests.unit.chart.helm import CHART, template

BAD = {
    "negative replicas": (["operator.replicas=-1"], "/operator/replicas", "minimum"),
    "unknown key": (["operator.replica=2"], "/operator", "'replica' not allowed"),
    "writable root": (["containerSecurityContext.readOnlyRootFilesystem=false"],
                      "/containerSecurityContext/readOnlyRootFilesystem", "must be true"),
    "root allowed": (["podSecurityContext.runAsNonRoot=false"], "/podSecurityContext/runAsNonRoot",
                     "must be true"),
    "privilege escalation": (["containerSecurityContext.allowPrivilegeEscalation=true"],
                             "/containerSecurityContext/allowPrivilegeEscalation", "must be false"),
    "uid 0": (["podSecurityContext.runAsUser=0"], "/podSecurityContext/runAsUser", "minimum"),
    "added capability": (["containerSecurityContext.capabilities.add={NET_ADMIN}"],
                         "/containerSecurityContext/capabilities/add", "maxItems"),
    "unconfined seccomp": (["podSecurityContext.seccompProfile.type=Unconfined"],
                           "/podSecurityContext/seccompProfile/type", "RuntimeDefault"),
    "bad pull policy": (["image.pullPolicy=Sometimes"], "/image/pullPolicy", "IfNotPresent"),
    "bad cidr": (["networkPolicy.rpc.cidrs={example}"], "/networkPolicy/rpc/cidrs/0", "pattern"),
    "port out of range": (["executor.metricsPort=70000"], "/executor/metricsPort", "maximum"),
    "bad namespace": (["watchNamespaces={Team_A}"], "/watchNamespaces/0", "pattern"),
    "replicas as text": (["operator.replicas=two"], "/operator/replicas", "want integer"),
}


@pytest.mark.parametrize(("sets", "path", "rule"), BAD.values(), ids=BAD.keys())
def test_bad_values_are_refused_naming_the_key(sets: list[str], path: str, rule: str) -> None:
    result = template(*sets)
    assert result.returncode != 0, f"{sets} was accepted"
    assert path in result.stderr and rule in result.stderr, result.stderr


def test_failure_ratio_above_one_is_refused() -> None:
    result = template(values={"metrics.prometheusRule.tradeFailureRatio": 1.5})
    assert result.returncode != 0
    assert "/metrics/prometheusRule/tradeFailureRatio" in result.stderr and "maximum" in result.stderr


def test_every_default_value_is_described_by_the_schema() -> None:
    """additionalProperties is false everywhere values.yaml has an object with fixed keys."""
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value, node, path):
        if isinstance(value, dict) and node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "values")


def test_good_values_pass() -> None:
    result = template("operator.replicas=2", "watchNamespaces={team-a}",
                      "networkPolicy.rpc.cidrs={203.0.113.0/24}", "metrics.prometheusRule.enabled=true")
    assert result.returncode == 0, result.stderr
