"""Fixtures of the watcher's integration tests: the preamble every test shares (a funded lead trader
of the test's own on the session's local chain, and a namespace of its own for its strategies)."""

from __future__ import annotations

import pytest

from tests.integration.watcher.helpers import Leader, run, unique_namespace


@pytest.fixture
def leader(local_chain) -> Leader:
    """The lead trader the test's strategies follow, funded (USDC and SOL for fees)."""
    lead = Leader(local_chain)
    run(lead.fund())
    return lead


@pytest.fixture
def stranger(local_chain) -> Leader:
    """Another funded trader, whom no strategy follows."""
    other = Leader(local_chain)
    run(other.fund())
    return other


@pytest.fixture
def ns() -> str:
    """The namespace of the test's TradingStrategies (ledger strategy keys are namespace/name)."""
    return unique_namespace()
