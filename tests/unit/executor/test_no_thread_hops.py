"""The executor reaches the ledger on its event loop (xorj.ledger.aio), never through a worker thread:
no ``asyncio.to_thread`` / ``run_in_executor`` in the executor package, and no blocking ledger."""

from __future__ import annotations

import ast
from pathlib import Path

import xorj.executor

EXECUTOR = Path(xorj.executor.__file__).parent


def _names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    return names


def test_the_executor_package_hops_to_no_thread_and_uses_no_blocking_ledger():
    modules = sorted(EXECUTOR.glob("*.py"))
    assert any(m.name == "service.py" for m in modules)
    found = {m.name: sorted(_names_used(m) & {"to_thread", "run_in_executor", "Ledger"}) for m in modules}
    assert {name: hops for name, hops in found.items() if hops} == {}
