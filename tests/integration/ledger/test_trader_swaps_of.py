"""TraderSwapStore.swaps_of: many wallets' stored swaps in one query, each in chain order."""

from __future__ import annotations

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, VAULT
from tests.unit.controller.histories import DAY, round_trips, steady
from xorj.ledger.trader_swaps import TraderSwapStore

NOW = 1_790_000_000


def test_swaps_of_reads_many_wallets_like_one_by_one(ledger) -> None:
    store = TraderSwapStore(ledger)
    store.record(PUBKEY_A, round_trips(PUBKEY_A, steady(5), first=NOW - 10 * DAY, last=NOW), None)
    store.record(PUBKEY_B, round_trips(PUBKEY_B, steady(3), first=NOW - 5 * DAY, last=NOW), None)
    got = store.swaps_of([PUBKEY_A, PUBKEY_B, VAULT])
    assert got[PUBKEY_A] == store.swaps(PUBKEY_A) and len(got[PUBKEY_A]) == 10
    assert got[PUBKEY_B] == store.swaps(PUBKEY_B) and len(got[PUBKEY_B]) == 6
    assert got[VAULT] == []
    assert store.swaps_of([]) == {}
