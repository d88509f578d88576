"""Shared fixtures. Each service a test needs is started once per session by its fixture module."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.cluster",
    "tests.fixtures.chain",
]
