"""Desired state of a TradingStrategy's children: executor Deployment, ConfigMap, Service, PDB.

Pure: a validated spec in, Kubernetes object dicts out; no I/O, no clock. The handlers apply what these
builders return (server-side apply), so "what should exist" is tested here without a cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xorj.controller.models import API_VERSION, GROUP, TradingStrategySpec
from xorj.executor.settings import executor_environment as settings_environment
from xorj.executor.settings import executor_variable, policy_environment

CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
STRATEGY_LABEL = f"{GROUP}/strategy"
COMPONENT_LABEL = "app.kubernetes.io/component"
# The label the bundled ledger's NetworkPolicy admits (charts/xorj-operator, "xorj.ledgerClientLabel"):
# only on executor pod templates, and the chart's admission policy lets only the operator and the
# controllers that turn its Deployments into pods set it, so a tenant cannot copy it onto a pod of theirs.
LEDGER_CLIENT_LABEL = f"{GROUP}/ledger-client"
EXECUTOR_COMPONENT = "executor"
MANAGED_BY = "xorj-operator"
VAULT_MOUNT_DIR = "/var/run/xorj/vault"
# The ledger's CA certificate (key ca.crt of the ledger Secret, when it has one), for sslmode=verify-full.
LEDGER_CA_MOUNT_DIR = "/var/run/xorj/ledger"
EXECUTOR_CONTAINER = "executor"
# The signer boundary as a sidecar (ExecutorDefaults.signer_sidecar): only the signer container mounts
# the vault key; the two share the socket's emptyDir.
SIGNER_CONTAINER = "signer"
SIGNER_SOCKET_DIR = "/var/run/xorj/signer"
SIGNER_SOCKET = f"{SIGNER_SOCKET_DIR}/signer.sock"
# The image's unprivileged user (Dockerfile USER). The vault Secret's files belong to this group
# (fsGroup) with mode 0440: the executor can read its key, no other user in the pod can.
EXECUTOR_UID = 10001


@dataclass(frozen=True)
class Owner:
    """The TradingStrategy that owns the children (garbage collection deletes them with it)."""

    name: str
    uid: str
    kind: str = "TradingStrategy"
    api_version: str = API_VERSION

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ExecutorDefaults:
    """Operator-wide settings every executor gets (not part of any one strategy's spec)."""

    image: str = "xorj-operator:latest"
    image_pull_policy: str = "IfNotPresent"
    ledger_secret_name: str = "xorj-ledger"
    ledger_secret_key: str = "dsn"
    metrics_port: int = 9102
    service_account: str | None = None
    log_level: str = "INFO"
    # Where executor pods may run (e.g. the nodes that may hold vault keys); empty: anywhere.
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[str, ...] = ()  # each a JSON object, so the dataclass stays hashable
    # The signer boundary (docs/security.md): the vault keys only in a signer sidecar, the executor
    # signing through its socket; the default, as in the operator's settings. False: the executor's
    # in-process keyring (the executor container mounts the keys). The signer's ledger login's DSN is
    # key ``signer_ledger_secret_key`` of the ledger Secret.
    signer_sidecar: bool = True
    signer_ledger_secret_key: str = "signer-dsn"


@dataclass(frozen=True, order=True)
class VaultKeyRef:
    """Where one active Vault's keypair is: its Secret and the key in it (from the Vault's spec)."""

    secret_name: str
    secret_key: str
    vault: str  # the Vault object's name, for messages


@dataclass(frozen=True)
class KeySources:
    """The key holder's keys directory: the strategy's own key (an item of its vault Secret, unless
    that Secret is mounted whole for a Vault) and every Secret named by its Vaults, mounted whole so a
    new key in an already mounted Secret reaches the pods by the kubelet's in-place update, with no
    change to the pod spec."""

    own_secret: str
    own_key: str
    whole_secrets: tuple[str, ...]

    def projected_volume(self) -> dict[str, Any]:
        sources: list[dict[str, Any]] = []
        if self.own_secret not in self.whole_secrets:
            sources.append({"secret": {"name": self.own_secret,
                                       "items": [{"key": self.own_key, "path": self.own_key}]}})
        sources.extend({"secret": {"name": name}} for name in self.whole_secrets)
        return {"name": "vault", "projected": {"defaultMode": 0o440, "sources": sources}}


class KeyCollision(ValueError):
    """Two Secrets would put a file of the same name into the keys directory: one would shadow the other."""


def key_sources(spec: TradingStrategySpec, vaults: Iterable[VaultKeyRef]) -> KeySources | None:
    """The keys directory of a strategy with Vaults; None without any (the one-vault pod of before).

    Raises :class:`KeyCollision` naming both Secrets when one file name would come from two Secrets
    (what the operator can see: the strategy's spec.vault.secretKey and each Vault's spec.secretKey).
    """
    refs = sorted(set(vaults))
    if not refs:
        return None
    owners: dict[str, tuple[str, str]] = {spec.vault.secret_key: (spec.vault.secret_name, "spec.vault")}
    for ref in refs:
        seen = owners.setdefault(ref.secret_key, (ref.secret_name, f"Vault {ref.vault}"))
        if seen[0] != ref.secret_name:
            raise KeyCollision(
                f"key {ref.secret_key!r} is in Secret {seen[0]!r} ({seen[1]}) and in Secret {ref.secret_name!r} "
                f"(Vault {ref.vault}): both would be the file {VAULT_MOUNT_DIR}/{ref.secret_key}; give each "
                "key a unique name (e.g. <publicKey>.json) or keep the keys in one Secret")
    return KeySources(own_secret=spec.vault.secret_name, own_key=spec.vault.secret_key,
                      whole_secrets=tuple(sorted({ref.secret_name for ref in refs})))


def names(strategy: str) -> dict[str, str]:
    base = f"{strategy}-executor"
    return {"deployment": base, "configmap": f"{base}-config", "service": base, "pdb": base}


def selector_labels(strategy: str) -> dict[str, str]:
    return {STRATEGY_LABEL: strategy, COMPONENT_LABEL: EXECUTOR_COMPONENT}


def labels(strategy: str) -> dict[str, str]:
    return {
        **selector_labels(strategy),
        "app.kubernetes.io/name": "xorj-executor",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "xorj-operator",
    }


def pod_labels(strategy: str) -> dict[str, str]:
    """Labels of an executor pod: the children's labels and the ledger-client label."""
    return {**labels(strategy), LEDGER_CLIENT_LABEL: "true"}


def _meta(name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels(owner.name),
        "ownerReferences": [owner.reference()],
    }


def executor_environment(
    strategy: str, namespace: str, spec: TradingStrategySpec, defaults: ExecutorDefaults,
    keys: KeySources | None = None,
) -> dict[str, str]:
    """The executor's non-secret settings (XORJ_* variables), which go into the ConfigMap. Every name
    comes from the executor's settings model (:func:`xorj.executor.settings.executor_environment`), and
    the slippage policy and risk limits are rendered from the domain objects the executor builds back."""
    api_key_ref = spec.endpoints.rpc_api_key_secret_ref
    key_settings: dict[str, str] = (
        {"signer_socket": SIGNER_SOCKET} if defaults.signer_sidecar else
        {"vault_keys_dir": VAULT_MOUNT_DIR} if keys is not None else
        {"vault_pubkey": spec.vault.public_key, "vault_keypair_file": f"{VAULT_MOUNT_DIR}/{spec.vault.secret_key}"})
    return {
        **settings_environment(
            # the ledger's strategy key is namespaced: equal names in two namespaces never share trades
            strategy=f"{namespace}/{strategy}",
            **key_settings,
            rpc_url=spec.endpoints.rpc_url,
            swap_api_url=spec.endpoints.swap_api_url,
            rpc_api_key_parameter=api_key_ref.query_parameter if api_key_ref is not None else "api-key",
            concurrency=spec.executor.concurrency,
            paused=spec.paused,
            http_port=defaults.metrics_port,
            log_level=defaults.log_level,
        ),
        # money and shares as Decimal text (never a float's repr): what the executor reads is what
        # the CR said
        **policy_environment(spec.slippage.to_domain(), spec.risk.to_domain(),
                              spec.risk.circuit_breaker.to_domain()),
    }


def api_key_environment(spec: TradingStrategySpec) -> list[dict[str, Any]]:
    """The endpoints' API keys as env entries read from their Secrets by the kubelet: the values never
    pass through the operator, the ConfigMap or the Deployment object."""
    env: list[dict[str, Any]] = []
    rpc_ref = spec.endpoints.rpc_api_key_secret_ref
    if rpc_ref is not None:
        env.append({"name": executor_variable("rpc_api_key"),
                    "valueFrom": {"secretKeyRef": {"name": rpc_ref.name, "key": rpc_ref.key}}})
    swap_ref = spec.endpoints.swap_api_key_secret_ref
    if swap_ref is not None:
        env.append({"name": executor_variable("swap_api_key"),
                    "valueFrom": {"secretKeyRef": {"name": swap_ref.name, "key": swap_ref.key}}})
    return env


def config_map(
    owner: Owner, namespace: str, spec: TradingStrategySpec, defaults: ExecutorDefaults,
    keys: KeySources | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(names(owner.name)["configmap"], namespace, owner),
        "data": executor_environment(owner.name, namespace, spec, defaults, keys),
    }


def config_hash(spec: TradingStrategySpec, defaults: ExecutorDefaults) -> str:
    """A digest of everything an executor reads at start: when it changes, executors must roll.

    ``paused`` and ``replicas`` are left out: pausing scales to zero, it needs no new pods.
    """
    relevant = spec.to_wire()
    relevant.pop("paused", None)
    for ignored in ("replicas", "image", "imagePullPolicy"):  # the image fields are ignored legacy values
        relevant.get("executor", {}).pop(ignored, None)
    payload = json.dumps({"spec": relevant, "defaults": defaults.__dict__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def desired_replicas(spec: TradingStrategySpec) -> int:
    return 0 if spec.paused else spec.executor.replicas


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def signer_container(spec: TradingStrategySpec, defaults: ExecutorDefaults,
                     keys: KeySources | None = None) -> dict[str, Any]:
    """The signer boundary's sidecar (``xorj signer``): the only container that mounts the vault key.
    It serves the executor on the shared socket, reads the ledger with its own signer-only login, and
    re-runs the swap guard with its own RPC client."""
    environment = {
        "XORJ_SIGNER_SOCKET": SIGNER_SOCKET,
        **({"XORJ_SIGNER_KEYS_DIR": VAULT_MOUNT_DIR} if keys is not None else
           {"XORJ_SIGNER_KEYPAIR_FILE": f"{VAULT_MOUNT_DIR}/{spec.vault.secret_key}"}),
        "XORJ_SIGNER_RPC_URL": spec.endpoints.rpc_url,
        "XORJ_SIGNER_SLIPPAGE_CAP_BPS": str(spec.slippage.to_domain().cap_bps),
        "XORJ_SIGNER_LOG_LEVEL": defaults.log_level,
    }
    api_key_ref = spec.endpoints.rpc_api_key_secret_ref
    secret_env: list[dict[str, Any]] = []
    if api_key_ref is not None:
        environment["XORJ_SIGNER_RPC_API_KEY_PARAMETER"] = api_key_ref.query_parameter
        secret_env.append({"name": "XORJ_SIGNER_RPC_API_KEY",
                           "valueFrom": {"secretKeyRef": {"name": api_key_ref.name, "key": api_key_ref.key}}})
    return {
        "name": SIGNER_CONTAINER,
        "image": defaults.image,
        "imagePullPolicy": defaults.image_pull_policy,
        "command": ["xorj", "signer"],
        "env": [*({"name": k, "value": v} for k, v in environment.items()),
                {"name": "XORJ_SIGNER_LEDGER_DSN",
                 "valueFrom": {"secretKeyRef": {"name": defaults.ledger_secret_name,
                                                "key": defaults.signer_ledger_secret_key}}},
                *secret_env],
        "volumeMounts": [{"name": "vault", "mountPath": VAULT_MOUNT_DIR, "readOnly": True},
                         {"name": "signer-socket", "mountPath": SIGNER_SOCKET_DIR},
                         {"name": "ledger-ca", "mountPath": LEDGER_CA_MOUNT_DIR, "readOnly": True}],
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": _container_security(),
    }


def deployment(
    owner: Owner, namespace: str, spec: TradingStrategySpec, defaults: ExecutorDefaults,
    keys: KeySources | None = None,
) -> dict[str, Any]:
    """The executor Deployment. ``keys`` (a strategy with Vaults, :func:`key_sources`): the key holder
    mounts a keys directory instead of the one keypair file."""
    n = names(owner.name)
    template_labels = pod_labels(owner.name)
    container: dict[str, Any] = {
        "name": EXECUTOR_CONTAINER,
        # from the operator's settings: spec.executor.image is refused by the API server and a value
        # stored before that rule is ignored here
        "image": defaults.image,
        "imagePullPolicy": defaults.image_pull_policy,
        "command": ["xorj", "executor"],
        "envFrom": [{"configMapRef": {"name": n["configmap"]}}],
        "env": [
            {
                "name": executor_variable("ledger_dsn"),
                "valueFrom": {
                    "secretKeyRef": {
                        "name": defaults.ledger_secret_name,
                        "key": defaults.ledger_secret_key,
                    }
                },
            },
            {"name": executor_variable("executor_id"), "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            *api_key_environment(spec),
        ],
        "ports": [{"name": "metrics", "containerPort": defaults.metrics_port, "protocol": "TCP"}],
        "volumeMounts": [
            # with the signer sidecar the executor never mounts the key: it only reaches the socket
            {"name": "signer-socket", "mountPath": SIGNER_SOCKET_DIR} if defaults.signer_sidecar else
            {"name": "vault", "mountPath": VAULT_MOUNT_DIR, "readOnly": True},
            {"name": "ledger-ca", "mountPath": LEDGER_CA_MOUNT_DIR, "readOnly": True}],
        "resources": {"requests": dict(spec.executor.requests), "limits": dict(spec.executor.limits)},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 5,
        },
        "securityContext": _container_security(),
    }
    pod_spec: dict[str, Any] = {
        # executors never call the Kubernetes API: a stolen executor gets no token to try
        "automountServiceAccountToken": False,
        "containers": [container, signer_container(spec, defaults, keys)] if defaults.signer_sidecar else [container],
        "securityContext": {"runAsUser": EXECUTOR_UID, "runAsGroup": EXECUTOR_UID, "fsGroup": EXECUTOR_UID},
        # executors hand back their leases on SIGTERM; give them time to finish in-flight sends
        "terminationGracePeriodSeconds": 60,
        "volumes": [
            keys.projected_volume() if keys is not None else
            {
                "name": "vault",
                "secret": {
                    "secretName": spec.vault.secret_name,
                    "defaultMode": 0o440,
                    "items": [{"key": spec.vault.secret_key, "path": spec.vault.secret_key}],
                },
            },
            {
                "name": "ledger-ca",
                "secret": {
                    "secretName": defaults.ledger_secret_name,
                    "defaultMode": 0o444,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    "optional": True,  # a ledger DSN without TLS verification has no CA to give
                },
            },
            *([{"name": "signer-socket", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
              if defaults.signer_sidecar else []),
        ],
    }
    if defaults.service_account:
        pod_spec["serviceAccountName"] = defaults.service_account
    if defaults.node_selector:
        pod_spec["nodeSelector"] = dict(defaults.node_selector)
    if defaults.tolerations:
        pod_spec["tolerations"] = [json.loads(t) for t in defaults.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(n["deployment"], namespace, owner),
        "spec": {
            "replicas": desired_replicas(spec),
            "selector": {"matchLabels": selector_labels(owner.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": template_labels,
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(spec, defaults)},
                },
                "spec": pod_spec,
            },
        },
    }


def service(owner: Owner, namespace: str, defaults: ExecutorDefaults) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(names(owner.name)["service"], namespace, owner),
        "spec": {
            "selector": selector_labels(owner.name),
            "ports": [
                {"name": "metrics", "port": defaults.metrics_port, "targetPort": "metrics"}
            ],
        },
    }


def pod_disruption_budget(owner: Owner, namespace: str) -> dict[str, Any]:
    # maxUnavailable rather than minAvailable: a paused strategy (0 replicas) must not block drains
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(names(owner.name)["pdb"], namespace, owner),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(owner.name)}},
    }


def children(
    owner: Owner, namespace: str, spec: TradingStrategySpec, defaults: ExecutorDefaults,
    keys: KeySources | None = None,
) -> list[dict[str, Any]]:
    """Everything a strategy owns, in apply order (the ConfigMap before the pods that read it)."""
    return [
        config_map(owner, namespace, spec, defaults, keys),
        service(owner, namespace, defaults),
        pod_disruption_budget(owner, namespace),
        deployment(owner, namespace, spec, defaults, keys),
    ]
