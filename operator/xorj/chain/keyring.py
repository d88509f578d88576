"""The vault keys a signer holds: one keypair file (``XORJ_VAULT_KEYPAIR_FILE``, one vault), or a
directory of keypair files, one per vault, in the Solana CLI format (a mounted Secret with one key
per vault). A directory is read again when it changes (a Secret's update swaps its ``..data``
link), so a vault added or removed restarts nothing. Keys are found by their public key; no key
ever appears in a log line, an error or a repr (:class:`~xorj.chain.keys.VaultKey`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from xorj.chain.keys import VaultKey, load_vault_key
from xorj.errors import InvalidInputError

log = logging.getLogger(__name__)

# A directory's fingerprint: each entry's name, inode, size and modification time (links followed)
_Fingerprint = tuple[tuple[str, int, int, int], ...]


def _fingerprint(directory: Path) -> _Fingerprint:
    entries = []
    with os.scandir(directory) as listing:
        for entry in listing:
            if entry.name.startswith("."):  # a Secret volume's ..data and ..<timestamp> entries
                continue
            try:
                stat = entry.stat()  # follows the Secret volume's links to the current files
            except OSError:
                continue  # removed while listing: the next look sees the new state
            entries.append((entry.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


class Keyring:
    """Vault keys by public key (base58). Read a directory with :meth:`from_directory`, one file with
    :meth:`from_file`, or hand keys over with :meth:`of` (tests, a key already loaded)."""

    def __init__(self, keys: Mapping[str, VaultKey], *, directory: Path | None = None,
                 check_interval: float = 1.0, field: str = "vault_keys_dir",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = dict(keys)
        self._directory = directory
        self._field = field
        self._check_interval = check_interval
        self._clock = clock
        self._checked_at = clock()
        self._fingerprint: _Fingerprint = _fingerprint(directory) if directory is not None else ()

    @classmethod
    def of(cls, *keys: VaultKey) -> Keyring:
        return cls({str(k.pubkey): k for k in keys})

    @classmethod
    def from_file(cls, path: str | Path, *, field: str = "vault_keypair_file") -> Keyring:
        """One vault's keypair file (never re-read: a one-vault executor restarts on a new key)."""
        return cls.of(load_vault_key(path, field=field))

    @classmethod
    def from_directory(cls, path: str | Path, *, field: str = "vault_keys_dir",
                       check_interval: float = 1.0) -> Keyring:
        """Every keypair file in ``path`` (names starting with '.' are skipped). A bad file is an
        error naming ``field`` and the file, never its content."""
        directory = Path(path)
        if not directory.is_dir():
            raise InvalidInputError(f"{field}: {directory} is not a directory")
        keys = cls._read(directory, field, strict=True)
        return cls(keys, directory=directory, check_interval=check_interval, field=field)

    @staticmethod
    def _read(directory: Path, field: str, *, strict: bool) -> dict[str, VaultKey]:
        keys: dict[str, VaultKey] = {}
        for name, *_ in _fingerprint(directory):
            file = directory / name
            if not file.is_file():
                continue
            try:
                key = load_vault_key(file, field=field)
            except InvalidInputError as exc:
                if strict:
                    raise
                # a bad file in an updated Secret: the other vaults keep signing; the error says
                # which file and which rule, never the content
                log.warning("vault key file skipped", extra={"problem": str(exc)})
                continue
            keys[str(key.pubkey)] = key
        return keys

    def refresh(self, *, force: bool = False) -> bool:
        """Read the directory again if it changed (at most once per check interval unless ``force``).
        Returns whether the keys were read again."""
        if self._directory is None:
            return False
        now = self._clock()
        if not force and now - self._checked_at < self._check_interval:
            return False
        self._checked_at = now
        try:
            fingerprint = _fingerprint(self._directory)
        except OSError as exc:
            log.warning("vault keys directory unreadable; keeping the keys held",
                        extra={"problem": f"{self._field}: {self._directory}: {exc.strerror}"})
            return False
        if fingerprint == self._fingerprint:
            return False
        before = set(self._keys)
        self._keys = self._read(self._directory, self._field, strict=False)
        self._fingerprint = fingerprint
        log.info("vault keys read again", extra={"vaults": len(self._keys),
                                                 "added": sorted(set(self._keys) - before)[:20],
                                                 "removed": sorted(before - set(self._keys))[:20]})
        return True

    def get(self, vault: str) -> VaultKey | None:
        """The key of ``vault`` (base58 public key), or None when not held (after a look at the
        directory, if it is time for one)."""
        self.refresh()
        return self._keys.get(vault)

    @property
    def vaults(self) -> frozenset[str]:
        return frozenset(self._keys)

    def describe(self, limit: int = 3) -> str:
        """Which vaults are held, for an error or a log line: public keys only, at most ``limit``."""
        held = sorted(self._keys)
        if not held:
            return "no vault key"
        if len(held) == 1:
            return f"the key of vault {held[0]}"
        shown = ", ".join(held[:limit]) + (", ..." if len(held) > limit else "")
        return f"the keys of {len(held)} vaults ({shown})"

    def __repr__(self) -> str:
        return f"Keyring({self.describe()})"
