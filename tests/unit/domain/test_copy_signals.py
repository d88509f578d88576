"""The lead-swap signal and the copy decision (xorj.domain.copy_signals): sizing modes with their
bounds, a sell copying the fraction the leader sold (from preTokenBalances), the filters, each skip
with its reason code; and the signal read from a real mainnet transaction."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xorj.domain.copy_signals import (
    CopyMode,
    CopyPolicy,
    FollowerView,
    LeadSwap,
    NotALeadSwap,
    SkipReason,
    decide_copy,
    follower_view,
    lead_swap_from,
    size_fanout,
)
from xorj.domain.trader_history import (
    SOL_MINT,
    USDC_MINT,
    LandedTransaction,
    TokenBalance,
    landed_from_rpc_json,
)
from xorj.errors import InvalidInputError

LEADER = "LeadTrader1111111111111111111111111111111111"
TOKEN = "9LzCMqDgTKYz9Drzqnpgee3SGa89up3a247ypMj2xrqM"
NOW = 1_800_000_000
FIXTURES = Path(__file__).parent / "fixtures" / "mainnet_transactions"


def buy(usdc: int = 100 * 10**6, *, age: int = 5, bought: int = 10**9) -> LeadSwap:
    """The leader spent ``usdc`` USDC (6 decimals) on TOKEN (9 decimals)."""
    return LeadSwap(leader=LEADER, signature="sig-buy", slot=10, block_time=NOW - age, sold_mint=USDC_MINT,
                    sold_amount=usdc, sold_decimals=6, bought_mint=TOKEN, bought_amount=bought,
                    bought_decimals=9, sold_balance_before=usdc * 10)


def sell(amount: int, before: int) -> LeadSwap:
    return LeadSwap(leader=LEADER, signature="sig-sell", slot=11, block_time=NOW - 1, sold_mint=TOKEN,
                    sold_amount=amount, sold_decimals=9, bought_mint=USDC_MINT, bought_amount=5 * 10**6,
                    bought_decimals=6, sold_balance_before=before)


VIEW = FollowerView(balances={USDC_MINT: 1_000 * 10**6, TOKEN: 4 * 10**9},
                    prices={USDC_MINT: Decimal(1), TOKEN: Decimal("2.5")}, vault_value_usd=Decimal(1_010))


def test_proportional_copies_a_multiple_of_the_leaders_usd_size() -> None:
    decision = decide_copy(buy(100 * 10**6), CopyPolicy(mode=CopyMode.PROPORTIONAL, ratio=Decimal("0.5")), VIEW,
                           now=NOW)
    assert not decision.skipped
    assert (decision.input_mint, decision.output_mint) == (USDC_MINT, TOKEN)
    assert decision.amount_in == 50 * 10**6 and decision.notional_usd == Decimal("50.00")


def test_fixed_usd_and_vault_percent_ignore_the_leaders_size() -> None:
    fixed = decide_copy(buy(7 * 10**6), CopyPolicy(mode=CopyMode.FIXED_USD, fixed_usd=Decimal(20)), VIEW, now=NOW)
    assert fixed.amount_in == 20 * 10**6
    percent = decide_copy(buy(7 * 10**6), CopyPolicy(mode=CopyMode.VAULT_PERCENT, vault_percent=Decimal(10)), VIEW,
                          now=NOW)
    assert percent.amount_in == 101 * 10**6 and percent.notional_usd == Decimal("101.00")


def test_max_caps_and_min_raises_a_buy_and_the_vault_balance_caps_both() -> None:
    capped = decide_copy(buy(900 * 10**6), CopyPolicy(ratio=Decimal(1), max_usd=Decimal(30)), VIEW, now=NOW)
    assert capped.amount_in == 30 * 10**6 and "maxUsd" in capped.detail
    raised = decide_copy(buy(2 * 10**6), CopyPolicy(ratio=Decimal(1), min_usd=Decimal(15)), VIEW, now=NOW)
    assert raised.amount_in == 15 * 10**6 and "minUsd" in raised.detail
    poor = FollowerView(balances={USDC_MINT: 3 * 10**6}, prices=VIEW.prices, vault_value_usd=Decimal(3))
    assert decide_copy(buy(50 * 10**6), CopyPolicy(), poor, now=NOW).amount_in == 3 * 10**6


def test_a_sell_copies_the_fraction_of_the_position_the_leader_sold() -> None:
    # the leader sold 1 of its 4 tokens: the vault sells a quarter of its 4
    decision = decide_copy(sell(10**9, 4 * 10**9), CopyPolicy(mode=CopyMode.FIXED_USD, fixed_usd=Decimal(500)), VIEW,
                           now=NOW)
    assert decision.amount_in == 10**9 and decision.notional_usd == Decimal("2.50")
    everything = decide_copy(sell(3 * 10**9, 3 * 10**9), CopyPolicy(), VIEW, now=NOW)
    assert everything.amount_in == 4 * 10**9  # the leader closed its position: so does the vault


def test_a_sell_of_a_token_the_vault_does_not_hold_is_skipped() -> None:
    view = FollowerView(balances={USDC_MINT: 10**9}, prices=VIEW.prices, vault_value_usd=Decimal(1000))
    decision = decide_copy(sell(10**9, 2 * 10**9), CopyPolicy(), view, now=NOW)
    assert decision.skip is SkipReason.NOT_HELD and decision.amount_in == 0 and TOKEN in decision.detail


@pytest.mark.parametrize(("policy", "signal", "reason"), [
    (CopyPolicy(deny_mints=frozenset({TOKEN})), buy(), SkipReason.TOKEN_DENIED),
    (CopyPolicy(allow_mints=frozenset({USDC_MINT})), buy(), SkipReason.TOKEN_NOT_ALLOWED),
    (CopyPolicy(max_signal_age_seconds=30), buy(age=31), SkipReason.SIGNAL_TOO_OLD),
    (CopyPolicy(min_notional_usd=Decimal(5)), buy(4 * 10**6), SkipReason.BELOW_MIN_NOTIONAL),
    (CopyPolicy(paused=True), buy(), SkipReason.PAUSED),
])
def test_filters_skip_with_their_reason(policy: CopyPolicy, signal: LeadSwap, reason: SkipReason) -> None:
    decision = decide_copy(signal, policy, VIEW, now=NOW)
    assert decision.skip is reason and decision.amount_in == 0 and decision.notional_usd is None and decision.detail


def test_the_age_limit_admits_a_signal_just_inside_it_and_no_price_is_a_skip() -> None:
    assert not decide_copy(buy(age=30), CopyPolicy(max_signal_age_seconds=30), VIEW, now=NOW).skipped
    no_price = FollowerView(balances=VIEW.balances, prices={TOKEN: Decimal(1)}, vault_value_usd=Decimal(10))
    assert decide_copy(buy(), CopyPolicy(), no_price, now=NOW).skip is SkipReason.NO_PRICE


@given(held=st.integers(1, 10**15), sold=st.integers(1, 10**12), extra=st.integers(0, 10**12),
       price=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10_000), places=4))
def test_a_sell_never_spends_more_than_the_vault_holds_nor_a_larger_share_than_the_leader(
        held: int, sold: int, extra: int, price: Decimal) -> None:
    view = FollowerView(balances={TOKEN: held}, prices={TOKEN: price}, vault_value_usd=Decimal(1))
    decision = decide_copy(sell(sold, sold + extra), CopyPolicy(min_notional_usd=Decimal(0)), view, now=NOW)
    if not decision.skipped:
        assert 0 < decision.amount_in <= held
        assert decision.amount_in * (sold + extra) <= held * sold  # the fraction, rounded down


def test_policy_and_signal_refuse_bad_input_naming_the_field() -> None:
    with pytest.raises(InvalidInputError, match="sizing.fixed_usd: required"):
        CopyPolicy(mode=CopyMode.FIXED_USD)
    with pytest.raises(InvalidInputError, match="sizing.min_usd: must be <= sizing.max_usd"):
        CopyPolicy(min_usd=Decimal(10), max_usd=Decimal(5))
    with pytest.raises(InvalidInputError, match="filters.allow_mints"):
        CopyPolicy(allow_mints=frozenset({TOKEN}), deny_mints=frozenset({TOKEN}))
    with pytest.raises(InvalidInputError, match="sizing.vault_percent"):
        CopyPolicy(mode=CopyMode.VAULT_PERCENT, vault_percent=Decimal(101))
    with pytest.raises(InvalidInputError, match="sold_balance_before"):
        sell(10, 9)


def _tx(pre_token: tuple[TokenBalance, ...], post_token: tuple[TokenBalance, ...], *, err: object = None
        ) -> LandedTransaction:
    keys = (LEADER, "LeaderTokenAccount11111111111111111111111111", "LeaderUsdcAccount111111111111111111111111111")
    return LandedTransaction(signature="sig", slot=5, block_time=NOW, err=err, fee=5000, account_keys=keys,
                             signer_count=1, pre_balances=(10**9, 2_039_280, 2_039_280),
                             post_balances=(10**9 - 5000, 2_039_280, 2_039_280),
                             pre_token_balances=pre_token, post_token_balances=post_token)


def test_the_signal_takes_the_leaders_balance_before_from_pre_token_balances() -> None:
    pre = (TokenBalance(1, TOKEN, LEADER, 8 * 10**9, 9), TokenBalance(2, USDC_MINT, LEADER, 0, 6))
    post = (TokenBalance(1, TOKEN, LEADER, 6 * 10**9, 9), TokenBalance(2, USDC_MINT, LEADER, 5 * 10**6, 6))
    signal = lead_swap_from(_tx(pre, post), LEADER)
    assert isinstance(signal, LeadSwap)
    assert (signal.sold_mint, signal.sold_amount, signal.sold_balance_before) == (TOKEN, 2 * 10**9, 8 * 10**9)
    assert (signal.bought_mint, signal.bought_amount) == (USDC_MINT, 5 * 10**6)
    failed = lead_swap_from(_tx(pre, post, err={"InstructionError": [0, "Custom"]}), LEADER)
    assert isinstance(failed, NotALeadSwap) and "failed" in failed.reason
    transfer = lead_swap_from(_tx(pre[:1], (TokenBalance(1, TOKEN, LEADER, 6 * 10**9, 9),)), LEADER)
    assert isinstance(transfer, NotALeadSwap) and "transfer" in transfer.reason


def test_the_signal_of_a_real_mainnet_sell_for_sol() -> None:
    # tests/unit/domain/fixtures/mainnet_transactions/README says where this transaction came from
    result = json.loads((FIXTURES / "5bvyp1nob51M6FCj.json").read_text())["result"]
    wallet = result["transaction"]["message"]["accountKeys"][0]
    signal = lead_swap_from(landed_from_rpc_json(result), wallet)
    assert isinstance(signal, LeadSwap) and signal.bought_mint == SOL_MINT
    held = sum(int(b["uiTokenAmount"]["amount"]) for b in result["meta"]["preTokenBalances"]
               if b["owner"] == wallet and b["mint"] == signal.sold_mint)
    assert signal.sold_balance_before == held >= signal.sold_amount


# -- a fan-out: each vault sized from its own balances (size_fanout) ---------------------------------

PRICES = {USDC_MINT: Decimal(1), TOKEN: Decimal("2.5")}


def _views(**held: int) -> dict[str, FollowerView]:
    """Vault name -> its view holding ``held`` of TOKEN and 100 USDC."""
    return {vault: follower_view(sell(1, 1), {TOKEN: amount, USDC_MINT: 100 * 10**6}, PRICES)
            for vault, amount in held.items()}


def test_a_sell_is_each_vaults_own_share_of_its_own_position() -> None:
    # the leader sold 3/10 of its position: each vault sells 3/10 of what IT holds
    sized = size_fanout(sell(3 * 10**9, 10 * 10**9), CopyPolicy(min_notional_usd=Decimal(0)),
                        _views(a=4 * 10**9, b=10**9, c=7_777_777_777), now=NOW)
    assert {v: d.amount_in for v, d in sized.trades.items()} == {"a": 1_200_000_000, "b": 300_000_000,
                                                                  "c": 2_333_333_333}
    assert sized.trades["b"].notional_usd == Decimal("0.75") and sized.skips == {}


def test_a_vault_without_the_sold_token_or_with_a_dust_share_gets_no_trade_and_says_why() -> None:
    sized = size_fanout(sell(3 * 10**9, 10 * 10**9), CopyPolicy(min_notional_usd=Decimal(1)),
                        _views(own=0, dust=10**9, big=8 * 10**9), now=NOW)
    assert set(sized.trades) == {"big"} and sized.trades["big"].amount_in == 2_400_000_000
    assert sized.skips["own"].skip is SkipReason.NOT_HELD  # 0 held
    assert sized.skips["dust"].skip is SkipReason.BELOW_MIN_NOTIONAL  # 0.3 tokens = 0.75 USD < 1 USD
    # the strategy copies the signal (its CopyTrade shows a trading vault's), though its own vault skips
    assert sized.decision_for("own") is sized.trades["big"]


def test_vault_percent_is_a_share_of_each_vaults_own_value() -> None:
    policy = CopyPolicy(mode=CopyMode.VAULT_PERCENT, vault_percent=Decimal(10))
    views = {v: follower_view(buy(), {USDC_MINT: usdc, TOKEN: token}, PRICES)
             for v, (usdc, token) in {"small": (100 * 10**6, 0), "big": (900 * 10**6, 40 * 10**9)}.items()}
    assert views["big"].vault_value_usd == Decimal(1000)  # 900 USDC + 40 TOKEN at 2.5
    sized = size_fanout(buy(), policy, views, now=NOW)
    assert {v: d.amount_in for v, d in sized.trades.items()} == {"small": 10 * 10**6, "big": 100 * 10**6}


def test_the_strategys_filters_skip_every_vault_alike() -> None:
    sized = size_fanout(sell(10**9, 2 * 10**9), CopyPolicy(deny_mints=frozenset({TOKEN})), _views(a=10**9, b=10**9),
                        now=NOW)
    assert sized.trades == {} and {d.skip for d in sized.skips.values()} == {SkipReason.TOKEN_DENIED}
    assert sized.decision_for("a").skip is SkipReason.TOKEN_DENIED
    with pytest.raises(InvalidInputError, match="views"):
        size_fanout(sell(1, 1), CopyPolicy(), {}, now=NOW)


@pytest.mark.parametrize("balance", [-1, True, 1.5, "7"])
def test_a_balance_that_is_not_a_non_negative_integer_is_refused(balance) -> None:
    with pytest.raises(InvalidInputError, match=f"balance of {TOKEN}"):
        follower_view(sell(1, 1), {TOKEN: balance}, PRICES)


@given(held=st.lists(st.integers(0, 10**15), min_size=1, max_size=8), sold=st.integers(1, 10**12),
       extra=st.integers(0, 10**12))
def test_no_vault_ever_sells_more_than_its_share_of_what_it_holds(held: list[int], sold: int, extra: int) -> None:
    signal = sell(sold, sold + extra)
    views = {f"v{i}": follower_view(signal, {TOKEN: h}, PRICES) for i, h in enumerate(held)}
    sized = size_fanout(signal, CopyPolicy(min_notional_usd=Decimal(0)), views, now=NOW)
    assert set(sized.trades) | set(sized.skips) == set(views)
    for vault, decision in sized.trades.items():
        mine = views[vault].balances[TOKEN]
        assert 0 < decision.amount_in <= mine * sold // (sold + extra)
