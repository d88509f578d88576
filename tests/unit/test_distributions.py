"""The repository's two distributions: the product (pyproject.toml, operator/xorj, what the image
holds) and the development tools (devtools/pyproject.toml, devtools/xorj: xorj.devenv with the chain
simulator, xorj.chaos, `xorj dev` and `xorj chaos`).

The product imports nothing of the development tools, and the `xorj` command has `dev` and `chaos`
only where the development tools' distribution registers them (the `xorj.commands` entry points).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import xorj.cli
from xorj.cli import DEVTOOLS_COMMANDS, PLUGIN_GROUP, cli

REPO = Path(__file__).resolve().parents[2]
PRODUCT = REPO / "operator" / "xorj"
DEVTOOLS = REPO / "devtools"
DEV_PACKAGES = ("xorj.devenv", "xorj.chaos")
PRODUCT_PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEVTOOLS_PYPROJECT = tomllib.loads((DEVTOOLS / "pyproject.toml").read_text())


def _module_name(path: Path) -> str:
    parts = path.relative_to(PRODUCT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Every module an `import`/`from ... import` of the product file names (relative ones resolved),
    and every "module:attribute" or dotted xorj name written as a string (lazy imports by name)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("xorj."):
            found.add(node.value.partition(":")[0])
    return found


def _is_dev_code(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in DEV_PACKAGES)


def test_the_product_tree_holds_no_development_tools() -> None:
    assert not (PRODUCT / "devenv").joinpath("__init__.py").exists()
    assert not (PRODUCT / "chaos").joinpath("__init__.py").exists()
    assert (DEVTOOLS / "xorj" / "devenv" / "chain" / "__init__.py").is_file(), "the chain simulator is a dev tool"
    assert not (DEVTOOLS / "xorj" / "__init__.py").exists(), (
        "devtools/xorj is a portion of the product's `xorj`: an __init__.py there would replace the product's")


def test_no_product_module_imports_the_development_tools() -> None:
    sources = sorted(PRODUCT.rglob("*.py"))
    assert len(sources) > 50, "the product's modules were found"
    offenders = {f"{path.relative_to(REPO)}: {module}"
                 for path in sources for module in _imports(path) if _is_dev_code(module)}
    assert not offenders, "the product imports the development tools:\n" + "\n".join(sorted(offenders))


def test_the_import_check_sees_lazy_and_relative_imports() -> None:
    """The check above can fail: a lazy import, a relative one and an import by name are all seen."""
    source = textwrap.dedent('''
        def up():
            from xorj.devenv.demo import Demo
        from ..chaos import probes
        COMMANDS = {"dev": "xorj.devenv.commands.dev:dev"}
    ''')
    seen = _imports(PRODUCT / "commands" / "sample.py", source)  # the path places it: xorj.commands.sample
    assert {"xorj.devenv.demo", "xorj.chaos", "xorj.devenv.commands.dev"} <= {m for m in seen if _is_dev_code(m)}


def test_every_product_module_imports_with_only_the_product_on_the_path() -> None:
    """A fresh interpreter that sees only this checkout's operator/ (no devtools/, no other checkout's
    xorj) imports every product module, loads none of the development tools, and cannot import them."""
    site_packages = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    assert site_packages
    program = textwrap.dedent(f'''
        import importlib, importlib.util, os, pkgutil, sys
        product = {str(REPO / "operator")!r}
        # -S: no .pth file ran, so no editable install's path entry or import hook is here; the
        # third-party packages come from this test's site-packages directories themselves.
        sys.path[:] = [product, *sys.path, *{site_packages!r}]
        import xorj
        assert xorj.__path__ == [os.path.join(product, "xorj")], xorj.__path__
        names = [m.name for m in pkgutil.walk_packages(xorj.__path__, "xorj.")]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.startswith(("xorj.devenv", "xorj.chaos")))
        assert not loaded, loaded
        for name in ("xorj.devenv", "xorj.chaos"):
            spec = importlib.util.find_spec(name)
            # None; or, in a checkout that still has a stale __pycache__ where the package was, an
            # empty namespace with no module in it
            assert spec is None or (spec.origin is None and not any(
                f.endswith(".py") for d in spec.submodule_search_locations for f in os.listdir(d))), spec
        print(len(names))
    ''')
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-S", "-c", program], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 50, "the product's modules were walked"


def test_only_the_development_tools_register_dev_and_chaos() -> None:
    product_groups = PRODUCT_PYPROJECT["project"].get("entry-points", {})
    assert PLUGIN_GROUP not in product_groups
    registered = DEVTOOLS_PYPROJECT["project"]["entry-points"][PLUGIN_GROUP]
    assert set(registered) == set(DEVTOOLS_COMMANDS)
    assert not set(DEVTOOLS_COMMANDS) & set(xorj.cli.COMMANDS), "dev and chaos are not built into the product"


def _without_devtools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed distributions' entry points, as if xorj-devtools were not installed."""
    real = importlib.metadata.entry_points

    def entry_points(**selection: str) -> importlib.metadata.EntryPoints:
        return importlib.metadata.EntryPoints(
            ep for ep in real(**selection) if ep.dist is None or ep.dist.name != DEVTOOLS_PYPROJECT["project"]["name"])

    monkeypatch.setattr(xorj.cli.importlib.metadata, "entry_points", entry_points)


