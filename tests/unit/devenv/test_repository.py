"""Finding the checkout the development tools run from (the chart, examples and experiments are files
of the repository, not of a package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xorj.devenv.repository import MARKER, find_repository_root, repository_root
from xorj.errors import EnvironmentSetupError

REPO = Path(__file__).resolve().parents[3]


def test_the_installed_tools_find_this_checkout() -> None:
    assert repository_root() == REPO
    assert (REPO / MARKER).is_file() and (REPO / "experiments").is_dir()


def test_the_nearest_directory_holding_the_chart_wins(tmp_path: Path) -> None:
    (tmp_path / MARKER).parent.mkdir(parents=True)
    (tmp_path / MARKER).write_text("name: xorj-operator\n")
    deep = tmp_path / "devtools" / "xorj" / "devenv"
    deep.mkdir(parents=True)
    assert find_repository_root(deep) == tmp_path
    elsewhere = tmp_path / "unrelated"
    elsewhere.mkdir()
    assert find_repository_root(Path("/"), elsewhere) == tmp_path  # the second start, when the first fails


def test_outside_a_checkout_the_error_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentSetupError) as raised:
        find_repository_root(tmp_path)
    message = str(raised.value)
    assert str(MARKER) in message and str(tmp_path) in message and "pip install -e devtools" in message
