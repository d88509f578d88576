"""Valid specs for the controller tests (base58 strings of the right lengths)."""

from __future__ import annotations

from typing import Any

PUBKEY_A = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
PUBKEY_B = "So11111111111111111111111111111111111111112"
PUBKEY_C = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
VAULT = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
SIGNATURE = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


def strategy_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "traders": [PUBKEY_A],
        "vault": {"publicKey": VAULT, "secretName": "vault-keypair"},
        "endpoints": {"rpcUrl": "http://127.0.0.1:8899", "swapApiUrl": "http://127.0.0.1:8080"},
    }
    spec.update(overrides)
    return spec


def copytrade_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "strategy": "alpha",
        "leadTrader": PUBKEY_A,
        "leadSignature": SIGNATURE,
        "inputMint": PUBKEY_B,
        "outputMint": PUBKEY_C,
        "amount": 1_000_000,
    }
    spec.update(overrides)
    return spec


def trader_pool_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"wallets": [PUBKEY_A, VAULT]}
    spec.update(overrides)
    return spec
