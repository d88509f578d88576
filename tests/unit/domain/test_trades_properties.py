"""Property-based tests of the trade state machine: random event sequences, invariants after each.

The oracle here is written independently of xorj.domain.trades: for every random operation it says
whether the operation is legal, and the test checks the module agrees (legal ones succeed, illegal
ones raise and change nothing), then asserts the docs/design.md invariants on the result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from xorj.domain.trades import (
    ALLOWED_TRANSITIONS,
    Attempt,
    AttemptOutcome,
    ReasonCode,
    Trade,
    TradeState,
    confirm,
    fail,
    land,
    new_trade,
    resolve_attempt,
    submit,
)
from xorj.errors import IllegalTransitionError, InvalidInputError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MAX_SLIPPAGE = 300

# outcome -> reasons the oracle considers valid for it (FAILED_ON_CHAIN: what a program can say)
VALID_REASONS = {
    AttemptOutcome.LANDED: {None},
    AttemptOutcome.EXPIRED: {None, ReasonCode.BLOCKHASH_EXPIRED},
    AttemptOutcome.FAILED_ON_CHAIN: {ReasonCode.SLIPPAGE_EXCEEDED, ReasonCode.PROGRAM_ERROR, ReasonCode.INSUFFICIENT_FUNDS},
    AttemptOutcome.NOT_SENT: set(ReasonCode) - {ReasonCode.BLOCKHASH_EXPIRED},
}
RESOLVED_OUTCOMES = [o for o in AttemptOutcome if o is not AttemptOutcome.PENDING]


class TradeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = 0
        self.trade: Trade = new_trade(
            trade_id=1, strategy="s", vault="v", lead_trader="l", lead_signature="lead",
            input_mint="A", output_mint="B", amount=10, max_slippage_bps=MAX_SLIPPAGE, at=T0,
        )
        self.states_seen: list[TradeState] = [TradeState.PENDING]
        self.terminal_snapshot: Trade | None = None
        self.resolved_snapshot: dict[str, Attempt] = {}
        self.signatures_used = 0

    def now(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(seconds=self.clock)

    # -- oracle helpers ----------------------------------------------------------------------------
    def _unresolved(self) -> Attempt | None:
        return next((a for a in self.trade.attempts if a.outcome is AttemptOutcome.PENDING), None)

    def _has_landed(self) -> bool:
        return any(a.outcome is AttemptOutcome.LANDED for a in self.trade.attempts)

    def _apply(self, legal: bool, action) -> None:  # type: ignore[no-untyped-def]
        before = self.trade
        if legal:
            after = action()
            assert isinstance(after, Trade)
            self.trade = after
            if after.state is not self.states_seen[-1]:
                self.states_seen.append(after.state)
        else:
            try:
                action()
            except (IllegalTransitionError, InvalidInputError):
                pass
            else:
                raise AssertionError("an illegal operation was accepted")
            assert self.trade is before

    # -- events --------------------------------------------------------------------------------------
    @rule(bps=st.integers(min_value=1, max_value=MAX_SLIPPAGE + 50), reuse_signature=st.booleans(),
          max_attempts=st.none() | st.integers(min_value=1, max_value=6))
    def sign_new_attempt(self, bps: int, reuse_signature: bool, max_attempts: int | None) -> None:
        number = len(self.trade.attempts) + 1
        if reuse_signature and self.trade.attempts:
            signature = self.trade.attempts[0].signature
        else:
            self.signatures_used += 1
            signature = f"sig{self.signatures_used}"
        last = self.trade.attempts[-1] if self.trade.attempts else None
        legal = (
            (self.trade.state is TradeState.PENDING
             or (self.trade.state is TradeState.SUBMITTED and last is not None
                 and last.outcome in {AttemptOutcome.EXPIRED, AttemptOutcome.FAILED_ON_CHAIN, AttemptOutcome.NOT_SENT}))
            and bps <= MAX_SLIPPAGE
            and not (reuse_signature and self.trade.attempts)
            and (max_attempts is None or number <= max_attempts)
        )
        new = Attempt(trade_id=1, attempt_no=number, signature=signature, raw_tx=b"tx", slippage_bps=bps,
                      last_valid_block_height=100 + number)
        self._apply(legal, lambda: submit(self.trade, new, at=self.now(), max_attempts=max_attempts))

    @rule(outcome=st.sampled_from(RESOLVED_OUTCOMES), reason=st.none() | st.sampled_from(list(ReasonCode)),
          pick_old=st.booleans())
    def resolve(self, outcome: AttemptOutcome, reason: ReasonCode | None, pick_old: bool) -> None:
        unresolved = self._unresolved()
        target = self.trade.attempts[0] if (pick_old and self.trade.attempts) else unresolved
        signature = target.signature if target is not None else "unknown"
        legal = (
            self.trade.state is TradeState.SUBMITTED
            and target is not None
            and target is unresolved
            and reason in VALID_REASONS[outcome]
        )
        self._apply(legal, lambda: resolve_attempt(self.trade, signature, outcome, reason, at=self.now()))

    @rule(which=st.integers(min_value=0, max_value=5))
    def confirm_signature(self, which: int) -> None:
        attempts = self.trade.attempts
        signature = attempts[which % len(attempts)].signature if attempts else "unknown"
        attempt = next((a for a in attempts if a.signature == signature), None)
        legal = (
            self.trade.state is TradeState.SUBMITTED
            and attempt is not None
            and attempt.outcome is AttemptOutcome.LANDED
        )
        self._apply(legal, lambda: confirm(self.trade, signature, at=self.now()))

    @rule()
    def land_pending(self) -> None:
        unresolved = self._unresolved()
        legal = self.trade.state is TradeState.SUBMITTED and unresolved is not None
        signature = unresolved.signature if unresolved is not None else "unknown"
        self._apply(legal, lambda: land(self.trade, signature, at=self.now()))

    @rule(reason=st.sampled_from(list(ReasonCode)))
    def give_up(self, reason: ReasonCode) -> None:
        legal = (
            not self.trade.state.is_terminal
            and self._unresolved() is None
            and not self._has_landed()
        )
        self._apply(legal, lambda: fail(self.trade, reason, "detail", at=self.now()))

    # -- invariants ---------------------------------------------------------------------------------
    @invariant()
    def at_most_one_landed_attempt(self) -> None:
        assert sum(a.outcome is AttemptOutcome.LANDED for a in self.trade.attempts) <= 1

    @invariant()
    def at_most_one_unresolved_attempt(self) -> None:
        assert sum(a.outcome is AttemptOutcome.PENDING for a in self.trade.attempts) <= 1

    @invariant()
    def confirmed_means_exactly_one_landed_and_it_is_final(self) -> None:
        landed = [a for a in self.trade.attempts if a.outcome is AttemptOutcome.LANDED]
        if self.trade.state is TradeState.CONFIRMED:
            assert len(landed) == 1 and landed[0].signature == self.trade.final_signature
        else:
            assert self.trade.final_signature is None

    @invariant()
    def failed_has_a_reason_and_nothing_in_flight(self) -> None:
        if self.trade.state is TradeState.FAILED:
            assert self.trade.reason is not None
            assert all(a.outcome not in (AttemptOutcome.PENDING, AttemptOutcome.LANDED) for a in self.trade.attempts)

    @invariant()
    def states_follow_the_allowed_transitions(self) -> None:
        for current, nxt in zip(self.states_seen, self.states_seen[1:]):
            assert nxt in ALLOWED_TRANSITIONS[current]

    @invariant()
    def terminal_states_are_absorbing(self) -> None:
        if self.terminal_snapshot is not None:
            assert self.trade == self.terminal_snapshot
        elif self.trade.state.is_terminal:
            self.terminal_snapshot = self.trade

    @invariant()
    def resolved_attempts_never_change_and_slippage_stays_bounded(self) -> None:
        for a in self.trade.attempts:
            assert a.slippage_bps <= self.trade.max_slippage_bps
            if a.signature in self.resolved_snapshot:
                assert a == self.resolved_snapshot[a.signature]
            elif a.outcome is not AttemptOutcome.PENDING:
                self.resolved_snapshot[a.signature] = a
        assert [a.attempt_no for a in self.trade.attempts] == list(range(1, len(self.trade.attempts) + 1))


TradeMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestTradeMachine = TradeMachine.TestCase
