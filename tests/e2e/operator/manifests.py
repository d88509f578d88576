"""Manifests for the operator's e2e tests."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from solders.signature import Signature

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, VAULT
from xorj.controller.models import Vault, VaultSpec


def signature(seed: str) -> str:
    """A well-formed (64-byte, base58) transaction signature derived from ``seed``."""
    digest = hashlib.sha512(seed.encode()).digest()
    return str(Signature.from_bytes(digest))


def strategy(name: str, **spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "traders": [PUBKEY_A],
        "vault": {"publicKey": VAULT, "secretName": "vault-keypair"},
        "endpoints": {"rpcUrl": "http://127.0.0.1:8899", "swapApiUrl": "http://127.0.0.1:8080"},
    }
    spec.update(spec_overrides)
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "metadata": {"name": name}, "spec": spec}


def vault(name: str, strategy_name: str, public_key: str, secret_name: str = "vault-keypair",
          **spec_overrides: Any) -> dict[str, Any]:
    """A Vault, built through the operator's own model (what it writes is what the operator reads)."""
    spec = VaultSpec.model_validate({"strategy": strategy_name, "publicKey": public_key, "secretName": secret_name,
                                     **spec_overrides})
    return Vault(metadata={"name": name}, spec=spec).to_wire()


def copytrade(name: str, strategy_name: str, lead_sig: str, **spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "strategy": strategy_name,
        "leadTrader": PUBKEY_A,
        "leadSignature": lead_sig,
        "inputMint": PUBKEY_B,
        "outputMint": PUBKEY_C,
        "amount": 1000,
    }
    spec.update(spec_overrides)
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
            "metadata": {"name": name}, "spec": spec}


# The strategies these tests create that expect executors: the test namespace's vault Secret is bound
# to them (the annotation the operator requires before it mounts a Secret into executors).
BOUND_STRATEGIES = ("alpha", "topn", "later", "good", "live")


def secret(name: str, data: dict[str, str], bound_to: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Secret; ``bound_to``: the strategies it is bound to (trading.xorj.io/strategies)."""
    metadata: dict[str, Any] = {"name": name}
    if bound_to:
        metadata["annotations"] = {"trading.xorj.io/strategies": ",".join(bound_to)}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
