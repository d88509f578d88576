"""Changing a pin: rewrite pins.json and regenerate the wrapper modules from upstream's go.mod.

The replace list of the Kubernetes wrapper is derived from k8s.io/kubernetes's own go.mod at the
pinned release (every module it maps to ./staging/...), so it is complete by construction; ``go mod
tidy`` then records the exact dependency versions in go.mod and go.sum, which the cache key covers.
"""

from __future__ import annotations

import json
from pathlib import Path

from xorj.devenv.toolchain import gomod
from xorj.devenv.toolchain.builder import (
    PACKAGE_DIR,
    Progress,
    _find_go,
    _go_env,
    _run,
    _silent,
    upstream_go_mod,
)
from xorj.devenv.toolchain.pins import (
    ETCD_MODULE,
    KUBERNETES_MODULE,
    Pins,
    Version,
    parse_pins,
)


def repin(changes: dict[str, str], package_dir: Path = PACKAGE_DIR, progress: Progress = _silent) -> Pins:
    """Apply ``{"kubernetes": "v1.34.13", ...}`` (may be empty: regenerate at the current pins)."""
    current = parse_pins((package_dir / "pins.json").read_text()).as_dict()
    unknown = sorted(set(changes) - set(current))
    if unknown:
        raise ValueError(f"unknown pin(s) {', '.join(unknown)}; known: {', '.join(current)}")
    for name, value in changes.items():
        Version.parse(value, field=name)
    pins = parse_pins(json.dumps({**current, **changes}))
    go = _find_go()
    progress(f"generating k8s/go.mod for {KUBERNETES_MODULE} {pins.kubernetes}")
    k8s_upstream = upstream_go_mod(go, KUBERNETES_MODULE, str(pins.kubernetes))
    _write_and_tidy(go, package_dir / "k8s", gomod.render_kubernetes_wrapper(k8s_upstream, pins), progress)
    progress(f"generating etcd/go.mod for {ETCD_MODULE} {pins.etcd}")
    etcd_upstream = upstream_go_mod(go, ETCD_MODULE, str(pins.etcd))
    _write_and_tidy(go, package_dir / "etcd", gomod.render_etcd_wrapper(etcd_upstream, pins), progress)
    (package_dir / "pins.json").write_text(pins.to_json())
    return pins


def _write_and_tidy(go: str, directory: Path, go_mod: str, progress: Progress) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "go.mod").write_text(go_mod)
    (directory / "go.sum").unlink(missing_ok=True)
    progress(f"go mod tidy in {directory.name}/")
    _run([go, "mod", "tidy"], env=_go_env(), cwd=directory)
