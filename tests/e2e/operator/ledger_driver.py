"""Drives trades through the real ledger exactly as an executor's writes would (claim, write-ahead
attempt, resolve, confirm, fail), for tests of the operator's mirror that must not depend on chain
timing. The tests with the real executor and chain are in test_copytrade_executor.py."""

from __future__ import annotations

import os

from xorj.domain.trades import AttemptOutcome, ReasonCode
from xorj.ledger import Ledger, Trade

from .manifests import signature


class LedgerDriver:
    def __init__(self, ledger: Ledger, strategy_key: str, owner: str = "test-executor"):
        self.ledger = ledger
        self.strategy_key = strategy_key
        self.owner = owner
        self.tokens: dict[int, int] = {}  # trade id -> fencing token of our claim on it
        self._trade_of: dict[str, int] = {}  # attempt signature -> trade id

    def claim_all(self) -> list[Trade]:
        trades = self.ledger.claim_trades(self.strategy_key, self.owner, limit=1000, lease_seconds=120)
        self.tokens.update({t.trade_id: t.fencing_token for t in trades})
        return trades

    def submit(self, trade_id: int, slippage_bps: int = 100) -> str:
        sig = signature(f"attempt-{trade_id}-{os.urandom(8).hex()}")
        self.ledger.record_attempt(trade_id, self.owner, sig, b"signed-bytes", 1000, slippage_bps,
                                   fencing_token=self.tokens[trade_id])
        self._trade_of[sig] = trade_id
        return sig

    def slippage_failure(self, sig: str) -> None:
        self.ledger.resolve_attempt(sig, self.owner, AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED,
                                    "custom program error 0x1771", fencing_token=self.tokens[self._trade_of[sig]])

    def confirm(self, trade_id: int, sig: str) -> Trade:
        return self.ledger.confirm_trade(trade_id, self.owner, sig, fencing_token=self.tokens[trade_id])

    def fail(self, trade_id: int, reason: ReasonCode, detail: str) -> Trade:
        return self.ledger.fail_trade(trade_id, self.owner, reason, detail, fencing_token=self.tokens[trade_id])
