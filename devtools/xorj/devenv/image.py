"""Container images without a registry: a Debian base made with debootstrap, the project's
Dockerfile built on it with buildah, the result pushed to an OCI archive and imported into the
node's containerd.

    from xorj.devenv.image import ImageBuilder
    result = ImageBuilder().build_project(progress=print)     # cached by content hash
    ImageBuilder().import_into(result.archive, containerd_socket)

Each base rootfs is cached by (suite, packages); the project image by the hash of the Dockerfile,
the lock files, pyproject.toml, README.md and every file under operator/. buildah keeps its storage under the
xorj cache, never in /var/lib/containers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xorj.devenv.repository import repository_root
from xorj.devenv.toolchain import cache_root
from xorj.errors import EnvironmentSetupError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]



@dataclass(frozen=True)
class DebianBase:
    """A debootstrapped Debian base image: its suite and the packages it carries."""

    suite: str
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates")

    @property
    def reference(self) -> str:
        return f"localhost/xorj-base:{self.suite}"


# The project image's base: the Python 3.11 the product is built and tested with.
PROJECT_BASE = DebianBase("bookworm")
# The HA ledger's base: trixie, for Postgres 17. Bookworm carries only Postgres 15, where a login with
# CREATEROLE (the operator's) can grant itself pg_execute_server_program: docs/security.md asks for 16
# or later, and the chart's own ledger must meet it.
LEDGER_BASE = DebianBase("trixie")
PROJECT_IMAGE = "localhost/xorj-operator"
# The HA ledger's image (chart: postgresql.ha.image) and its recipe; its tag names Patroni's version
# and Postgres's major version, as the recipe's ARGs.
PATRONI_IMAGE = "localhost/xorj-patroni:4.1.5-pg17"
PATRONI_RECIPE = "images/patroni/Containerfile"
SOURCES = ("Dockerfile", "requirements.lock", "requirements-build.lock", "pyproject.toml", "README.md")
SOURCE_DIRS = ("operator",)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A generous limit on importing an image archive into the node's containerd (a busy disk and CPU slow it).
IMPORT_SECONDS = 900.0


def _silent(_: str) -> None:
    return None


def project_root() -> Path:
    return repository_root()


def source_hash(root: Path) -> str:
    """Hash of everything the Dockerfile copies, plus the Dockerfile itself."""
    digest = hashlib.sha256()
    files = [root / name for name in SOURCES]
    for directory in SOURCE_DIRS:
        files.extend(sorted(p for p in (root / directory).rglob("*")
                            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")))
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (no host is written into the project)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not path.is_file() or path.suffix not in (".list", ".sources", ""):
            continue
        text = path.read_text()
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
    raise EnvironmentSetupError("no Debian mirror found in /etc/apt/sources.list(.d): debootstrap needs one")


@dataclass(frozen=True)
class BuiltImage:
    reference: str
    archive: Path
    cached: bool
    seconds: float


class ImageBuilder:
    def __init__(self, cache_dir: Path | None = None, root: Path | None = None) -> None:
        self.cache_dir = cache_dir or cache_root() / "image"
        self.root = root or project_root()

    # -- buildah -------------------------------------------------------------------------------

    def buildah(self, *args: str, timeout: float = 1800) -> str:
        command = ["buildah", "--root", str(self.cache_dir / "storage"),
                   "--runroot", str(self.cache_dir / "run"), "--storage-driver", "overlay", *args]
        if shutil.which("buildah") is None:
            raise EnvironmentSetupError("buildah is not installed (Debian package buildah)")
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise EnvironmentSetupError(f"buildah {' '.join(args[:2])} failed: {result.stderr.strip()[-3000:]}")
        return result.stdout.strip()

    def image_exists(self, reference: str) -> bool:
        try:
            self.buildah("inspect", "--type", "image", reference, timeout=60)
        except EnvironmentSetupError:
            return False
        return True

    def from_rootfs(self, rootfs: Path, reference: str, config: list[str]) -> None:
        """``buildah from scratch``, copy a folder in as the root filesystem, commit."""
        container = self.buildah("from", "scratch")
        try:
            self.buildah("copy", container, f"{rootfs}/", "/")
            if config:
                self.buildah("config", *config, container)
            self.buildah("commit", "--rm", container, reference)
        except BaseException:
            subprocess.run(["buildah", "--root", str(self.cache_dir / "storage"), "--runroot",
                            str(self.cache_dir / "run"), "rm", container], capture_output=True, check=False)
            raise

    def push_archive(self, reference: str, archive: Path) -> Path:
        """An OCI archive whose index names the image by its full reference (what ctr imports by)."""
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self.buildah("push", reference, f"oci-archive:{partial}:{reference}")
        partial.rename(archive)
        return archive

    # -- base image ------------------------------------------------------------------------

    def base_rootfs(self, base: DebianBase = PROJECT_BASE, progress: Progress = _silent) -> Path:
        key = hashlib.sha256(f"{base.suite}:{','.join(base.packages)}".encode()).hexdigest()[:12]
        rootfs = self.cache_dir / f"rootfs-{key}"
        if (rootfs / ".complete").exists():
            return rootfs
        shutil.rmtree(rootfs, ignore_errors=True)
        if shutil.which("debootstrap") is None:
            raise EnvironmentSetupError("debootstrap is not installed (Debian package debootstrap)")
        progress(f"debootstrap {base.suite} ({', '.join(base.packages)})")
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(base.packages)}", base.suite,
             str(rootfs), debian_mirror()],
            capture_output=True, text=True, timeout=1800, check=False,
        )
        if result.returncode != 0:
            raise EnvironmentSetupError(f"debootstrap failed: {(result.stderr or result.stdout).strip()[-2000:]}")
        # Trim what an image does not need: apt lists and caches, docs.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
            (rootfs / junk).mkdir(parents=True, exist_ok=True)
        (rootfs / ".complete").touch()
        return rootfs

    def build_base(self, base: DebianBase = PROJECT_BASE, progress: Progress = _silent) -> str:
        # The base trusts what this machine trusts: package registries may be reached through a
        # TLS-inspecting proxy whose CA only the host's bundle carries (pip in the build needs it).
        host_bundle = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
        stamp = self.cache_dir / f"base-{base.suite}.stamp"
        wanted = hashlib.sha256(host_bundle + ",".join(base.packages).encode()).hexdigest()[:16]
        current = stamp.read_text().strip() if stamp.is_file() else ""
        if current != wanted or not self.image_exists(base.reference):
            rootfs = self.base_rootfs(base, progress)
            progress(f"committing {base.reference}")
            staged = self.cache_dir / f"base-stage-{base.suite}"
            # .complete is our marker, not part of the image.
            shutil.rmtree(staged, ignore_errors=True)
            subprocess.run(["cp", "-a", str(rootfs), str(staged)], check=True)
            (staged / ".complete").unlink(missing_ok=True)
            if host_bundle:
                (staged / "etc/ssl/certs/ca-certificates.crt").write_bytes(host_bundle)
            try:
                self.from_rootfs(staged, base.reference, ["--cmd", "/usr/bin/python3", "--env",
                                                      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
            finally:
                shutil.rmtree(staged, ignore_errors=True)
            stamp.write_text(wanted + "\n")
        return base.reference

    # -- the project image -----------------------------------------------------------------

    def build_project(self, progress: Progress = _silent, force: bool = False) -> BuiltImage:
        tag = source_hash(self.root)
        archive = self.cache_dir / "archives" / f"xorj-operator-{tag}.oci.tar"
        return self._build_recipe(f"{PROJECT_IMAGE}:{tag}", self.root / "Dockerfile", self.root, archive,
                                  PROJECT_BASE, progress, force)

    def build_patroni(self, progress: Progress = _silent, force: bool = False) -> BuiltImage:
        """The HA ledger's image (images/patroni/Containerfile: Debian's Postgres and Patroni) on its
        own base (LEDGER_BASE), tagged ``PATRONI_IMAGE`` (the chart's default postgresql.ha.image); cached by the
        recipe's hash."""
        recipe = self.root / PATRONI_RECIPE
        digest = hashlib.sha256(recipe.read_bytes()).hexdigest()[:16]
        archive = self.cache_dir / "archives" / f"xorj-patroni-{digest}.oci.tar"
        return self._build_recipe(PATRONI_IMAGE, recipe, recipe.parent, archive, LEDGER_BASE, progress, force)

    def _build_recipe(self, reference: str, recipe: Path, context: Path, archive: Path, base: DebianBase,
                      progress: Progress, force: bool) -> BuiltImage:
        """``reference`` built from ``recipe`` on the debootstrapped ``base`` and pushed to ``archive``,
        unless that archive (named by the caller's content hash) already exists."""
        started = time.monotonic()
        if archive.is_file() and not force:
            return BuiltImage(reference, archive, True, time.monotonic() - started)
        base_image = self.build_base(base, progress)
        progress(f"buildah build {reference} (FROM {base_image})")
        self.buildah(
            "build", "--layers", *(["--no-cache"] if force else []), "--network", "host", "--isolation", "chroot",
            "--build-arg", f"BASE_IMAGE={base_image}", "-f", str(recipe), "-t", reference, str(context),
        )
        progress(f"pushing {reference} to {archive}")
        self.push_archive(reference, archive)
        seconds = time.monotonic() - started
        log.info("image built", extra={"image": reference, "seconds": round(seconds, 1)})
        return BuiltImage(reference, archive, False, seconds)

    @staticmethod
    def import_into(archive: Path, containerd_socket: Path) -> None:
        command = ["ctr", "--address", str(containerd_socket), "-n", "k8s.io", "images", "import", str(archive)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=IMPORT_SECONDS, check=False)
        except subprocess.TimeoutExpired as exc:
            output = (exc.stderr or exc.stdout or b"")
            tail = (output.decode(errors="replace") if isinstance(output, bytes) else output).strip()[-2000:]
            raise EnvironmentSetupError(
                f"ctr images import {archive.name}: not done after {IMPORT_SECONDS:.0f}s (containerd at "
                f"{containerd_socket}); its output:\n{tail or '(none)'}") from exc
        if result.returncode != 0:
            raise EnvironmentSetupError(f"ctr images import {archive.name} failed: {result.stderr.strip()}")
