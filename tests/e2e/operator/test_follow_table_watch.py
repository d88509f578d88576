"""The watcher's follow table against the real Kubernetes API server: a TradingStrategy applied,
edited or deleted changes who is followed within seconds (a watch on the kind), not at the next
periodic re-list, which is kept as the fallback (set to five minutes here, so only the watch can
pass the test)."""

from __future__ import annotations

import asyncio
import time

import kubernetes
import pytest

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C
from xorj.watcher.follows import KubeFollowBook

from .conftest import Kubectl
from .manifests import strategy

pytestmark = pytest.mark.cluster

PROMPTLY = 10.0  # seconds; the re-list fallback is 300


async def _followed(book: KubeFollowBook, wanted: frozenset[str], what: str) -> float:
    started = time.monotonic()
    while book.leaders() != wanted:
        assert time.monotonic() - started < PROMPTLY, f"{what}: following {sorted(book.leaders())} after {PROMPTLY}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def test_strategy_changes_reach_the_follow_table_within_seconds(kube: Kubectl) -> None:
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(kube.cluster.kubeconfig)))
    async def no_scores() -> list:
        return []

    book = KubeFollowBook(api, no_scores, refresh_seconds=300, namespaces=[kube.namespace], watch_timeout_seconds=30)

    async def scenario() -> int:
        task = asyncio.create_task(book.run())
        try:
            await asyncio.wait_for(book.refreshed.wait(), 30)
            assert book.leaders() == frozenset()
            kube.apply(strategy("follows-a", traders=[PUBKEY_A]))
            await _followed(book, frozenset({PUBKEY_A}), "a strategy applied")
            kube.apply(strategy("follows-a", traders=[PUBKEY_B, PUBKEY_C]))
            await _followed(book, frozenset({PUBKEY_B, PUBKEY_C}), "its traders edited")
            kube.run("delete", "tradingstrategy", "follows-a")
            await _followed(book, frozenset(), "the strategy deleted")
            return book.refreshes
        finally:
            task.cancel()

    refreshes = asyncio.run(scenario())
    assert refreshes <= 12  # re-listed on changes (a few events each), not in a loop
