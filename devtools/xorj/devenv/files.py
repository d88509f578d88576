"""Files only their owner reads: keys, keypairs, kubeconfigs with tokens, DSNs with passwords."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: bytes | str) -> None:
    """Write ``content`` to ``path``, readable and writable by its owner only. The mode is set on the
    open file too: ``O_CREAT``'s mode applies only to a new file, and an older one may be looser."""
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
