"""A lead swap made while the ledger is down (SIGKILLed Postgres) is copied once the ledger is back:
the push report that arrived during the outage fails without a crash, the polling round fails and
keeps its cursor, and the first round after the restart accepts it, once."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.watcher.helpers import (
    metric_value,
    run,
    strategy_doc,
    wired_watcher,
)
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger, migrate, statements
from xorj.ledger.lead_signals import LeadSignalStore
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Candidate, Outcome

pytestmark = [pytest.mark.chain]


def test_a_lead_swap_during_a_ledger_outage_is_copied_after_it(local_chain, disposable_postgres_server, leader,
                                                               ns) -> None:
    server = disposable_postgres_server
    dsn = server.create_database("ledger")
    migrate(dsn)
    docs = [strategy_doc(ns, "s", local_chain.take_vault(), [leader.pubkey], sizing={"mode": "fixedUsd", "fixedUsd": 2})]
    metrics = WatcherMetrics()
    with Ledger.connect(dsn, max_size=2, acquire_timeout=2.0) as ledger:
        store = LeadSignalStore(ledger)

        async def scenario() -> tuple[str, Outcome]:
            async with wired_watcher(local_chain, ledger, docs, metrics=metrics) as (watcher, poller):
                await poller.poll_round(watcher.process)
                server.kill()
                signature = await leader.swap("USDC", "SOL", 2 * 10**6)
                with pytest.raises(Exception, match="(?i)ledger|connect|unavailable"):
                    await watcher.process(Candidate(leader.pubkey, signature, "webhook"))
                await poller.poll_round(watcher.process)  # fails for this leader, cursor kept
                server.start()
                # the watcher's own (asyncio) pool reconnects on its own schedule: wait until it answers
                for _ in range(100):
                    try:
                        await watcher.ledger.run(statements.one("SELECT 1"))
                        break
                    except LedgerUnavailableError:
                        await asyncio.sleep(0.2)
                await poller.poll_round(watcher.process)
                again = await watcher.process(Candidate(leader.pubkey, signature, "webhook"))
                return signature, again

        signature, again = run(scenario())
        assert again is Outcome.DUPLICATE
        [accepted] = store.signals(leader.pubkey)
        assert (accepted.signature, accepted.source) == (signature, "poll")
        assert sum(ledger.counts_by_state(f"{ns}/s").values()) == 1
        assert metric_value(metrics.rpc_errors, method="ledger", reason="LEDGER_UNAVAILABLE") >= 1
