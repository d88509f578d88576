"""The krew manifest template and its launcher: a valid Plugin once the release placeholders are
filled, and a launcher that runs the same entry point as the package's console script."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
KREW = REPO / "plugins" / "krew"


def _rendered(tag: str = "v0.1.0") -> dict:
    text = (KREW / "xorj.yaml").read_text()
    # what krew-release-bot does: the tag, and addURIAndSha -> uri + sha256 of the archive
    uri_line = next(line for line in text.splitlines() if "addURIAndSha" in line and not line.startswith("#"))
    indent = uri_line[: len(uri_line) - len(uri_line.lstrip())]
    text = text.replace(uri_line, f"{indent}uri: https://releases.example/kubectl-xorj_{tag}.tar.gz\n"
                                  f"{indent}sha256: {'a1' * 32}")
    return yaml.safe_load(text.replace("{{ .TagName }}", tag))


def test_the_template_renders_to_a_krew_plugin() -> None:
    plugin = _rendered()
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert plugin["kind"] == "Plugin" and plugin["metadata"]["name"] == "xorj"
    spec = plugin["spec"]
    assert spec["version"] == "v0.1.0" and len(spec["shortDescription"]) <= 50
    for platform in spec["platforms"]:
        assert platform["bin"] == "kubectl-xorj" and len(platform["sha256"]) == 64
        assert {"os"} == {e["key"] for e in platform["selector"]["matchExpressions"]}
        for item in platform["files"]:
            assert (KREW / item["from"]).is_file(), f"{item['from']} is not in plugins/krew"


def test_the_launcher_runs_the_console_scripts_entry_point(tmp_path: Path) -> None:
    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["kubectl-xorj"]
    module, func = entry.split(":")
    assert f"from {module} import {func}" in (KREW / "kubectl-xorj").read_text()
    env = {**os.environ, "XORJ_PYTHON": sys.executable, "PYTHONPATH": str(REPO / "operator")}
    ok = subprocess.run([str(KREW / "kubectl-xorj"), "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and "kubectl xorj" in ok.stdout and "explain" in ok.stdout
    missing = subprocess.run([str(KREW / "kubectl-xorj"), "--help"], capture_output=True, text=True, timeout=60,
                             env={**env, "XORJ_PYTHON": str(tmp_path / "no-python")})
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "(hint: " in missing.stderr
