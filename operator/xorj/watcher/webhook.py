"""The Helius-enhanced-webhook payload, checked (pure, no I/O).

A delivery is a JSON array of enhanced transactions. Of each entry the watcher takes ONLY the
transaction signature and the followed leaders it names (``feePayer``, and the ``account`` of each
``accountData`` entry): amounts, token transfers and "type: SWAP" are the sender's claims and are
never used. The watcher re-reads the transaction from the chain (getTransaction) before accepting
anything. Anything that is not that shape is refused whole with :class:`InvalidInputError` naming the
field and the rule (the receiver answers 400 and counts it).
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Any

from xorj.errors import InvalidInputError

MAX_ENTRIES = 1000  # Helius batches up to 100; anything far past that is not a delivery
_BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]+$")


def _base58(value: Any, where: str, *, lengths: range) -> str:
    if not isinstance(value, str) or len(value) not in lengths or not _BASE58.match(value):
        raise InvalidInputError(f"{where}: must be a base58 string of {lengths.start}..{lengths.stop - 1} "
                                f"characters, got {str(value)[:100]!r}")
    return value


def leader_signatures(body: Any, followed: Container[str]) -> list[tuple[str, str]]:
    """(leader, signature) pairs of the delivery for leaders in ``followed``, in delivery order."""
    if not isinstance(body, list):
        raise InvalidInputError(f"payload: must be a JSON array of transactions, got {type(body).__name__}")
    if len(body) > MAX_ENTRIES:
        raise InvalidInputError(f"payload: at most {MAX_ENTRIES} transactions, got {len(body)}")
    out: list[tuple[str, str]] = []
    for i, entry in enumerate(body):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"payload[{i}]: must be an object, got {type(entry).__name__}")
        signature = _base58(entry.get("signature"), f"payload[{i}].signature", lengths=range(64, 89))
        named = []
        if entry.get("feePayer") is not None:
            named.append(_base58(entry["feePayer"], f"payload[{i}].feePayer", lengths=range(32, 45)))
        accounts = entry.get("accountData", [])
        if not isinstance(accounts, list):
            raise InvalidInputError(f"payload[{i}].accountData: must be an array")
        for j, account in enumerate(accounts):
            if not isinstance(account, dict):
                raise InvalidInputError(f"payload[{i}].accountData[{j}]: must be an object")
            named.append(_base58(account.get("account"), f"payload[{i}].accountData[{j}].account",
                                 lengths=range(32, 45)))
        for leader in dict.fromkeys(named):
            if leader in followed:
                out.append((leader, signature))
    return out
