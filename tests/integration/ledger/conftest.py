"""Every ledger test runs against the real local Postgres server."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/ledger" in str(item.fspath):
            item.add_marker(pytest.mark.postgres)
