"""The executor, the watcher and the chain reconciler reach the ledger on their event loop
(xorj.ledger.aio), never through a worker thread: no blocking ledger (``Ledger``, or a store class
wrapping it) in their packages, and no ``asyncio.to_thread`` / ``run_in_executor`` but the few listed
here, each a call of the blocking Kubernetes client (not the ledger)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xorj.executor
import xorj.reconciler
import xorj.watcher

PACKAGES = {package.__name__: Path(package.__file__).parent for package in (xorj.executor, xorj.watcher, xorj.reconciler)}
# the blocking ledger and the blocking wrappers of transaction bodies (for the CLI and the tests)
BLOCKING_LEDGER = {"Ledger", "LeadSignalStore", "ReconciliationStore", "TraderSwapStore", "ledger_call_on_thread"}
HOPS = {"to_thread", "run_in_executor"}
# (module, the function handed to the thread): the Kubernetes client is blocking
ALLOWED_HOPS = {
    ("xorj.watcher/follows.py", "self._list_objects"),  # lists TradingStrategies and TraderPools
    ("xorj.watcher/projection.py", "create"),  # creates a CopyTrade or posts an Event
}


def _names_used(tree: ast.AST) -> set[str]:
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    return names


def _hops(tree: ast.AST) -> list[str]:
    """What each to_thread / run_in_executor call hands to a thread (the function, as written)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name == "to_thread":
                found.append(ast.unparse(node.args[0]) if node.args else "?")
            elif name == "run_in_executor":
                found.append(ast.unparse(node.args[1]) if len(node.args) > 1 else "?")
    return found


def _modules(package: str) -> dict[str, ast.AST]:
    modules = sorted(PACKAGES[package].glob("*.py"))
    assert any(m.name == "service.py" for m in modules), package
    return {f"{package}/{m.name}": ast.parse(m.read_text(), filename=str(m)) for m in modules}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_the_package_uses_no_blocking_ledger(package: str) -> None:
    found = {name: sorted(_names_used(tree) & BLOCKING_LEDGER) for name, tree in _modules(package).items()}
    assert {name: used for name, used in found.items() if used} == {}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_the_package_hops_to_a_thread_only_for_the_kubernetes_client(package: str) -> None:
    hops = {(name, hop) for name, tree in _modules(package).items() for hop in _hops(tree)}
    assert hops - ALLOWED_HOPS == set()


def test_the_executor_hops_to_no_thread_at_all() -> None:
    assert [hop for tree in _modules("xorj.executor").values() for hop in _hops(tree)] == []
    assert not any(_names_used(tree) & HOPS for tree in _modules("xorj.executor").values())


def test_the_listed_kubernetes_hops_are_still_there() -> None:
    """A hop listed above that is gone is dropped from the list, so the list never allows more than is used."""
    hops = {(name, hop) for package in PACKAGES for name, tree in _modules(package).items() for hop in _hops(tree)}
    assert ALLOWED_HOPS <= hops
