"""Helpers for the executor's integration tests: admit trades into the real ledger, run executors
(in this process or as real `xorj executor` processes), and read the truth from the real chain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from xorj.domain.risk import VaultLimits
from xorj.domain.trades import Trade, TradeState
from xorj.ledger.records import TradeIntent
from xorj.ledger.repository import Ledger
from xorj.ledger.vaults import register_vault


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    """One JSON-RPC call to the chain, for assertions (the test's own eyes, not the executor's)."""
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                        timeout=30).json()
    if "error" in answer:
        raise AssertionError(f"{method}: {answer['error']}")
    return answer["result"]


def token_balance(url: str, owner: str, mint: str) -> int:
    ata = get_associated_token_address(Pubkey.from_string(owner), Pubkey.from_string(mint))
    info = rpc(url, "getAccountInfo", [str(ata), {"encoding": "base64", "commitment": "processed"}])["value"]
    if info is None:
        return 0
    return int(rpc(url, "getTokenAccountBalance", [str(ata), {"commitment": "processed"}])["value"]["amount"])


def vault_transactions(url: str, vault: str) -> list[dict[str, Any]]:
    """Every landed transaction of ``vault`` (newest first), at confirmed commitment."""
    out: list[dict[str, Any]] = []
    before = None
    while True:
        config: dict[str, Any] = {"limit": 1000, "commitment": "confirmed"}
        if before:
            config["before"] = before
        page = rpc(url, "getSignaturesForAddress", [vault, config])
        out.extend(page)
        if len(page) < 1000:
            return out
        before = page[-1]["signature"]


def successful_fills(url: str, vault: str) -> set[str]:
    """Signatures of the vault's swaps that landed and succeeded: the fills, counted on the chain."""
    return {tx["signature"] for tx in vault_transactions(url, vault) if tx["err"] is None}


def wait_for_finalized(url: str, signatures: set[str], timeout: float = 60.0) -> None:
    """Wait until each landed signature is visible at confirmed commitment (getSignaturesForAddress
    reads at confirmed, so a just-processed fill would otherwise be missed)."""
    deadline = time.monotonic() + timeout
    pending = list(signatures)
    while pending and time.monotonic() < deadline:
        statuses = rpc(url, "getSignatureStatuses", [pending[:256], {"searchTransactionHistory": True}])["value"]
        pending = [s for s, st in zip(pending[:256], statuses)
                   if st is None or st["confirmationStatus"] == "processed"] + pending[256:]
        if pending:
            time.sleep(0.2)


@dataclass
class Scenario:
    strategy: str
    vault: str
    keypair_file: str
    input_mint: str
    output_mint: str


def admit(ledger: Ledger, scenario: Scenario, n: int, amount: int, *, notional_usd: Decimal = Decimal(10),
          max_slippage_bps: int | None = None) -> list[int]:
    ids = []
    for _ in range(n):
        result = ledger.admit_trade(TradeIntent(
            strategy=scenario.strategy, vault=scenario.vault, lead_signature=f"lead-{uuid.uuid4().hex}",
            lead_trader="LeadTrader1111111111111111111111111111111111", input_mint=scenario.input_mint,
            output_mint=scenario.output_mint, amount=amount, max_slippage_bps=max_slippage_bps,
            notional_usd=notional_usd))
        assert result.created
        ids.append(result.trade_id)
    return ids


def wait_terminal(ledger: Ledger, ids: list[int], timeout: float) -> list[Trade]:
    deadline = time.monotonic() + timeout
    while True:
        trades = [ledger.get_trade(i) for i in ids]
        if all(t.state.is_terminal for t in trades):
            return trades
        if time.monotonic() > deadline:
            states = {t.trade_id: (t.state.value, len(t.attempts)) for t in trades if not t.state.is_terminal}
            raise AssertionError(f"trades not terminal after {timeout}s: {states}")
        time.sleep(0.2)


def assert_chain_matches_ledger(url: str, scenario: Scenario, trades: list[Trade], fills_before: set[str],
                                balances_before: tuple[int, int]) -> None:
    """The exactly-once check, against the chain: the vault's successful swaps since the test began
    are exactly the CONFIRMED trades' final signatures, and its balances moved by exactly their amounts."""
    confirmed = [t for t in trades if t.state is TradeState.CONFIRMED]
    finals = {t.final_signature for t in confirmed}
    wait_for_finalized(url, finals)
    new_fills = successful_fills(url, scenario.vault) - fills_before
    assert new_fills == finals, (f"fills on chain {len(new_fills)} vs confirmed trades {len(finals)}; "
                                 f"extra on chain: {sorted(new_fills - finals)[:5]}, "
                                 f"confirmed but not on chain: {sorted(finals - new_fills)[:5]}")
    spent = balances_before[0] - token_balance(url, scenario.vault, scenario.input_mint)
    assert spent == sum(t.amount for t in confirmed), "input balance moved by other than the confirmed amounts"
    received = token_balance(url, scenario.vault, scenario.output_mint) - balances_before[1]
    landed = {a.signature: a for t in confirmed for a in t.attempts}
    assert received == sum(landed[t.final_signature].quote_out_amount for t in confirmed)


def balances(url: str, scenario: Scenario) -> tuple[int, int]:
    return (token_balance(url, scenario.vault, scenario.input_mint),
            token_balance(url, scenario.vault, scenario.output_mint))


