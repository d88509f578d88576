"""Fixtures of the reconciler's integration tests: a fresh vault of the session's local chain (no
other test has used it, so its whole history is this test's) in a strategy of its own."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.executor.harness import Scenario


@pytest.fixture
def fresh_scenario(local_chain) -> Scenario:
    vault = local_chain.take_vault()
    return Scenario(strategy=f"ns/s-{uuid.uuid4().hex[:10]}", vault=vault, keypair_file=str(local_chain.vaults[vault]),
                    input_mint=local_chain.mints["USDC"], output_mint=local_chain.mints["SOL"])


@pytest.fixture
def faults_cleared(local_chain):
    local_chain.reset_faults()
    yield
    local_chain.reset_faults()
