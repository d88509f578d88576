"""The pod sandbox ("pause") image, built here from pause.c: no registry holds one for us."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from xorj.devenv.image import ImageBuilder
from xorj.devenv.node.config import PAUSE_IMAGE
from xorj.errors import EnvironmentSetupError

SOURCE = Path(__file__).with_name("pause.c")


def pause_archive(builder: ImageBuilder) -> Path:
    """An OCI archive of the pause image (a static binary on an empty root), built once."""
    archive = builder.cache_dir / "archives" / "xorj-pause-1.0.oci.tar"
    if archive.is_file():
        return archive
    if shutil.which("gcc") is None:
        raise EnvironmentSetupError("gcc is needed to build the pause image (Debian package gcc, libc6-dev)")
    with tempfile.TemporaryDirectory(prefix="xorj-pause-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        result = subprocess.run(["gcc", "-Os", "-static", "-s", "-o", str(rootfs / "pause"), str(SOURCE)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EnvironmentSetupError(f"compiling pause.c failed: {result.stderr.strip()}")
        builder.from_rootfs(rootfs, PAUSE_IMAGE, ["--entrypoint", '["/pause"]', "--user", "65535:65535"])
    return builder.push_archive(PAUSE_IMAGE, archive)
