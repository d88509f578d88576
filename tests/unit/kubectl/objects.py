"""CopyTrade and TradingStrategy objects as the API server returns them, with statuses computed by the
operator's own status code (xorj.controller.copytrade.status) from ledger records, so the plugin is tested
against exactly the shape the operator writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.controller.factories import PUBKEY_A, PUBKEY_B, PUBKEY_C, VAULT, copytrade_spec, strategy_spec
from xorj.controller.copytrade import status as st
from xorj.domain.trades import Attempt, AttemptOutcome, ReasonCode, Trade, TradeState

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
SIG_1 = "3" * 87 + "A"
SIG_2 = "4" * 87 + "B"


def attempt(trade_id: int, no: int, sig: str, outcome: AttemptOutcome, reason: ReasonCode | None = None) -> Attempt:
    return Attempt(attempt_id=no, trade_id=trade_id, attempt_no=no, signature=sig, raw_tx=b"x",
                   last_valid_block_height=100, slippage_bps=100 + 50 * (no - 1), quote_out_amount=None,
                   outcome=outcome, reason=reason, detail=None, created_at=NOW - timedelta(minutes=10 - no),
                   resolved_at=None)


def trade(trade_id: int, state: TradeState, *, created: datetime, attempts: tuple[Attempt, ...] = (),
          reason: ReasonCode | None = None, detail: str | None = None, final: str | None = None,
          submitted: datetime | None = None, finished: datetime | None = None) -> Trade:
    return Trade(trade_id=trade_id, strategy="ns1/alpha", vault=VAULT, lead_signature=f"lead{trade_id}",
                 lead_trader=PUBKEY_A, input_mint=PUBKEY_B, output_mint=PUBKEY_C, amount=1000,
                 max_slippage_bps=None, notional_usd=None, copytrade=None, state=state, reason=reason,
                 detail=detail, final_signature=final, lease_owner=None, lease_expires_at=None,
                 created_at=created, updated_at=created, submitted_at=submitted, finished_at=finished,
                 attempts=attempts)


def copytrade(name: str, t: Trade, strategy: str = "alpha", namespace: str = "ns1") -> dict[str, Any]:
    status = st.copytrade_status(trade=t, previous=None, generation=1, now=NOW)
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": t.created_at.isoformat()},
            "spec": copytrade_spec(strategy=strategy), "status": status.to_wire()}


def confirmed_after_slippage(trade_id: int = 7) -> Trade:
    return trade(trade_id, TradeState.CONFIRMED, created=NOW - timedelta(minutes=30), final=SIG_2,
                 submitted=NOW - timedelta(minutes=29), finished=NOW - timedelta(minutes=28),
                 attempts=(attempt(trade_id, 1, SIG_1, AttemptOutcome.FAILED_ON_CHAIN, ReasonCode.SLIPPAGE_EXCEEDED),
                           attempt(trade_id, 2, SIG_2, AttemptOutcome.LANDED)))


def strategy(name: str = "alpha", namespace: str = "ns1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy",
            "metadata": {"name": name, "namespace": namespace}, "spec": strategy_spec(**spec)}


__all__ = ["NOW", "SIG_1", "SIG_2", "attempt", "confirmed_after_slippage", "copytrade", "replace", "strategy", "trade"]
