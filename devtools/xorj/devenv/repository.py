"""Where the checkout is. The local environment reads files that are not Python: the Helm chart, the
CRDs, the examples, the Chaos Toolkit experiments and the Dockerfile. They live in the repository, not
in a package, so the development tools run from a checkout (``pip install -e devtools``, as
scripts/bootstrap does) and find its root by looking upward for the chart.
"""

from __future__ import annotations

from pathlib import Path

from xorj.errors import EnvironmentSetupError

# A file only the xorj-operator repository has at its root's relative path.
MARKER = Path("charts") / "xorj-operator" / "Chart.yaml"


def find_repository_root(*starts: Path) -> Path:
    """The nearest directory at or above one of ``starts`` (tried in order) that holds the chart."""
    for start in starts:
        for directory in (start, *start.parents):
            if (directory / MARKER).is_file():
                return directory
    looked = ", ".join(str(s) for s in starts)
    raise EnvironmentSetupError(
        f"the xorj-operator repository (a directory with {MARKER}) is not at or above {looked}: "
        "the development tools run from a checkout (install them with scripts/bootstrap, or "
        "`pip install -e devtools` in the repository)")


def repository_root() -> Path:
    """The checkout these tools were installed from, or else the one the working directory is in."""
    return find_repository_root(Path(__file__).resolve().parent, Path.cwd().resolve())
