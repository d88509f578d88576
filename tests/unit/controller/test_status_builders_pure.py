"""The kinds' status builders are pure: importing them loads no ledger, no Kubernetes client, no kopf
and no database driver, so they take what they show through their own types (issue #13: the status
code imported ledger records)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BUILDERS = [
    "xorj.controller.conditions",
    "xorj.controller.tradingstrategy.status",
    "xorj.controller.copytrade.status",
    "xorj.controller.traderpool.status",
]
FORBIDDEN = ("xorj.ledger", "xorj.executor", "kopf", "kubernetes", "psycopg", "httpx", "aiohttp")


@pytest.mark.parametrize("module", BUILDERS)
def test_status_builder_imports_nothing_with_io(module: str) -> None:
    probe = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                       text=True).stdout)
    offending = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN))
    assert offending == [], f"{module} loads {offending}"
