"""What each toolchain component is built from and how: the inputs whose digest names the cache.

Pure: the caller hands in the wrapper files' bytes. A component's key changes exactly when one of
its inputs does (its pin, its wrapper go.mod/go.sum, its linker flags or package list, or the
RECIPE_REVISION below), and only then is it rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from xorj.devenv.toolchain.gomod import (
    alertmanager_ldflags,
    coredns_ldflags,
    helm_ldflags,
    kubernetes_ldflags,
    kubernetes_packages,
    kwok_ldflags,
    prometheus_ldflags,
)
from xorj.devenv.toolchain.pins import (
    ALERTMANAGER_MODULE,
    COREDNS_MODULE,
    ETCD_MODULE,
    HELM_MODULE,
    KUBERNETES_COMMANDS,
    KWOK_MODULE,
    PROMETHEUS_MODULE,
    Pins,
)

# Bump when the way binaries are built changes in a way the inputs below do not capture.
RECIPE_REVISION = 1

BUILD_FLAGS: tuple[str, ...] = ("-trimpath",)

# Alertmanager's ui package embeds ui/app/dist, which its release build makes with npm and its Go
# module does not contain, so `go install` alone fails ("pattern app/dist: no matching files").
# The HTTP API is all the local environment uses: these pages stand in for the two web UIs.
_NO_UI_PAGE = (
    "This Alertmanager was built by the xorj toolchain without its web UI; use the HTTP API "
    "(/api/v2/alerts, /api/v2/status) or amtool.\n"
)
ALERTMANAGER_UI_PLACEHOLDER: tuple[tuple[str, str], ...] = (
    ("ui/app/dist/elm/README.txt", _NO_UI_PAGE),
    ("ui/app/dist/mantine/README.txt", _NO_UI_PAGE),
)


@dataclass(frozen=True)
class Component:
    """One ``go build`` or ``go install`` invocation and the binaries it produces."""

    name: str
    how: str  # "wrapper": go build inside a wrapper module dir; "install": go install pkg@version;
    # "source": go build inside a copy of the module's source (see source_module)
    wrapper_dir: str | None  # package-data directory of the wrapper module ("k8s", "etcd")
    packages: tuple[str, ...]  # build targets (with @version for "install")
    binaries: tuple[str, ...]
    ldflags: str
    output_name: str | None = None  # for a single main package whose path does not end in its name
    inputs: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()  # go build tags
    # how == "source": `go build` of ``packages`` (relative, "./cmd/x") inside a copy of this
    # module's source ("module@version", fetched and checksum-verified by `go mod download`), with
    # ``added_files`` (path relative to the module root, content) written into the copy: for an
    # upstream package that embeds build output its module lacks. (Go refuses `-overlay` of files
    # under GOMODCACHE, and the module cache itself stays read-only and untouched.)
    source_module: str | None = None
    added_files: tuple[tuple[str, str], ...] = ()

    def key(self, wrapper_files: dict[str, bytes]) -> str:
        """Digest of everything that decides this component's binaries."""
        payload = {
            "revision": RECIPE_REVISION,
            "name": self.name,
            "how": self.how,
            "packages": list(self.packages),
            "binaries": list(self.binaries),
            "ldflags": self.ldflags,
            "flags": list(BUILD_FLAGS),
            "inputs": [list(item) for item in self.inputs],
            "files": {
                name: hashlib.sha256(content).hexdigest() for name, content in sorted(wrapper_files.items())
            },
        }
        # Only when used, so that adding these fields left the keys (and caches) of the others alone.
        if self.tags:
            payload["tags"] = list(self.tags)
        if self.source_module:
            payload["source_module"] = self.source_module
            payload["added_files"] = [[path, hashlib.sha256(text.encode()).hexdigest()]
                                      for path, text in self.added_files]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def components(pins: Pins) -> tuple[Component, ...]:
    return (
        Component(
            name="kubernetes",
            how="wrapper",
            wrapper_dir="k8s",
            packages=tuple(kubernetes_packages()),
            binaries=KUBERNETES_COMMANDS,
            ldflags=kubernetes_ldflags(pins),
            inputs=(("kubernetes", str(pins.kubernetes)),),
        ),
        Component(
            name="etcd",
            how="wrapper",
            wrapper_dir="etcd",
            packages=(ETCD_MODULE,),
            binaries=("etcd",),
            ldflags="-s -w",
            output_name="etcd",
            inputs=(("etcd", str(pins.etcd)),),
        ),
        Component(
            name="kwok",
            how="install",
            wrapper_dir=None,
            packages=(f"{KWOK_MODULE}/cmd/kwok@{pins.kwok}", f"{KWOK_MODULE}/cmd/kwokctl@{pins.kwok}"),
            binaries=("kwok", "kwokctl"),
            ldflags=kwok_ldflags(pins),
            inputs=(("kwok", str(pins.kwok)),),
        ),
        Component(
            name="helm",
            how="install",
            wrapper_dir=None,
            packages=(f"{HELM_MODULE}/cmd/helm@{pins.helm}",),
            binaries=("helm",),
            ldflags=helm_ldflags(pins),
            inputs=(("helm", str(pins.helm)),),
        ),
        Component(
            name="prometheus",
            how="install",
            wrapper_dir=None,
            packages=(f"{PROMETHEUS_MODULE}/cmd/prometheus@{pins.prometheus}",
                      f"{PROMETHEUS_MODULE}/cmd/promtool@{pins.prometheus}"),
            binaries=("prometheus", "promtool"),
            ldflags=prometheus_ldflags(pins),
            inputs=(("prometheus", str(pins.prometheus)),),
            # Without `builtinassets` the web UI is not embedded (upstream's README: the HTTP API
            # is all that is used here). Only the Kubernetes service discovery is kept (upstream's
            # remove_all_sd/enable_<name>_sd tags; file, static and http SD always stay): the cloud
            # SDKs are most of the compile time and the local environment has no cloud.
            tags=("remove_all_sd", "enable_kubernetes_sd"),
        ),
        Component(
            name="alertmanager",
            how="source",
            wrapper_dir=None,
            packages=("./cmd/alertmanager", "./cmd/amtool"),
            binaries=("alertmanager", "amtool"),
            ldflags=alertmanager_ldflags(pins),
            inputs=(("alertmanager", str(pins.alertmanager)),),
            source_module=f"{ALERTMANAGER_MODULE}@{pins.alertmanager}",
            added_files=ALERTMANAGER_UI_PLACEHOLDER,
        ),
        Component(
            name="coredns",
            how="install",
            wrapper_dir=None,
            # The module's root is CoreDNS's main package, with upstream's default plugin set
            # (kubernetes, forward, cache, ...: the set kind's image runs).
            packages=(f"{COREDNS_MODULE}@{pins.coredns}",),
            binaries=("coredns",),
            ldflags=coredns_ldflags(pins),
            inputs=(("coredns", str(pins.coredns)),),
        ),
    )


def toolchain_digest(component_keys: dict[str, str]) -> str:
    """Names the toolchain directory: changes when any component's key does."""
    text = json.dumps(dict(sorted(component_keys.items())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
