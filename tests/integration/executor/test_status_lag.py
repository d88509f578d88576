"""Issue 12, section 1: a double fill when status reads lag behind finalization, done for real (the
real executor, a real Postgres ledger, the local LiteSVM chain and its faults).

The recipe: attempt 1's first send is held ~13 s by a ``latency`` fault and then processed, so it
lands in the last blocks of its 150-block window (15 s at the test chain's 100 ms slots); its
rebroadcasts hit ``timeout`` until it has landed; getSignatureStatuses answers through ``status_lag``
as a node 60 blocks behind. The finalized height (32 blocks back, from a current node) passes the
attempt's lastValidBlockHeight while the lagging node still answers "not found". An executor that
takes that for expiry re-signs, and both transactions fill. The fills are counted ON CHAIN.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.executor.harness import (
    InProcessExecutor,
    admit,
    assert_chain_matches_ledger,
    executor_env,
    wait_terminal,
)
from tests.polling import wait_for
from xorj.domain.trades import AttemptOutcome, TradeState

pytestmark = [pytest.mark.chain, pytest.mark.postgres]

AMOUNT = 2_345_000
FIRST_SEND_DELAY_MS = 13_000
LAG_BLOCKS = 60


def _fired(local_chain, fault_id: int) -> int:
    """How often this fault fired (the session-wide per-kind totals include earlier tests')."""
    return next((f["fired"] for f in local_chain.state()["faults"] if f["id"] == fault_id), 0)


def test_lagging_status_node_never_causes_a_second_fill(local_chain, ledger, ledger_dsn, scenario, chain_before):
    fills_before, balances_before = chain_before
    swaps_before = set(local_chain.swap_signatures(scenario.vault))
    assert local_chain.slot_ms <= 150, "the recipe's 13 s delay is sized for a 15 s (150 x 100 ms) window"
    local_chain.set_fault(kind="status_lag", method="getSignatureStatuses", blocks=LAG_BLOCKS)
    delayed = local_chain.set_fault(kind="latency", method="sendTransaction", delay_ms=FIRST_SEND_DELAY_MS, count=1)
    ids = admit(ledger, scenario, 1, AMOUNT)
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, send_timeout_seconds=1)
    with InProcessExecutor(env) as executor:
        # the first send is in the chain's hands (held 13 s, then processed): later sends time out
        wait_for(lambda: _fired(local_chain, delayed), 20, "first send", interval=0.02)
        timeouts = local_chain.set_fault(kind="timeout", method="sendTransaction", hang_s=2)
        landed = wait_for(lambda: set(local_chain.swap_signatures(scenario.vault)) - swaps_before, 30,
                       "attempt 1 landing on chain", interval=0.01)
        # From here, sends work again: a re-signed attempt WOULD fill (that is the double fill).
        local_chain.remove_fault(timeouts)
        trades = wait_terminal(ledger, ids, 60)
        stale = executor.service.metrics.rpc_errors.labels(
            scenario.strategy, "getSignatureStatuses", "RPC_ERROR")._value.get()
    local_chain.reset_faults()

    trade = trades[0]
    fills = set(local_chain.swap_signatures(scenario.vault)) - swaps_before
    first = trade.attempts[0]
    assert landed == {first.signature}, "attempt 1 is the transaction the delayed send landed"
    assert len(fills) == 1, (f"{len(fills)} fills on chain for one trade: "
                             f"{[(a.attempt_no, a.outcome.value, a.detail) for a in trade.attempts]}")
    assert trade.state is TradeState.CONFIRMED and trade.final_signature == first.signature
    assert [a.outcome for a in trade.attempts] == [AttemptOutcome.LANDED]
    # The hazard really happened: finalized height past the window while the status answer,
    # from 60 blocks back, did not know the landed attempt (each such answer is counted).
    assert stale >= 1, "the lagging node never answered 'not found' past expiry: the recipe did not bite"
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)


def _attempts(ledger, trade_id: int):
    return ledger.get_trade(trade_id).attempts


@pytest.mark.parametrize("second_node", [False, True], ids=["lagging-node-only", "second-node-confirms"])
def test_a_lagging_not_found_never_expires_an_attempt_unless_a_current_node_confirms(
        local_chain, ledger, ledger_dsn, scenario, chain_before, second_node):
    """An attempt that really never landed (every send times out), its window over at finalized height.
    The status node at "/" lags 60 blocks: its "not found" proves nothing, so the attempt stays PENDING
    (never re-signed) while only that node answers. A second RPC node that is current confirms the
    expiry at once (XORJ_STATUS_CONFIRM_RPC_URL); without one, the expiry waits for a fresh answer."""
    fills_before, balances_before = chain_before
    swaps_before = set(local_chain.swap_signatures(scenario.vault))
    lag = local_chain.set_fault(kind="status_lag", method="getSignatureStatuses", blocks=LAG_BLOCKS, node="main")
    timeouts = local_chain.set_fault(kind="timeout", method="sendTransaction", hang_s=1.5)
    ids = admit(ledger, scenario, 1, AMOUNT)
    extra = {"status_confirm_rpc_url": local_chain.rpc_url.rstrip("/") + "/nodes/second/"} if second_node else {}
    env = executor_env(dsn=ledger_dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, send_timeout_seconds=0.5, **extra)
    with InProcessExecutor(env) as executor:
        wait_for(lambda: _attempts(ledger, ids[0]), 20, "attempt 1 committed", interval=0.02)
        local_chain.advance_blocks(200)  # the window is over at finalized height, nothing landed
        if second_node:
            first = wait_for(lambda: next((a for a in _attempts(ledger, ids[0])
                                        if a.outcome is AttemptOutcome.EXPIRED), None), 20, "expiry via node 2", interval=0.02)
            assert "by the second RPC node" in first.detail, first.detail
        else:
            time.sleep(4)  # 10 polls' worth of stale "not found" answers
            attempts = _attempts(ledger, ids[0])
            assert [a.outcome for a in attempts] == [AttemptOutcome.PENDING], "re-signed on a lagging answer"
            stale = executor.service.metrics.rpc_errors.labels(
                scenario.strategy, "getSignatureStatuses", "RPC_ERROR")._value.get()
            assert stale >= 3
            local_chain.remove_fault(lag)  # a current answer: now the expiry is proven
        local_chain.remove_fault(timeouts)
        trades = wait_terminal(ledger, ids, 60)
    local_chain.reset_faults()
    trade = trades[0]
    assert trade.state is TradeState.CONFIRMED
    assert [a.outcome for a in trade.attempts] == [AttemptOutcome.EXPIRED, AttemptOutcome.LANDED]
    assert set(local_chain.swap_signatures(scenario.vault)) - swaps_before == {trade.attempts[1].signature}
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)
