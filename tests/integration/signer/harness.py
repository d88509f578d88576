"""A real ``xorj signer`` process for integration tests: keys in a directory of keypair files, the
session's ledger and local chain, served on a Unix socket (in a short /tmp path: a socket path is at
most 107 bytes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx


class SignerProcess:
    def __init__(self, *, ledger_dsn: str, rpc_url: str, key_files: Iterable[str | Path], log_path: Path,
                 **extra: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="xsig"))
        self.keys_dir = self.home / "keys"
        self.keys_dir.mkdir()
        for file in key_files:
            self.add_key(file)
        self.socket = self.home / "signer.sock"
        self.log_path = log_path
        env = {**os.environ, "XORJ_SIGNER_SOCKET": str(self.socket), "XORJ_SIGNER_LEDGER_DSN": ledger_dsn,
               "XORJ_SIGNER_RPC_URL": rpc_url, "XORJ_SIGNER_KEYS_DIR": str(self.keys_dir),
               "XORJ_SIGNER_KEYS_CHECK_SECONDS": "0", "XORJ_SIGNER_RPC_TIMEOUT_SECONDS": "3",
               **{f"XORJ_SIGNER_{k.upper()}": v for k, v in extra.items()}}
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", "from xorj.cli import main; main()", "signer"],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def add_key(self, file: str | Path) -> None:
        shutil.copy(file, self.keys_dir / Path(file).name)

    def client(self) -> httpx.Client:
        """A plain HTTP client on the socket: what any process that can reach it may send."""
        return httpx.Client(base_url="http://signer", transport=httpx.HTTPTransport(uds=str(self.socket)),
                            timeout=30)

    def wait_serving(self, timeout: float = 30.0) -> SignerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"signer exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            if self.socket.exists():
                with contextlib.suppress(httpx.HTTPError), self.client() as http:
                    http.get("/v1/vaults/none")
                    return self
            time.sleep(0.05)
        raise AssertionError(f"signer did not serve: {self.log_path.read_text()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> SignerProcess:
        return self.wait_serving()

    def __exit__(self, *exc: object) -> None:
        self.close()
