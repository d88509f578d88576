"""Fixtures of the executor's integration tests: a scenario (fresh strategy, one funded vault, the
market's USDC -> SOL direction) on the session's local chain, and the chain's state before the test."""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Iterator

import pytest

from tests.integration.executor.harness import Scenario, balances, successful_fills


@pytest.fixture
def scenario(local_chain, request) -> Scenario:
    # Vaults from the second half of the seeded ones, chosen by test name. Suites that move funds
    # take theirs from the front in the same (seeding) order, so the halves never meet while fewer
    # than half are taken: a vault drained into SOL by another suite once failed a slippage test
    # here with max_position_share. The chain assertions here work on deltas anyway.
    vaults = list(local_chain.vaults.items())
    half = vaults[len(vaults) // 2:] or vaults
    vault, keypair_file = half[zlib.crc32(request.node.nodeid.encode()) % len(half)]
    assert vault not in local_chain.taken_by_owners, f"vault {vault} was taken by a suite that moves its funds"
    local_chain.mark_taken(vault)  # tests that need a fresh vault (chain tests) must not get this one
    return Scenario(strategy=f"s-{uuid.uuid4().hex[:10]}", vault=vault, keypair_file=str(keypair_file),
                    input_mint=local_chain.mints["USDC"], output_mint=local_chain.mints["SOL"])


@pytest.fixture
def chain_before(local_chain, scenario):
    """The vault's fills and balances before the test (the test asserts deltas); faults cleared."""
    local_chain.reset_faults()
    yield successful_fills(local_chain.rpc_url, scenario.vault), balances(local_chain.rpc_url, scenario)
    local_chain.reset_faults()


class PriceMover:
    """Moves the market's SOL price against the USDC->SOL trades while they are in flight (a test's
    "other traders"). With a latency fault on sendTransaction, a move made right after an attempt is
    committed lands before that attempt executes: its quote's bound is then missed on chain."""

    def __init__(self, local_chain) -> None:
        self.chain = local_chain
        self.factor = 1.0

    def against(self, bps: int) -> None:
        self.chain.move_price(bps)  # SOL dearer: a USDC->SOL swap gets less than quoted
        self.factor *= (10_000 + bps) / 10_000

    def restore(self) -> None:
        if self.factor != 1.0:
            self.chain.move_price(round((1 / self.factor - 1) * 10_000))
            self.factor = 1.0

    @staticmethod
    def on_each_new_attempt(ledger, trade_id: int, action, stop: threading.Event, limit: int = 10) -> threading.Thread:
        """Call ``action()`` each time the trade gets a new attempt (watching the ledger)."""
        def watch() -> None:
            seen = 0
            while not stop.is_set() and seen < limit:
                n = len(ledger.get_trade(trade_id).attempts)
                while seen < n:
                    seen += 1
                    action()
                time.sleep(0.01)
        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def price_mover(local_chain) -> Iterator[PriceMover]:
    mover = PriceMover(local_chain)
    yield mover
    mover.restore()  # put the market back (about) where it was for the next test