def executor_env(*, dsn: str, scenario: Scenario, rpc_url: str, swap_api_url: str, **extra: Any) -> dict[str, str]:
    env = {
        "XORJ_LEDGER_DSN": dsn, "XORJ_STRATEGY": scenario.strategy, "XORJ_RPC_URL": rpc_url,
        "XORJ_SWAP_API_URL": swap_api_url, "XORJ_VAULT_KEYPAIR_FILE": scenario.keypair_file,
        "XORJ_HTTP_HOST": "127.0.0.1", "XORJ_HTTP_PORT": "0", "XORJ_LEASE_SECONDS": "4",
        "XORJ_POLL_INTERVAL_SECONDS": "0.2", "XORJ_REBROADCAST_INTERVAL_SECONDS": "1.0",
        "XORJ_RPC_TIMEOUT_SECONDS": "2", "XORJ_SEND_TIMEOUT_SECONDS": "2", "XORJ_SWAP_API_TIMEOUT_SECONDS": "3",
        "XORJ_SHUTDOWN_GRACE_SECONDS": "5", "XORJ_CLAIM_INTERVAL_SECONDS": "0.1",
        # The session chain's vaults are shared by every test that trades (each test has its own
        # ledger): a vault's SOL share grows with the run, so the rule that depends on it is lifted
        # here, and the tests of that rule set it explicitly.
        "XORJ_MAX_POSITION_SHARE": "1",
    }
    env.update({f"XORJ_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def served_port(proc: subprocess.Popen, port_file: Path, log_path: Path, what: str, timeout: float) -> int:
    """The HTTP port a child ``xorj`` process wrote to ``port_file`` once serving; fails with the end of
    its log if it exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text():
            return int(port_file.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}: {log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{what} did not start serving")


class ExecutorProcess:
    """A real `xorj executor` process (its stderr, JSON logs, goes to a file)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.port_file = log_path.with_suffix(".port")
        full_env = {**os.environ, **env, "XORJ_HTTP_PORT_FILE": str(self.port_file)}
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", "from xorj.cli import main; main()", "executor"],
                                     env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def port(self, timeout: float = 20.0) -> int:
        return served_port(self.proc, self.port_file, self.log_path, "executor", timeout)

    def sigkill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def sigterm(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.sigkill()
        self._log.close()


@contextlib.contextmanager
def executors(n: int, env: dict[str, str], tmp_path: Path, name: str = "executor") -> Iterator[list[ExecutorProcess]]:
    procs = [ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"{name}-{i}"}, tmp_path / f"{name}-{i}-{uuid.uuid4().hex[:6]}.log")
             for i in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.close()


def register_vaults(ledger: Ledger, strategy: str, scenarios: Sequence[Scenario],
                    limits_of: Callable[[Scenario], VaultLimits] = lambda _: VaultLimits()) -> None:
    """Each scenario's vault as a Vault object of ``strategy`` in the ledger's registry."""
    for i, scenario in enumerate(scenarios):
        registration = ledger.run(register_vault(strategy, scenario.vault, vault_object=f"ns/vault-{i}",
                                                 limits=limits_of(scenario)))
        assert registration.conflict is None, registration


def keys_directory(directory: Path, scenarios: Sequence[Scenario]) -> Path:
    """``directory`` as a keys directory (XORJ_VAULT_KEYS_DIR): each scenario's Solana-CLI keypair
    file, named by its vault's key."""
    directory.mkdir(parents=True, exist_ok=True)
    for scenario in scenarios:
        shutil.copy(scenario.keypair_file, directory / f"{scenario.vault}.json")
    return directory


def kill_randomly(procs: list[ExecutorProcess], env: dict[str, str], tmp_path: Path, rng: random.Random, *,
                  seconds: float, pause: tuple[float, float], name: str, done: Callable[[], bool]) -> int:
    """For up to ``seconds``: every ``pause`` (random) SIGKILL one of ``procs`` at random and start a
    fresh executor in its place, until ``done()``. Returns how many were killed."""
    kills = 0
    deadline = time.monotonic() + seconds
    generation = len(procs)
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(*pause))
        victim = rng.randrange(len(procs))
        procs[victim].sigkill()
        kills += 1
        procs[victim] = ExecutorProcess({**env, "XORJ_EXECUTOR_ID": f"{name}-{generation}"},
                                        tmp_path / f"{name}-{generation}.log")
        generation += 1
        if done():
            break
    return kills


def logs_of(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("*.log")))


class InProcessExecutor:
    """An :class:`ExecutorService` on its own event loop in a thread (no signal handlers), for tests
    that need to look inside (metrics, health) or start faster than a process."""

    def __init__(self, env: dict[str, str]) -> None:
        import threading

        from xorj.executor.service import ExecutorService
        from xorj.executor.settings import load_settings

        self.settings = load_settings(**{k.removeprefix("XORJ_").lower(): v for k, v in env.items()
                                         if k.startswith("XORJ_")})
        self.service: ExecutorService | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from xorj.executor.service import ExecutorService

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self.service = ExecutorService(self.settings)
            self._ready.set()
            await self.service.run(install_signal_handlers=False)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> InProcessExecutor:
        self._thread.start()
        self._ready.wait(30)
        if self.error:
            raise self.error
        return self

    def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None and self.service is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.service.request_stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "executor did not stop"
        if self.error:
            raise self.error

    def __exit__(self, *exc: object) -> None:
        self.stop()
