"""Builds the toolchain into a cache outside the work tree, with Go, from source only.

Layout under ``${XORJ_CACHE_DIR:-~/.cache/xorj}/toolchain``::

    parts/<component>-<key>/     binaries of one component, keyed by that component's inputs
    <digest>/bin/                every binary of the current pins (hard links into parts/)
    <digest>/manifest.json       written last: its presence means the toolchain is complete

A pin change gives a new digest; only components whose key changed are compiled again, the others
are linked from parts/. Nothing is downloaded except Go modules through the module proxy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xorj.devenv.toolchain import gomod
from xorj.devenv.toolchain.pins import KUBERNETES_MODULE, Pins, parse_pins
from xorj.devenv.toolchain.recipe import (
    BUILD_FLAGS,
    Component,
    components,
    toolchain_digest,
)
from xorj.errors import EnvironmentSetupError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
Progress = Callable[[str], None]
PROGRESS_INTERVAL_SECONDS = 15.0


def _silent(_: str) -> None:
    return None


def cache_root() -> Path:
    """``$XORJ_CACHE_DIR`` or ``~/.cache/xorj``: shared by the toolchain and the local services."""
    configured = os.environ.get("XORJ_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "xorj"


@dataclass(frozen=True)
class BinaryStatus:
    name: str
    path: Path
    present: bool


@dataclass(frozen=True)
class ToolchainStatus:
    digest: str
    directory: Path
    complete: bool
    pins: dict[str, str]
    binaries: tuple[BinaryStatus, ...]
    manifest: dict | None


class Toolchain:
    """The pinned toolchain: where its binaries live and how to build what is missing."""

    def __init__(self, root: Path | None = None, package_dir: Path = PACKAGE_DIR) -> None:
        self.package_dir = package_dir
        self.root = (root or cache_root()) / "toolchain"
        self.pins: Pins = parse_pins((package_dir / "pins.json").read_text())
        self.components: tuple[Component, ...] = components(self.pins)
        self._keys = {c.name: c.key(self._wrapper_files(c)) for c in self.components}
        self.digest = toolchain_digest(self._keys)
        self.directory = self.root / self.digest
        self.bin_dir = self.directory / "bin"

    # -- where things are -------------------------------------------------------------------

    def _wrapper_files(self, component: Component) -> dict[str, bytes]:
        if component.wrapper_dir is None:
            return {}
        directory = self.package_dir / component.wrapper_dir
        return {name: (directory / name).read_bytes() for name in ("go.mod", "go.sum")}

    def part_dir(self, component: Component) -> Path:
        return self.root / "parts" / f"{component.name}-{self._keys[component.name][:16]}"

    @property
    def binary_names(self) -> tuple[str, ...]:
        return tuple(name for c in self.components for name in c.binaries)

    def path(self, binary: str) -> Path:
        if binary not in self.binary_names:
            raise KeyError(f"{binary!r} is not part of the toolchain ({', '.join(self.binary_names)})")
        return self.bin_dir / binary

    def is_complete(self) -> bool:
        return (self.directory / "manifest.json").is_file() and all(
            os.access(self.bin_dir / name, os.X_OK) for name in self.binary_names
        )

    def require(self) -> Path:
        """The bin directory, or a clear error saying how to build it."""
        if not self.is_complete():
            raise EnvironmentSetupError(
                f"the Kubernetes toolchain for these pins ({self.digest}) is not built: "
                "run `xorj dev toolchain build`"
            )
        return self.bin_dir

    def status(self) -> ToolchainStatus:
        manifest_path = self.directory / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
        binaries = tuple(
            BinaryStatus(name, self.bin_dir / name, os.access(self.bin_dir / name, os.X_OK))
            for name in self.binary_names
        )
        return ToolchainStatus(
            digest=self.digest,
            directory=self.directory,
            complete=self.is_complete(),
            pins=self.pins.as_dict(),
            binaries=binaries,
            manifest=manifest,
        )

    def prune(self) -> list[Path]:
        """Remove toolchain directories and parts of other pins (a running cluster started from
        them keeps running; only restarting it needs its binaries)."""
        keep = {self.directory, *(self.part_dir(c) for c in self.components)}
        removed: list[Path] = []
        with _exclusive(self.root / ".lock", _silent):
            candidates = [*self.root.glob("*/manifest.json"), *(self.root / "parts").glob("*/")]
            for path in candidates:
                directory = path.parent if path.name == "manifest.json" else path
                if directory not in keep and directory.is_dir():
                    shutil.rmtree(directory, ignore_errors=True)
                    removed.append(directory)
        return removed

    # -- building -----------------------------------------------------------------------------

    def missing_components(self) -> list[Component]:
        """Components whose binaries for the current inputs are not in the cache yet."""
        return [c for c in self.components if not _has_binaries(self.part_dir(c), c.binaries)]

    def build(self, progress: Progress = _silent, force: bool = False) -> Path:
        """Build whatever is missing; quiet and quick when everything is already there."""
        if not force and self.is_complete():
            return self.bin_dir
        self.root.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.root / ".lock", progress):
            if not force and self.is_complete():  # another process finished it while we waited
                return self.bin_dir
            todo = list(self.components) if force else self.missing_components()
            go_version: str | None = None
            durations: dict[str, float] = {}
            go = _find_go() if todo else ""
            if todo:
                go_version = self._check_go_version(go)
            for component in todo:
                started = time.monotonic()
                progress(f"building {component.name} ({', '.join(component.binaries)})")
                self._build_component(go, component, self.part_dir(component), progress)
                durations[component.name] = round(time.monotonic() - started, 1)
                progress(f"built {component.name} in {_clock(durations[component.name])}")
            self._assemble(durations, go_version)
        return self.bin_dir

    def _check_go_version(self, go: str) -> str:
        reported = _run([go, "env", "GOVERSION"]).strip()
        have = gomod.parse_go_version(reported)
        for component in self.components:
            if component.wrapper_dir is None:
                continue
            wanted = gomod.parse_go_mod((self.package_dir / component.wrapper_dir / "go.mod").read_text()).go
            if have < gomod.parse_go_version(wanted):
                raise EnvironmentSetupError(
                    f"Go {'.'.join(map(str, have))} is too old for {component.name}: its wrapper "
                    f"module needs go {wanted} (install a newer Go from the Go project's releases)"
                )
        return reported

    def _check_wrappers(self, go: str, component: Component) -> None:
        """Refuse to build from a wrapper that no longer matches its pins and upstream's go.mod."""
        wrapper_text = (self.package_dir / component.wrapper_dir / "go.mod").read_text()  # type: ignore[operator]
        if component.name == "kubernetes":
            upstream = upstream_go_mod(go, KUBERNETES_MODULE, str(self.pins.kubernetes))
            problems = gomod.kubernetes_wrapper_problems(wrapper_text, upstream, self.pins)
        else:
            problems = gomod.etcd_wrapper_problems(wrapper_text, self.pins)
        if problems:
            raise EnvironmentSetupError(
                f"toolchain/{component.wrapper_dir}/go.mod is out of date ({'; '.join(problems)}): "
                "run `xorj dev toolchain pin` to regenerate it"
            )

    def _build_component(self, go: str, component: Component, part: Path, progress: Progress) -> None:
        staging = part.with_name(f".tmp-{part.name}-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        env = _go_env()
        if component.how == "wrapper":
            assert component.wrapper_dir is not None
            self._check_wrappers(go, component)
            cwd = self.package_dir / component.wrapper_dir
            output = staging / component.output_name if component.output_name else staging
            command = [go, "build", "-v", *BUILD_FLAGS, "-ldflags", component.ldflags,
                       "-o", f"{output}{'' if component.output_name else os.sep}", *component.packages]
            total = _count_packages(go, cwd, env, component.packages)
        elif component.how == "source":
            cwd = None  # set below: a copy of the module's source
            command = [go, "build", "-v", *BUILD_FLAGS, "-ldflags", component.ldflags,
                       "-o", f"{staging}{os.sep}", *component.packages]
            total = None
        else:
            cwd = staging
            env["GOBIN"] = str(staging)
            command = [go, "install", "-v", *BUILD_FLAGS, "-ldflags", component.ldflags, *component.packages]
            total = None
        if component.tags:
            command[3:3] = ["-tags", ",".join(component.tags)]
        with tempfile.TemporaryDirectory(prefix=f"xorj-source-{component.name}-") as scratch:
            if component.how == "source":
                cwd = _module_source_copy(go, component, Path(scratch) / "src")
            assert cwd is not None
            _run_with_progress(command, cwd, env, component.name, total, progress)
        missing = [name for name in component.binaries if not (staging / name).is_file()]
        if missing:
            raise EnvironmentSetupError(f"{component.name}: go finished but produced no {', '.join(missing)}")
        shutil.rmtree(part, ignore_errors=True)
        staging.rename(part)

    def _assemble(self, durations: dict[str, float], go_version: str | None) -> None:
        staging = self.root / f".tmp-{self.digest}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "bin").mkdir(parents=True)
        for component in self.components:
            for name in component.binaries:
                _link_or_copy(self.part_dir(component) / name, staging / "bin" / name)
        manifest = {
            "digest": self.digest,
            "pins": self.pins.as_dict(),
            "components": {c.name: self.part_dir(c).name for c in self.components},
            "go": go_version,  # None: every component came from parts/ built earlier
            "build_seconds": durations,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(self.directory, ignore_errors=True)
        staging.rename(self.directory)
        log.info("toolchain ready", extra={"digest": self.digest, "bin_dir": str(self.bin_dir)})


# -- helpers ----------------------------------------------------------------------------------


def upstream_go_mod(go: str, module: str, version: str) -> str:
    """The go.mod of ``module@version`` through the module proxy (cached by Go afterwards)."""
    raw = _run([go, "mod", "download", "-json", f"{module}@{version}"], env=_go_env(), cwd=Path("/"))
    info = json.loads(raw)
    if info.get("Error"):
        raise EnvironmentSetupError(f"cannot fetch {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def _module_source_copy(go: str, component: Component, target: Path) -> Path:
    """A writable copy of the component's module source with its added files: the module as Go
    downloaded and verified it (go.sum pins every dependency), plus what its release build makes
    outside Go."""
    assert component.source_module is not None
    raw = _run([go, "mod", "download", "-json", component.source_module], env=_go_env(), cwd=Path("/"))
    info = json.loads(raw)
    if info.get("Error") or not info.get("Dir"):
        raise EnvironmentSetupError(f"cannot fetch {component.source_module}: {info.get('Error')}")
    # copyfile, not copy2: the module cache is read-only and its modes must not follow
    shutil.copytree(info["Dir"], target, copy_function=shutil.copyfile)
    for directory, _, _ in os.walk(target):
        os.chmod(directory, 0o755)
    for relative, content in component.added_files:
        path = target / relative
        if path.exists():
            raise EnvironmentSetupError(f"{component.name}: {relative} exists upstream; the recipe must not replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return target


def _find_go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not found:
        raise EnvironmentSetupError("the `go` command was not found on PATH: the toolchain is built from source with Go")
    return found


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"  # static binaries, no C toolchain needed
    env["GOTOOLCHAIN"] = "local"  # never fetch a prebuilt Go toolchain behind the user's back
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _run(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if result.returncode != 0:
        raise EnvironmentSetupError(f"`{' '.join(command[:4])} ...` failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _count_packages(go: str, cwd: Path, env: dict[str, str], packages: tuple[str, ...]) -> int | None:
    """How many packages the build compiles at most (the denominator of the progress line)."""
    result = subprocess.run(
        [go, "list", "-deps", *packages], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    return len(result.stdout.split()) if result.returncode == 0 else None


_PACKAGE_LINE = re.compile(r"^[A-Za-z0-9_.\-/~+]+$")


def _run_with_progress(
    command: list[str], cwd: Path, env: dict[str, str], label: str, total: int | None, progress: Progress
) -> None:
    """Run go with -v, turning its one-line-per-package output into a periodic progress line."""
    started = time.monotonic()
    last_report = started
    compiled = 0
    downloads = 0
    tail: list[str] = []
    nice = shutil.which("nice")
    if nice:  # a long build must not starve the tests sharing the machine
        command = [nice, "-n", "10", *command]
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line.startswith("go: downloading"):
                downloads += 1
            elif _PACKAGE_LINE.match(line):
                compiled += 1
            else:
                tail = (tail + [line])[-40:]
            now = time.monotonic()
            if now - last_report >= PROGRESS_INTERVAL_SECONDS:
                last_report = now
                of_total = f"/{total}" if total else ""
                fetched = f", {downloads} modules downloaded" if downloads else ""
                progress(f"{label}: {compiled}{of_total} packages compiled{fetched} ({_clock(now - started)})")
        returncode = process.wait()
    if returncode != 0:
        detail = "\n".join(tail) or "(no output)"
        raise EnvironmentSetupError(f"building {label} failed (exit {returncode}):\n{detail}")


def _has_binaries(directory: Path, names: tuple[str, ...]) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in names)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@contextlib.contextmanager
def _exclusive(lock_path: Path, progress: Progress) -> Iterator[None]:
    """One builder at a time per cache: a second caller waits, then finds the work done."""
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another toolchain build is running; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
