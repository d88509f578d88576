"""Helpers of the watcher's integration tests: a simulated lead trader on the session's local chain
(its own key, funded through the chain's faucet, swapping on the local market as `xorj dev leaders`
does), TradingStrategy objects following it, and a watcher wired to the real chain, price API and
ledger."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from solders.keypair import Keypair

from tests.integration.executor.harness import rpc, served_port
from tests.integration.ledger.helpers import on_the_loop
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc
from xorj.devenv.leaders import LeaderWallet, LocalMarket
from xorj.domain.leaders import LeaderStyle
from xorj.traders.history import ChainHistory
from xorj.watcher.follows import StaticFollowBook
from xorj.watcher.metrics import WatcherMetrics
from xorj.watcher.pipeline import Watcher
from xorj.watcher.sources import PollingSource


class Leader:
    """A lead trader of the test's own on the local chain."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.wallet = LeaderWallet(LeaderStyle.STEADY, Keypair(), Path("/nonexistent"))

    @property
    def pubkey(self) -> str:
        return self.wallet.pubkey

    async def _market(self, http: httpx.AsyncClient) -> LocalMarket:
        market = LocalMarket(self.chain.rpc_url, http)
        await market.connect()
        return market

    async def fund(self) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            market = await self._market(http)
            await market.admin("/fund", {"pubkey": self.pubkey, "lamports": 10**9,
                                         "tokens": {"USDC": 100_000 * 10**6, "SOL": 0}})

    async def swap(self, input_symbol: str, output_symbol: str, amount: int) -> str:
        """One swap signed by the leader, waited until confirmed; its signature."""
        async with httpx.AsyncClient(timeout=30) as http:
            market = await self._market(http)
            signature, _ = await market.swap(self.wallet, input_symbol, output_symbol, amount)
            await market.wait_confirmed([signature])
            return signature


def strategy_doc(namespace: str, name: str, vault: str, leaders: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"traders": leaders, "vault": {"publicKey": vault, "secretName": f"{name}-vault"},
                     "endpoints": {"rpcUrl": "http://127.0.0.1:1/", "swapApiUrl": "http://127.0.0.1:1/"},
                     **spec}}


def unique_namespace() -> str:
    return f"w-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def wired_watcher(chain: Any, ledger: Any, docs: list[dict[str, Any]], *, metrics: WatcherMetrics | None = None,
                        baseline_seconds: int = 120):
    """A watcher and its polling source on the real chain, price API and ledger (``ledger``'s database,
    through the asyncio ledger the watcher runs its transactions on)."""
    cash = frozenset({chain.mints["USDC"]})
    book = StaticFollowBook(docs, cash_mints=cash)
    metrics = metrics or WatcherMetrics()
    prices = JupiterPriceClient(price_api_url_for(chain.swap_api_url))
    async with on_the_loop(ledger, name="xorj-watcher") as on_loop, SolanaRpc(chain.rpc_url) as solana:
        watcher = Watcher(rpc=solana, prices=prices, ledger=on_loop, book=book, metrics=metrics)
        poller = PollingSource(ChainHistory(solana), on_loop, book, metrics, interval=0.2,
                               baseline_seconds=baseline_seconds)
        try:
            yield watcher, poller
        finally:
            await prices.close()


def metric_value(metric: Any, **labels: str) -> float:
    """A watcher metric's current value (of the labelled child when labels are given)."""
    return metric.labels(**labels)._value.get() if labels else metric._value.get()


def landed_slot(url: str, signature: str) -> int:
    status = rpc(url, "getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])["value"][0]
    assert status is not None, signature
    return status["slot"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class WatcherProcess:
    """``xorj watcher`` as a child process, logging to ``log_path`` (its port written next to it)."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port_file = log_path.with_suffix(".port")
        self.port_file.unlink(missing_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", "from xorj.cli import main; main()", "watcher"],
                                     env={**os.environ, **env, "XORJ_WATCHER_HTTP_PORT_FILE": str(self.port_file)},
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def port(self, timeout: float = 30.0) -> int:
        return served_port(self.proc, self.port_file, self.log_path, "watcher", timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()
