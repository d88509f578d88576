"""The lock files the image installs from: complete, exact and hashed.

`requirements.lock` must name every runtime dependency of pyproject.toml (and what their requested
extras pull in) at a version the specifier allows, pin each entry with `==` and carry a sha256 for
it; the image's `pip install --require-hashes --no-deps` then installs exactly these files and
nothing else. `requirements-build.lock` does the same for the build backend. Both are regenerated
with scripts/lock-requirements.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME_LOCK = REPO / "requirements.lock"
BUILD_LOCK = REPO / "requirements-build.lock"
LOCK_SCRIPT = REPO / "scripts" / "lock-requirements"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: Version
    hashes: tuple[str, ...]


def parse_lock(path: Path) -> dict[str, LockedPackage]:
    """pip's requirements-file syntax as pip-compile writes it: continuation lines joined, comments
    dropped. Anything but `name==version --hash=...` (an option, a URL, an editable) is refused."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending or line:
            logical.append((pending + line).strip())
        pending = ""
    packages: dict[str, LockedPackage] = {}
    for entry in logical:
        spec, *options = entry.split()
        assert not spec.startswith("-"), f"{path.name}: an option line {entry!r} (index, link or editable)"
        requirement = Requirement(spec)
        assert requirement.url is None, f"{path.name}: {spec} installs from a URL"
        (pin,) = requirement.specifier  # exactly one clause
        assert pin.operator == "==" and "*" not in pin.version, f"{path.name}: {spec} is not an exact pin"
        assert options and all(HASH.match(o) for o in options), f"{path.name}: {spec} lacks sha256 hashes"
        name = canonicalize_name(requirement.name)
        assert name not in packages, f"{path.name}: {name} is listed twice"
        packages[name] = LockedPackage(name, Version(pin.version), tuple(options))
    return packages


@pytest.fixture(scope="module")
def runtime_lock() -> dict[str, LockedPackage]:
    return parse_lock(RUNTIME_LOCK)


def test_every_entry_is_pinned_and_hashed(runtime_lock) -> None:
    assert len(runtime_lock) >= len(PYPROJECT["project"]["dependencies"])
    assert parse_lock(BUILD_LOCK)


def test_lock_covers_every_runtime_dependency_at_an_allowed_version(runtime_lock) -> None:
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        locked = runtime_lock.get(canonicalize_name(requirement.name))
        assert locked, f"requirements.lock lacks {requirement.name} (pyproject.toml); run scripts/lock-requirements"
        assert requirement.specifier.contains(locked.version, prereleases=True), (
            f"requirements.lock pins {locked.name}=={locked.version}, outside pyproject.toml's {spec!r}")


def test_lock_covers_what_requested_extras_pull_in(runtime_lock) -> None:
    """`psycopg[binary]` is only safe to install with --no-deps if psycopg-binary is locked too."""
    requested = [Requirement(s) for s in PYPROJECT["project"]["dependencies"] if Requirement(s).extras]
    assert requested, "pyproject.toml asks for extras (psycopg[binary]); this test reads their requirements"
    for requirement in requested:
        for extra in requirement.extras:
            pulled = [Requirement(r) for r in importlib.metadata.requires(requirement.name) or []]
            wanted = [r for r in pulled
                      if r.marker is not None and "extra" in str(r.marker)
                      and r.marker.evaluate({"extra": extra, "implementation_name": "cpython"})]
            assert wanted, f"{requirement.name}[{extra}] pulls in nothing?"
            for dependency in wanted:
                assert canonicalize_name(dependency.name) in runtime_lock, (
                    f"requirements.lock lacks {dependency.name}, pulled in by {requirement.name}[{extra}]")


def test_lock_holds_no_test_or_chaos_extras(runtime_lock) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    only_for_tests = {canonicalize_name(Requirement(s).name) for group in extras.values() for s in group}
    only_for_tests -= {canonicalize_name(Requirement(s).name) for s in PYPROJECT["project"]["dependencies"]}
    only_for_tests.discard("xorj-operator")
    assert not only_for_tests & set(runtime_lock), "test/chaos extras do not belong in the image"


def test_lock_holds_nothing_only_the_development_tools_need(runtime_lock) -> None:
    """devtools/pyproject.toml's own dependencies (the chaos suite's, the local Postgres's TLS) stay out
    of the image unless the product asks for them too."""
    devtools = tomllib.loads((REPO / "devtools" / "pyproject.toml").read_text())["project"]["dependencies"]
    only_for_devtools = {canonicalize_name(Requirement(s).name) for s in devtools}
    only_for_devtools -= {canonicalize_name(Requirement(s).name) for s in PYPROJECT["project"]["dependencies"]}
    only_for_devtools.discard("xorj-operator")
    assert {"chaostoolkit", "cryptography"} <= only_for_devtools
    assert not only_for_devtools & set(runtime_lock), "development tools' dependencies do not belong in the image"


def test_build_lock_covers_the_build_backend() -> None:
    locked = parse_lock(BUILD_LOCK)
    for spec in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(spec)
        pin = locked.get(canonicalize_name(requirement.name))
        assert pin and requirement.specifier.contains(pin.version), f"requirements-build.lock: {spec}"


def test_locks_are_made_by_the_documented_command() -> None:
    """The refresh command is written down where a maintainer looks, and the locks name it."""
    assert LOCK_SCRIPT.is_file() and LOCK_SCRIPT.stat().st_mode & 0o111
    script = LOCK_SCRIPT.read_text()
    assert "--generate-hashes" in script and "--no-emit-index-url" in script
    assert "scripts/lock-requirements" in (REPO / "README.md").read_text()
    for lock in (RUNTIME_LOCK, BUILD_LOCK):
        assert "#    scripts/lock-requirements" in lock.read_text(), f"{lock.name} names another generator"
