"""Every kopf handler of the operator runs on kopf's event loop: kopf runs a sync handler on a worker
thread, one hop per call (per watch event for an indexer), and what those threads allocate stays in
per-thread malloc arenas that grow the operator's RSS for good. The login is async too (it builds
kopf's session; the files it reads are read on a thread of asyncio's own)."""

from __future__ import annotations

import ast
from pathlib import Path

import xorj.controller

CONTROLLER = Path(xorj.controller.__file__).parent


def _kopf_handlers() -> dict[tuple[str, str], bool]:
    """(module, function) -> async, for every function under a ``@kopf...`` decorator."""
    found = {}
    for path in sorted(CONTROLLER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    ast.unparse(d).startswith("kopf.") for d in node.decorator_list):
                found[(str(path.relative_to(CONTROLLER)), node.name)] = isinstance(node, ast.AsyncFunctionDef)
    return found


def test_every_kopf_handler_is_async() -> None:
    handlers = _kopf_handlers()
    assert ("copytrade/handlers.py", "copytrade_seen") in handlers  # the walk finds the indexers
    assert ("handlers.py", "login") in handlers
    assert {where for where, is_async in handlers.items() if not is_async} == set()
