"""The project's image as built (buildah, on the local debootstrapped base): its final filesystem,
read from the OCI archive layer by layer with whiteouts applied, holds no shell and no pip, and its
entrypoint starts without one.

The build is cached by the content hash of what the Dockerfile copies, so this reuses the image the
e2e tests and `xorj dev image build` make; a cold build takes a few minutes.
"""

from __future__ import annotations

import gzip
import io
import json
import posixpath
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xorj.devenv.image import BuiltImage, ImageBuilder

pytestmark = pytest.mark.slow

SHELL_NAMES = {"sh", "bash", "rbash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox"}
BIN_DIRS = {"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "opt/xorj/bin"}
PIP_NAMES = {"pip", "pip3", "pip3.11"}


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "dir", "symlink", "other"
    target: str = ""  # a symlink's target or a hard link's source
    head: bytes = b""  # a regular file's first bytes


class ImageFilesystem:
    """The merged root filesystem of an OCI image archive (OCI layer rules: .wh. and opaque dirs)."""

    def __init__(self, archive: Path) -> None:
        self.entries: dict[str, Entry] = {}
        with tarfile.open(archive) as outer:
            def blob(digest: str) -> bytes:
                member = outer.extractfile(f"blobs/{digest.replace(':', '/')}")
                assert member is not None
                return member.read()

            index = json.loads(blob_from(outer, "index.json"))
            manifest = json.loads(blob(index["manifests"][0]["digest"]))
            self.config = json.loads(blob(manifest["config"]["digest"]))["config"]
            for layer in manifest["layers"]:
                data = blob(layer["digest"])
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                self._apply(data)

    def _apply(self, layer: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            members = tar.getmembers()
            for member in members:  # whiteouts hide lower layers only: apply them first
                name = posixpath.normpath(member.name.lstrip("./")) if member.name not in (".", "./") else ""
                directory, base = posixpath.split(name)
                if base == ".wh..wh..opq":
                    self._drop_children(directory)
                elif base.startswith(".wh."):
                    self._drop(posixpath.join(directory, base[len(".wh."):]))
            for member in members:
                name = posixpath.normpath(member.name.lstrip("./")) if member.name not in (".", "./") else ""
                if not name or posixpath.basename(name).startswith(".wh."):
                    continue
                if member.isdir():
                    self.entries[name] = Entry("dir")
                elif member.issym():
                    self._drop(name)
                    self.entries[name] = Entry("symlink", member.linkname)
                elif member.islnk():
                    self._drop(name)
                    source = posixpath.normpath(member.linkname.lstrip("./"))
                    self.entries[name] = Entry("file", source, self.entries.get(source, Entry("file")).head)
                elif member.isfile():
                    self._drop(name)
                    handle = tar.extractfile(member)
                    self.entries[name] = Entry("file", head=handle.read(256) if handle else b"")
                else:
                    self.entries[name] = Entry("other")

    def _drop(self, path: str) -> None:
        self.entries.pop(path, None)
        self._drop_children(path)

    def _drop_children(self, path: str) -> None:
        prefix = path.rstrip("/") + "/" if path else ""
        for name in [n for n in self.entries if n.startswith(prefix) and n != path]:
            del self.entries[name]

    def resolve(self, path: str) -> str | None:
        """The path with every symlink followed, or None when nothing is there."""
        parts = [p for p in path.strip("/").split("/") if p]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                resolved = resolved[:-1]
                continue
            candidate = "/".join([*resolved, part])
            entry = self.entries.get(candidate)
            if entry is None:
                return None
            if entry.kind == "symlink":
                hops += 1
                assert hops < 40, f"symlink loop at {candidate}"
                target = entry.target
                base = [] if target.startswith("/") else resolved
                parts = [*base, *[p for p in target.split("/") if p and p != "."], *parts]
                resolved = []
                continue
            resolved.append(part)
        return "/".join(resolved)

    def files(self) -> Iterator[str]:
        return iter(self.entries)


def blob_from(outer: tarfile.TarFile, name: str) -> bytes:
    member = outer.extractfile(name)
    assert member is not None, f"{name} missing from the archive"
    return member.read()


@pytest.fixture(scope="module")
def built() -> BuiltImage:
    return ImageBuilder().build_project()


@pytest.fixture(scope="module")
def image(built: BuiltImage) -> ImageFilesystem:
    return ImageFilesystem(built.archive)


def test_no_shell_in_the_image(image: ImageFilesystem) -> None:
    assert image.resolve("/usr/bin/python3"), "the reader sees the base (sanity)"
    listed = image.entries.get("etc/shells")
    assert listed is not None, "Debian's /etc/shells names the shells the base had"
    for shell in ["/bin/sh", "/bin/bash", "/bin/dash", "/bin/rbash", "/usr/bin/sh", "/usr/bin/bash"]:
        assert image.resolve(shell) is None, f"{shell} is in the image"
    named_like_a_shell = [n for n in image.files()
                          if posixpath.dirname(n) in BIN_DIRS and posixpath.basename(n) in SHELL_NAMES]
    assert not named_like_a_shell, named_like_a_shell


def test_no_pip_in_the_image(image: ImageFilesystem) -> None:
    pip = [n for n in image.files()
           if n.endswith(("/pip/__init__.py", "/pip/__main__.py"))
           or (posixpath.dirname(n) in BIN_DIRS and posixpath.basename(n) in PIP_NAMES)
           or (posixpath.basename(n).startswith("pip-") and n.endswith(".whl"))]
    assert not pip, pip
    shipped = [n for n in image.files() if n.startswith("opt/xorj/lib/")]
    assert any(n.endswith("site-packages/kopf/__init__.py") for n in shipped), "the venv is there (sanity)"
    assert not [n for n in shipped if "/site-packages/setuptools/" in n], "the build backend stays in the build stage"


def test_image_holds_the_product_and_not_the_development_tools(image: ImageFilesystem) -> None:
    """The shipped virtualenv has the product's `xorj` and none of devtools/ (xorj.devenv with the chain
    simulator, xorj.chaos, their `xorj.commands` entry points) nor what only those need."""
    site = [n for n in image.files() if n.startswith("opt/xorj/lib/") and "/site-packages/" in n]
    packages = {n.split("/site-packages/", 1)[1] for n in site}
    assert "xorj/cli.py" in packages and "xorj/ledger/migrations" in {posixpath.dirname(p) for p in packages}
    dev_tools = sorted(p for p in packages if p.startswith(("xorj/devenv/", "xorj/chaos/", "xorj_devtools",
                                                            "chaostoolkit", "chaoslib/", "cryptography/")))
    assert not dev_tools, dev_tools[:20]
    entry_points = [p for p in packages if p.startswith("xorj_operator-") and p.endswith("/entry_points.txt")]
    assert entry_points, "the product's distribution metadata is there (sanity)"


def test_entrypoint_is_the_console_script_on_the_venv_python(image: ImageFilesystem) -> None:
    assert image.config["Entrypoint"] == ["xorj"] and image.config["Cmd"] == ["operator"]
    assert image.config["User"] == "10001:10001"
    script = image.resolve("/opt/xorj/bin/xorj")
    assert script, "the console script is installed"
    shebang = image.entries[script].head.split(b"\n", 1)[0].decode()
    # The interpreter itself, no `/usr/bin/env` or `/bin/sh` trampoline (pip writes one for long paths).
    assert re.fullmatch(r"#!/opt/xorj/bin/python(3(\.11)?)?", shebang), shebang
    interpreter = image.resolve(shebang[2:])
    assert interpreter and image.entries[interpreter].kind == "file", f"{shebang[2:]} resolves to no file"


def test_image_starts_without_a_shell(built: BuiltImage) -> None:
    """Run the image's command (buildah run, chroot isolation): `xorj --help` works; `sh` is absent."""
    builder = ImageBuilder()
    container = builder.buildah("from", "--pull-never", built.reference)
    try:
        run = ["buildah", "--root", str(builder.cache_dir / "storage"), "--runroot", str(builder.cache_dir / "run"),
               "--storage-driver", "overlay", "run", "--isolation", "chroot", container, "--"]
        started = subprocess.run([*run, "xorj", "--help"], capture_output=True, text=True, timeout=300, check=False)
        assert started.returncode == 0 and "Usage:" in started.stdout, started.stderr[-2000:]
        commands = started.stdout.split("Commands:")[1].split()
        assert "operator" in commands and "dev" not in commands and "chaos" not in commands, started.stdout
        dev = subprocess.run([*run, "xorj", "dev", "up"], capture_output=True, text=True, timeout=300, check=False)
        assert dev.returncode == 2 and "development tools" in dev.stderr, dev.stdout + dev.stderr[-2000:]
        shell = subprocess.run([*run, "sh", "-c", "true"], capture_output=True, text=True, timeout=120, check=False)
        assert shell.returncode != 0, "a shell ran inside the image"
        assert "not found" in shell.stdout + shell.stderr, shell.stderr[-2000:]  # absent, not merely failing
    finally:
        subprocess.run(["buildah", "--root", str(builder.cache_dir / "storage"), "--runroot",
                        str(builder.cache_dir / "run"), "rm", container], capture_output=True, check=False)