def _devtools_metadata(tmp_path: Path) -> Path:
    """The development tools' distribution metadata, as an install writes it from
    devtools/pyproject.toml (name and the `xorj.commands` entry points), in a directory on sys.path."""
    project = DEVTOOLS_PYPROJECT["project"]
    info = tmp_path / f"xorj_devtools-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{PLUGIN_GROUP}]", *(f"{name} = {value}" for name, value in
                                    project["entry-points"][PLUGIN_GROUP].items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_without_the_development_tools_xorj_has_neither_and_says_how_to_get_them(monkeypatch) -> None:
    _without_devtools(monkeypatch)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--help"])
    assert listed.exit_code == 0
    commands = listed.output.split("Commands:")[1].split()
    assert "operator" in commands and "executor" in commands
    assert "dev" not in commands and "chaos" not in commands
    for args in (["dev"], ["dev", "up", "--loop"], ["chaos", "--help"]):
        refused = runner.invoke(cli, args)
        assert refused.exit_code == 2, (args, refused.output)
        message = refused.output.strip()
        assert len(message.splitlines()) == 1, message
        assert f"xorj {args[0]}:" in message and "scripts/bootstrap" in message and "devtools" in message


def test_with_the_development_tools_xorj_has_dev_and_chaos(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(_devtools_metadata(tmp_path)))
    runner = CliRunner()
    listed = runner.invoke(cli, ["--help"])
    assert listed.exit_code == 0, listed.output
    commands = listed.output.split("Commands:")[1].split()
    assert {"dev", "chaos", "operator"} <= set(commands)
    dev = runner.invoke(cli, ["dev", "--help"])
    assert dev.exit_code == 0 and {"up", "chain", "down"} <= set(dev.output.split("Commands:")[1].split()), dev.output
    chaos = runner.invoke(cli, ["chaos", "list"])
    assert chaos.exit_code == 0 and "rpc-timeouts" in chaos.output, chaos.output


def test_the_development_tools_ship_their_own_modules_only() -> None:
    """devtools/pyproject.toml packages xorj.devenv and xorj.chaos (never the product's `xorj`) and
    depends on the product; the chaos and local-environment libraries are its dependencies, not the product's."""
    find = DEVTOOLS_PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["xorj", "xorj.devenv*", "xorj.chaos*"] and find.get("namespaces", True)
    requires = DEVTOOLS_PYPROJECT["project"]["dependencies"]
    assert any(r.startswith("xorj-operator") for r in requires)
    product = " ".join(PRODUCT_PYPROJECT["project"]["dependencies"])
    for library in ("chaostoolkit", "cryptography", "jsonpath2"):
        assert any(r.startswith(library) for r in requires) and library not in product
