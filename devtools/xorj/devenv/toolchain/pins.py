"""The pinned versions of the local Kubernetes toolchain, and what is built from each pin.

Pure: no I/O beyond parsing text handed in. ``pins.json`` next to this module is the one place a
version is changed (``xorj dev toolchain pin`` rewrites it and regenerates the wrapper go.mod files).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from xorj.errors import InvalidInputError

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
KWOK_MODULE = "sigs.k8s.io/kwok"
HELM_MODULE = "helm.sh/helm/v3"
PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
ALERTMANAGER_MODULE = "github.com/prometheus/alertmanager"
COREDNS_MODULE = "github.com/coredns/coredns"

# kubelet and kube-proxy ride along: a real node needs them later and the shared packages are
# already compiled for the control plane, so they cost little more than their link step.
KUBERNETES_COMMANDS: tuple[str, ...] = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
)

_SEMVER = re.compile(r"^v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)$")


@dataclass(frozen=True)
class Version:
    """A release version ``vMAJOR.MINOR.PATCH`` (pre-releases are not pinned here)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str, *, field: str) -> Version:
        match = _SEMVER.match(text)
        if not match:
            raise InvalidInputError(
                f"{field}: {text!r} is not a release version of the form vMAJOR.MINOR.PATCH"
            )
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"]))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Pins:
    """One version per upstream project the toolchain is built from."""

    kubernetes: Version
    etcd: Version
    kwok: Version
    helm: Version
    # Prometheus publishes release 3.NN.x as Go module version v0.3NN.x (see release_version).
    prometheus: Version
    alertmanager: Version
    coredns: Version  # the cluster DNS the real node runs (xorj.devenv.node.dns)

    def __post_init__(self) -> None:
        if self.kubernetes.major != 1:
            raise InvalidInputError(f"kubernetes: {self.kubernetes} must be a 1.x release")
        if self.etcd.major != 3:
            raise InvalidInputError(f"etcd: {self.etcd} must be a 3.x release")
        if self.helm.major != 3:
            raise InvalidInputError(f"helm: {self.helm} must be a 3.x release (helm.sh/helm/v3)")
        if self.prometheus.major != 0 or not 300 <= self.prometheus.minor <= 399:
            raise InvalidInputError(
                f"prometheus: {self.prometheus} must be the Go module version v0.3NN.x of a 3.NN.x release"
            )
        if self.alertmanager.major != 0:
            raise InvalidInputError(f"alertmanager: {self.alertmanager} must be a 0.x release")
        if self.coredns.major != 1:
            raise InvalidInputError(f"coredns: {self.coredns} must be a 1.x release ({COREDNS_MODULE})")

    @property
    def prometheus_release(self) -> str:
        """The release a Prometheus module version stands for: v0.316.0 is 3.16.0."""
        major, minor = divmod(self.prometheus.minor, 100)
        return f"{major}.{minor}.{self.prometheus.patch}"

    @property
    def staging_version(self) -> Version:
        """The version the Kubernetes staging modules (k8s.io/api, ...) are published at."""
        return Version(0, self.kubernetes.minor, self.kubernetes.patch)

    def as_dict(self) -> dict[str, str]:
        return {
            "kubernetes": str(self.kubernetes),
            "etcd": str(self.etcd),
            "kwok": str(self.kwok),
            "helm": str(self.helm),
            "prometheus": str(self.prometheus),
            "alertmanager": str(self.alertmanager),
            "coredns": str(self.coredns),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"


def parse_pins(text: str) -> Pins:
    """Parse ``pins.json``; a clear error names the missing or malformed field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"pins.json: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError("pins.json: must be an object of name -> version")
    expected = ("kubernetes", "etcd", "kwok", "helm", "prometheus", "alertmanager", "coredns")
    unknown = sorted(set(raw) - set(expected))
    if unknown:
        raise InvalidInputError(f"pins.json: unknown field(s) {', '.join(unknown)}")
    values: dict[str, Version] = {}
    for name in expected:
        if name not in raw:
            raise InvalidInputError(f"pins.json: field {name!r} is required")
        if not isinstance(raw[name], str):
            raise InvalidInputError(f"pins.json: field {name!r} must be a version string")
        values[name] = Version.parse(raw[name], field=name)
    return Pins(**values)
