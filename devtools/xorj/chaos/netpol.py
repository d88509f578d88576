"""A ledger partition made of NetworkPolicy: the executors' egress with the ledger taken out (pure).

NetworkPolicies are allow-lists that add up: a pod may send what any policy selecting it allows. A
"deny all egress" policy added beside the chart's executor policy (chaostoolkit-kubernetes'
``deny_all_egress``) therefore cuts nothing. A real cut narrows every policy that lets the executors
reach the ledger; where no policy limits their egress at all, one is added that allows everything
but the ledger. Either way established connections survive (agents accept ESTABLISHED traffic), so the
action that applies these also ends the executors' ledger sessions.
"""

from __future__ import annotations

import copy
from typing import Any

CHAOS_POLICY_NAME = "xorj-chaos-ledger-cut"


def selects(pod_selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a policy's podSelector picks pods with ``labels`` (matchLabels and matchExpressions)."""
    for key, value in (pod_selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in pod_selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def limits_egress(spec: dict[str, Any]) -> bool:
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
    return "Egress" in types


def _rule_allows_port(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports") or []
    if not ports:
        return True  # no ports: every port
    for entry in ports:
        value, end = entry.get("port"), entry.get("endPort")
        if not isinstance(value, int):
            return True  # all ports, or a named port that may be the ledger's
        if value == port or (end is not None and value <= port <= end):
            return True
    return False


def without_ledger(spec: dict[str, Any], ledger_port: int) -> dict[str, Any]:
    """``spec`` with every egress rule that could reach ``ledger_port`` removed (a rule naming no port,
    or a named port, is removed too: it could)."""
    narrowed = copy.deepcopy(spec)
    narrowed["egress"] = [r for r in spec.get("egress") or [] if not _rule_allows_port(r, ledger_port)]
    return narrowed


def cut_policy(executor_labels: dict[str, str], ledger_ip: str) -> dict[str, Any]:
    """For executors no policy limits: egress anywhere except the ledger's address."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": CHAOS_POLICY_NAME, "labels": {"app.kubernetes.io/managed-by": "xorj-chaos"}},
        "spec": {"podSelector": {"matchLabels": executor_labels}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{ledger_ip}/32"]}}]}]},
    }
