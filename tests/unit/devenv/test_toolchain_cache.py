"""The cache is keyed by the pins: built parts are reused, and only a changed pin rebuilds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from xorj.devenv.toolchain import builder
from xorj.devenv.toolchain.builder import PACKAGE_DIR, Toolchain


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    """A copy of the toolchain's package data that a test may re-pin."""
    target = tmp_path / "package"
    target.mkdir()
    shutil.copy(PACKAGE_DIR / "pins.json", target / "pins.json")
    for wrapper in ("k8s", "etcd"):
        shutil.copytree(PACKAGE_DIR / wrapper, target / wrapper)
    return target


def _repin(package_dir: Path, **changes: str) -> None:
    pins = json.loads((package_dir / "pins.json").read_text())
    pins.update(changes)
    (package_dir / "pins.json").write_text(json.dumps(pins))


def _fake_parts(chain: Toolchain) -> None:
    """Stand-in binaries in parts/, as an earlier build would have left them."""
    for component in chain.components:
        part = chain.part_dir(component)
        part.mkdir(parents=True, exist_ok=True)
        for name in component.binaries:
            (part / name).write_text(f"#!/bin/sh\necho {name}\n")
            (part / name).chmod(0o755)


@pytest.fixture
def no_go(monkeypatch):
    def refuse() -> str:
        raise AssertionError("go must not run when every part is cached")

    monkeypatch.setattr(builder, "_find_go", refuse)


def test_digest_is_stable_for_the_same_pins(package_dir, tmp_path):
    assert Toolchain(tmp_path / "c", package_dir).digest == Toolchain(tmp_path / "c", package_dir).digest


def test_the_cache_lives_under_xorj_cache_dir(package_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XORJ_CACHE_DIR", str(tmp_path / "elsewhere"))

    chain = Toolchain(package_dir=package_dir)

    assert chain.bin_dir == tmp_path / "elsewhere" / "toolchain" / chain.digest / "bin"


def test_an_empty_cache_is_incomplete_and_misses_every_component(package_dir, tmp_path):
    chain = Toolchain(tmp_path / "cache", package_dir)

    assert not chain.is_complete()
    assert [c.name for c in chain.missing_components()] == ["kubernetes", "etcd", "kwok", "helm",
                                                            "prometheus", "alertmanager", "coredns"]
    with pytest.raises(Exception, match="xorj dev toolchain build"):
        chain.require()


def test_build_assembles_cached_parts_without_compiling(package_dir, tmp_path, no_go):
    chain = Toolchain(tmp_path / "cache", package_dir)
    _fake_parts(chain)

    bin_dir = chain.build()

    assert chain.is_complete()
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(chain.binary_names)
    manifest = json.loads((chain.directory / "manifest.json").read_text())
    assert manifest["pins"] == chain.pins.as_dict() and manifest["build_seconds"] == {}


def test_changing_one_pin_rebuilds_only_that_component(package_dir, tmp_path):
    before = Toolchain(tmp_path / "cache", package_dir)
    _fake_parts(before)

    _repin(package_dir, helm="v3.22.1")
    after = Toolchain(tmp_path / "cache", package_dir)

    assert after.digest != before.digest
    assert [c.name for c in after.missing_components()] == ["helm"]


def test_a_changed_go_sum_rebuilds_its_component(package_dir, tmp_path):
    before = Toolchain(tmp_path / "cache", package_dir)
    _fake_parts(before)

    with open(package_dir / "etcd" / "go.sum", "a") as go_sum:
        go_sum.write("example.com/m v1.0.0 h1:AAAA=\n")
    after = Toolchain(tmp_path / "cache", package_dir)

    assert [c.name for c in after.missing_components()] == ["etcd"]


def test_a_deleted_binary_makes_the_toolchain_incomplete(package_dir, tmp_path, no_go):
    chain = Toolchain(tmp_path / "cache", package_dir)
    _fake_parts(chain)
    chain.build()

    (chain.bin_dir / "helm").unlink()

    assert not chain.is_complete()
    chain.build()  # parts/ still has it: relinked, nothing compiled
    assert chain.is_complete()


def test_unknown_binary_is_refused(package_dir, tmp_path):
    with pytest.raises(KeyError, match="'docker' is not part of the toolchain"):
        Toolchain(tmp_path / "cache", package_dir).path("docker")


def test_prune_keeps_only_what_the_current_pins_use(package_dir, tmp_path, no_go):
    old = Toolchain(tmp_path / "cache", package_dir)
    _fake_parts(old)
    old.build()
    _repin(package_dir, kwok="v0.8.1")
    new = Toolchain(tmp_path / "cache", package_dir)
    _fake_parts(new)  # as if kwok v0.8.1 had been compiled
    new.build()

    removed = new.prune()

    assert sorted(p.name for p in removed) == sorted([old.directory.name, old.part_dir(old.components[2]).name])
    assert new.is_complete()
    assert not old.directory.exists()
