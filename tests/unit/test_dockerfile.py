"""The Dockerfile: linted, multi-stage, non-root, read-only-root fit, one image for both commands.

No container engine runs on these machines, so the image itself is not built here. What can be
checked is: the linter's verdict, the shape of the file, that the build context selected by
.dockerignore is enough to build the package, and that the commands the image runs exist in the
installed package.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[list[tuple[str, str]], list[Stage]]:
    """Instructions before the first FROM, and the stages (continuation lines joined)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    preamble: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
        else:
            preamble.append((keyword, args.strip()))
    return preamble, stages


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exclusion, regex) in file order, with Docker's semantics for *, ** and ?."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((not negate, re.compile(regex + r"\Z")))
    return patterns


def in_build_context(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for is_exclusion, regex in patterns:
        if any(regex.match(c) for c in candidates):
            excluded = is_exclusion
    return not excluded


@pytest.fixture(scope="module")
def dockerfile() -> tuple[list[tuple[str, str]], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def hadolint_binary() -> str:
    scripts = Path(sysconfig.get_path("scripts")) / "hadolint"
    found = str(scripts) if scripts.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with the test extras (pip install -e '.[test]')"
    return found


@pytest.mark.parametrize("recipe", [DOCKERFILE, DOCKERFILE.parent / "images" / "patroni" / "Containerfile"],
                         ids=["project", "patroni"])
def test_hadolint_finds_nothing(recipe: Path) -> None:
    result = subprocess.run(
        [hadolint_binary(), "--format", "json", str(recipe)],
        capture_output=True, text=True, timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really runs: a root, unpinned, cache-keeping file is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install kopf\nUSER root\n")
    result = subprocess.run([hadolint_binary(), "--format", "json", str(bad)],
                            capture_output=True, text=True, timeout=60)
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert result.returncode != 0
    assert {"DL3007", "DL3013"} <= codes, codes


def test_base_image_is_a_build_arg_used_by_every_stage(dockerfile) -> None:
    preamble, stages = dockerfile
    args = [a for kw, a in preamble if kw == "ARG"]
    assert any(a.startswith("BASE_IMAGE=") for a in args), "ARG BASE_IMAGE=<default> before FROM"
    default = next(a for a in args if a.startswith("BASE_IMAGE=")).split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default), (
        f"the default base is pinned by digest (tag@sha256:<64 hex>), not by a movable tag: {default}")
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    assert all(s.base == "${BASE_IMAGE}" for s in stages), [s.base for s in stages]


def test_runtime_stage_is_slim_and_non_root(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    build_names = {s.name for s in stages[:-1]}
    # Only the built virtualenv comes over from the build stage; no source tree, no pip in a RUN.
    copies = runtime.all("COPY")
    assert copies, "the runtime stage copies the virtualenv from the build stage"
    for args in copies:
        match = re.match(r"--from=(\S+)\s+(\S+)\s+(\S+)", args)
        assert match and match.group(1) in build_names, f"runtime COPY not from a build stage: {args}"
    assert not runtime.all("ADD")
    assert not any("pip install" in r or "apt-get" in r for r in runtime.all("RUN"))
    users = runtime.all("USER")
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric non-zero UID (runAsNonRoot)"
    assert gid.isdigit() and int(gid) > 0


def test_runtime_writes_nothing_to_the_root_filesystem(dockerfile) -> None:
    """Bytecode compiled at build time and not written at run time; HOME on the /tmp emptyDir."""
    _, stages = dockerfile
    build, runtime = stages[0], stages[-1]
    assert any("compileall" in r for r in build.all("RUN"))
    env = " ".join(runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert re.search(r"HOME=/tmp\b", env)


def test_one_image_whose_command_chooses(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["xorj"]
    assert json.loads(runtime.all("CMD")[-1]) == ["operator"]


def test_entry_point_is_the_installed_console_script() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("xorj") == "xorj.cli:main"


@pytest.mark.parametrize("command", ["operator", "executor"])
def test_image_commands_run_from_the_installed_package(command: str) -> None:
    xorj = Path(sysconfig.get_path("scripts")) / "xorj"
    program = str(xorj) if xorj.exists() else shutil.which("xorj")
    assert program, "the xorj console script is not installed"
    result = subprocess.run([program, command, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"`xorj {command} --help` failed:\n{result.stdout}\n{result.stderr}"
    assert "Usage:" in result.stdout


def test_build_context_is_minimal_and_sufficient(tmp_path: Path) -> None:
    """The files .dockerignore lets in are exactly what the build stage COPYs, and a wheel built
    from only those files carries the package, its data files and the `xorj` entry point."""
    patterns = dockerignore_patterns()
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    context = [p for p in tracked if in_build_context(p, patterns)]
    assert "pyproject.toml" in context and "operator/xorj/cli.py" in context
    assert {"requirements.lock", "requirements-build.lock"} <= set(context), "the locks the build installs from"
    assert not [p for p in context if p.startswith(("tests/", "charts/", ".git", "bench/", "devtools/"))]
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]

    root = tmp_path / "context"
    for relative in context:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "dist"), str(root)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("xorj_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "xorj/cli.py" in names
    sources = [p[len("operator/"):] for p in context if p.startswith("operator/xorj/")]
    assert not [p for p in sources if p.endswith(".py") and p not in names]
    migrations = [p for p in sources if p.startswith("xorj/ledger/migrations/") and p.endswith(".sql")]
    assert set(migrations) <= set(names), "ledger migrations must ship in the image"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    registered = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "xorj = xorj.cli:main" in registered
    # The development tools (devtools/, a distribution of their own) are not in what the image installs.
    assert not [n for n in names if n.startswith(("xorj/devenv/", "xorj/chaos/"))], "the image holds the dev tools"
    assert "[xorj.commands]" not in registered, "the image's `xorj` has no `dev` or `chaos`"


# Every name a shell goes by on Debian (its /etc/shells) under both halves of the merged /usr.
SHELLS = [f"{prefix}/{name}" for prefix in ("/bin", "/usr/bin") for name in ("sh", "bash", "dash", "rbash")]
SHIPPED_VENV = "/opt/xorj"


def pip_installs(stage: Stage) -> list[str]:
    """Each `... pip ... install ...` command of the stage's shell-form RUNs."""
    commands = [c.strip() for run in stage.all("RUN") if not run.startswith("[") for c in run.split("&&")]
    return [c for c in commands if re.search(r"\bpip\b", c) and re.search(r"\binstall\b", c)]


def test_every_install_is_hash_checked_or_local_and_resolves_nothing(dockerfile) -> None:
    """Dependencies come only from the locks, each file checked against its sha256; the project
    itself is a wheel built in the stage, installed without touching an index."""
    _, stages = dockerfile
    build = stages[0]
    installs = pip_installs(build)
    assert installs
    for command in installs:
        assert "--no-deps" in command, f"an install that resolves dependencies on its own: {command}"
        from_lock = ("--require-hashes" in command and "--only-binary=:all:" in command
                     and re.search(r"-r requirements(-build)?\.lock\b", command))
        local_wheel = "--no-index" in command and re.search(r"\S+\.whl\b", command)
        assert from_lock or local_wheel, f"neither hash-checked from a lock nor a local wheel: {command}"
    assert any("-r requirements.lock" in c and "--require-hashes" in c for c in installs)
    assert any("requirements.lock" in a.split() for a in build.all("COPY")), "the build stage copies the lock"
    wheel = [c for r in build.all("RUN") for c in r.split("&&") if "pip wheel" in c]
    assert wheel and all("--no-build-isolation" in c for c in wheel), (
        "an isolated build environment would fetch the build backend unhashed")


def test_shipped_virtualenv_never_holds_pip(dockerfile) -> None:
    _, stages = dockerfile
    build = stages[0]
    runs = " && ".join(build.all("RUN"))
    assert re.search(rf"-m venv --without-pip {SHIPPED_VENV}\b", runs), "the shipped venv is made --without-pip"
    assert f"{SHIPPED_VENV}/bin/pip" not in runs, "the shipped venv has no pip to call"
    into_shipped = [c for c in pip_installs(build) if SHIPPED_VENV in c]
    assert into_shipped and all(f"--python {SHIPPED_VENV}/bin/python" in c for c in into_shipped)
    assert not [c for c in pip_installs(build) if "--python" not in c and "--target" not in c
                and "requirements-build.lock" not in c], "only build tools are installed outside the shipped venv"


def test_runtime_stage_removes_every_shell_last_without_a_shell(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    keywords = [kw for kw, _ in runtime.instructions]
    assert "SHELL" not in keywords
    runs = runtime.all("RUN")
    assert runs, "the runtime stage removes the shells"
    assert all(r.startswith("[") for r in runs), "a shell-form RUN needs the shell this stage removes"
    removal = json.loads(runs[-1])
    assert removal[0] in ("/usr/bin/rm", "/bin/rm") and removal[1] in ("-f", "-rf"), removal
    removed = set(removal[2:])
    assert set(SHELLS) <= removed, f"shells left in the image: {sorted(set(SHELLS) - removed)}"
    assert {"/usr/local/bin/pip", "/usr/local/lib/python3.11/site-packages/pip", "/usr/share/python-wheels"} <= removed
    last_run = max(i for i, kw in enumerate(keywords) if kw == "RUN")
    last_user = max(i for i, kw in enumerate(keywords) if kw == "USER")
    assert last_run < last_user and "COPY" not in keywords[last_run:], (
        "the removal is the last filesystem step before USER")
    for keyword in ("ENTRYPOINT", "CMD"):
        assert all(isinstance(json.loads(v), list) for v in runtime.all(keyword)), f"{keyword} in exec form"
    assert not [kw for kw in keywords if kw == "HEALTHCHECK"], "a HEALTHCHECK CMD would need a shell"
