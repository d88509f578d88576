"""A ledger partition made of NetworkPolicy: the executors' egress with the ledger taken out (pure).

NetworkPolicies are allow-lists that add up: a pod may send what any policy selecting it allows. A
"deny all egress" policy added beside the chart's executor policy (chaostoolkit-kubernetes'
``deny_all_egress``) therefore cuts nothing. A real cut narrows every policy that lets the executors
reach the ledger; where no policy limits their egress at all, one is added that allows everything
but the ledger. Either way established connections survive (agents accept ESTABLISHED traffic), so the
action that applies these also ends the executors' ledger sessions.

What to cut is what the executors' packets carry once the Service in their DSN is translated (a
NetworkPolicy sees the pod's address and port, not the Service's): :func:`ledger_peer` reads it from
the executors' own DSN and that Service's EndpointSlices. Not from the DSN the probes use: with the
chart's HA ledger (`xorj dev up --ledger ha`) that one goes through a relay on the host, whose port
is not the members' 5432, and a cut narrowed to it left the executors' ledger rule in place.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict

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


def cut_policy(executor_labels: dict[str, str], ledger_ip: str | list[str]) -> dict[str, Any]:
    """For executors no policy limits: egress anywhere except the ledger's address(es)."""
    addresses = [ledger_ip] if isinstance(ledger_ip, str) else list(ledger_ip)
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": CHAOS_POLICY_NAME, "labels": {"app.kubernetes.io/managed-by": "xorj-chaos"}},
        "spec": {"podSelector": {"matchLabels": executor_labels}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{a}/32" for a in addresses]}}]}]},
    }


@dataclass(frozen=True)
class DsnTarget:
    """Where a DSN points: a Service (``service`` in ``namespace``) or an address (``service`` None)."""

    host: str
    port: int
    service: str | None
    namespace: str | None


def dsn_target(dsn: str, pod_namespace: str) -> DsnTarget:
    """The host and port of ``dsn`` (libpq's default 5432), and the Service its host names: ``name``,
    ``name.namespace``, ``name.namespace.svc[.cluster.local]`` (a bare name is in the pod's namespace);
    an IP address names none."""
    params = conninfo_to_dict(dsn)
    host = str(params.get("host") or "")
    port = int(str(params.get("port") or 5432).split(",")[0])
    if "," in host or not host or host.startswith("/"):
        raise ValueError(f"the executors' ledger DSN names {host or 'no host'!r}: one host or Service expected")
    try:
        ipaddress.ip_address(host)
        return DsnTarget(host, port, None, None)
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) == 1:
        return DsnTarget(host, port, parts[0], pod_namespace)
    if len(parts) == 2 or parts[2] == "svc":
        return DsnTarget(host, port, parts[0], parts[1])
    return DsnTarget(host, port, None, None)  # a name outside the cluster: its port is all there is


def ledger_peer(target: DsnTarget, service: dict[str, Any] | None,
                slices: list[dict[str, Any]]) -> tuple[list[int], list[str]]:
    """The ports and addresses the executors' ledger packets carry after the Service's translation:
    the EndpointSlices' ports of the Service port the DSN names (matched by its name), and their
    addresses. For a DSN naming an address (or no Service found), its own port and address."""
    if target.service is None or service is None:
        return [target.port], ([target.host] if target.service is None else [])
    names = [p.get("name") or "" for p in (service.get("spec") or {}).get("ports") or []
             if int(p.get("port") or 0) == target.port]
    if not names:
        raise ValueError(f"Service {target.namespace}/{target.service} has no port {target.port} "
                         "(the executors' ledger DSN names it)")
    ports: set[int] = set()
    addresses: set[str] = set()
    for item in slices:
        matched = [int(p["port"]) for p in item.get("ports") or [] if (p.get("name") or "") == names[0] and p.get("port")]
        ports.update(matched)
        if matched:
            addresses.update(a for e in item.get("endpoints") or [] for a in e.get("addresses") or [])
    if not ports:
        raise ValueError(f"Service {target.namespace}/{target.service} has no endpoint for its port "
                         f"{names[0] or target.port}: nothing to cut")
    return sorted(ports), sorted(addresses)
