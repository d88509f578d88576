"""The vault keypair, read from a file (a mounted Secret), in the Solana CLI format (a JSON array of
64 byte values). The secret never appears in an error, a log line or a repr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj.errors import InvalidInputError


class VaultKey:
    """Holds the keypair; ``repr``/``str`` show only the public key."""

    __slots__ = ("_keypair",)

    def __init__(self, keypair: Keypair) -> None:
        self._keypair = keypair

    @property
    def pubkey(self) -> Pubkey:
        return self._keypair.pubkey()

    def sign_message(self, message: bytes) -> Signature:
        return self._keypair.sign_message(message)

    def __repr__(self) -> str:
        return f"VaultKey(pubkey={self._keypair.pubkey()})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickled into a subprocess or a cache by accident
        raise TypeError("VaultKey cannot be pickled")


def load_vault_key(path: str | Path, *, field: str = "vault_keypair_file") -> VaultKey:
    """Read a keypair file. Errors name the field and the rule, never the file's content."""
    file = Path(path)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise InvalidInputError(f"{field}: file {file} does not exist") from None
    except OSError as exc:
        raise InvalidInputError(f"{field}: file {file} cannot be read ({exc.strerror})") from None
    try:
        values = json.loads(text)
    except ValueError:
        raise InvalidInputError(f"{field}: file {file} is not JSON (expected an array of 64 byte values)") from None
    if not isinstance(values, list) or len(values) != 64 or not all(
            isinstance(v, int) and 0 <= v <= 255 for v in values):
        raise InvalidInputError(f"{field}: file {file} must hold a JSON array of 64 integers 0..255")
    try:
        keypair = Keypair.from_bytes(bytes(values))
    except Exception:  # noqa: BLE001 - solders has no public error type for a bad key
        raise InvalidInputError(f"{field}: file {file} does not hold a valid ed25519 keypair "
                                f"(the last 32 bytes must be the public key of the first 32)") from None
    finally:
        del values, text
    return VaultKey(keypair)


def check_vault_pubkey(key: VaultKey, expected: str | None, *, field: str = "XORJ_VAULT_PUBKEY") -> None:
    """Refuse to run with another vault's key than the strategy names (a mis-mounted Secret)."""
    if expected is not None and str(key.pubkey) != expected:
        raise InvalidInputError(f"{field}: the keypair file holds the key of {key.pubkey}, not of {expected}")
