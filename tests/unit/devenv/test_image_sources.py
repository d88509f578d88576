"""The image's cache key covers everything its build reads: a changed lock file rebuilds it."""

from __future__ import annotations

import shutil
from pathlib import Path

from xorj.devenv.image import SOURCE_DIRS, SOURCES, source_hash

REPO = Path(__file__).resolve().parents[3]


def build_stage_copy_sources() -> set[str]:
    """The context paths the Dockerfile's COPY instructions read (not those --from another stage)."""
    sources: set[str] = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            sources.update(w.rstrip("/") for w in words[1:-1] if not w.startswith("--"))
    return sources


def test_every_file_the_dockerfile_copies_is_hashed() -> None:
    copied = build_stage_copy_sources()
    assert "requirements.lock" in copied
    assert copied <= set(SOURCES) | set(SOURCE_DIRS), sorted(copied - set(SOURCES) - set(SOURCE_DIRS))


def test_changing_a_lock_file_changes_the_image_tag(tmp_path: Path) -> None:
    for name in SOURCES:
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "operator").mkdir()
    (tmp_path / "operator" / "a.py").write_text("x = 1\n")
    first = source_hash(tmp_path)
    for lock in ("requirements.lock", "requirements-build.lock"):
        (tmp_path / lock).write_text((tmp_path / lock).read_text() + "# changed\n")
        changed = source_hash(tmp_path)
        assert changed != first, f"{lock} is not part of the image's cache key"
        first = changed
