"""The follow table: TradingStrategy objects -> leader -> followers with their copy policy (sizing,
filters, paused), explicit and topN-of-a-pool; a strategy that does not validate is left out."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, VAULT
from xorj.domain.copy_signals import CopyMode
from xorj.watcher.follows import StaticFollowBook

CASH = frozenset({PUBKEY_C})


def strategy(name: str, namespace: str = "ns", **spec: object) -> dict:
    return {"kind": "TradingStrategy", "metadata": {"namespace": namespace, "name": name},
            "spec": {"vault": {"publicKey": VAULT, "secretName": "v"},
                     "endpoints": {"rpcUrl": "https://rpc.example", "swapApiUrl": "https://swap.example"}, **spec}}


def test_explicit_and_pool_followers_with_their_policies() -> None:
    pool = {"kind": "TraderPool", "metadata": {"namespace": "ns", "name": "p"},
            "spec": {"wallets": [PUBKEY_A, PUBKEY_B]},
            "status": {"ranks": [{"rank": 1, "wallet": PUBKEY_B, "score": 80, "status": "ELIGIBLE"},
                                 {"rank": 2, "wallet": PUBKEY_A, "score": 60, "status": "ELIGIBLE"}]}}
    book = StaticFollowBook([
        strategy("explicit", traders=[PUBKEY_A], sizing={"mode": "vaultPercent", "vaultPercent": 2.5, "maxUsd": 50},
                 filters={"denyMints": [PUBKEY_B], "maxSignalAgeSeconds": 30, "minNotionalUsd": 0.5}),
        strategy("best", topN={"count": 1, "pool": "p"}, paused=True, executor={"replicas": 0}),
        strategy("broken", traders=[PUBKEY_A], sizing={"mode": "fixedUsd"}),  # no fixedUsd: left out
        pool,
    ], cash_mints=CASH)
    assert book.leaders() == frozenset({PUBKEY_A, PUBKEY_B})
    [explicit] = book.followers_of(PUBKEY_A)
    assert explicit.strategy_key == "ns/explicit" and explicit.vault == VAULT
    policy = explicit.policy
    assert (policy.mode, policy.vault_percent, policy.max_usd) == (CopyMode.VAULT_PERCENT, Decimal("2.5"), Decimal(50))
    assert policy.deny_mints == frozenset({PUBKEY_B}) and policy.max_signal_age_seconds == 30
    assert policy.min_notional_usd == Decimal("0.5") and policy.cash_mints == CASH
    [best] = book.followers_of(PUBKEY_B)
    assert best.strategy_key == "ns/best" and best.policy.paused
    assert book.followers_of(PUBKEY_C) == []
