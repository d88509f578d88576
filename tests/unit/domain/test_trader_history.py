"""Swap parsing on real mainnet getTransaction answers (tests/unit/domain/fixtures/mainnet_transactions,
README there says where each came from), and the FIFO cost basis (with properties)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xorj.domain.trader_history import (
    SOL_MINT,
    USDC_MINT,
    FifoBook,
    PricedSwap,
    SwapKind,
    landed_from_rpc_json,
    parse_swap,
    realize_fifo,
    value_swap,
)
from xorj.errors import InvalidInputError

FIXTURES = Path(__file__).parent / "fixtures" / "mainnet_transactions"
AUDIO = "9LzCMqDgTKYz9Drzqnpgee3SGa89up3a247ypMj2xrqM"
IOT = "iotEVVZLEywoTn1QdwNPddxPWszn3zFhEot3MfL9fns"


def answer(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())["result"]


def fee_payer(result: dict[str, Any]) -> str:
    return result["transaction"]["message"]["accountKeys"][0]


# ---- real mainnet transactions ----------------------------------------------------------------------


def test_jupiter_shared_accounts_route_v0_with_four_lookup_tables() -> None:
    result = answer("2ML2h2YwBmRqgmF8")
    tx = landed_from_rpc_json(result)
    # 38 static keys + 4 tables' loaded addresses: the token balances index into the loaded ones too
    assert len(result["transaction"]["message"]["addressTableLookups"]) == 4
    assert len(tx.account_keys) == len(result["transaction"]["message"]["accountKeys"]) + \
        len(result["meta"]["loadedAddresses"]["writable"]) + len(result["meta"]["loadedAddresses"]["readonly"])
    swap = parse_swap(tx, fee_payer(result))
    assert swap.kind is SwapKind.SWAP
    assert (swap.sold_mint, swap.sold_amount, swap.sold_decimals) == (AUDIO, 35_612_273_038, 8)
    assert (swap.bought_mint, swap.bought_amount, swap.bought_decimals) == (IOT, 125_330_271_683, 6)
    assert swap.sol_overhead_lamports == 0 and swap.fee_lamports == 5014
    assert swap.block_time == 1691102059 and swap.slot == 209280836


def test_clmm_buy_with_sol_wrapped_in_a_temporary_wsol_account() -> None:
    result = answer("2cd7QQSByKy6Y6ed")
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    # 0.3 SOL wrapped, swapped and the WSOL account closed: one SOL leg, the fee not in it
    assert swap.kind is SwapKind.SWAP
    assert (swap.sold_mint, swap.sold_amount) == (SOL_MINT, 300_000_000)
    assert (swap.bought_mint, swap.bought_amount) == ("7eR1yv7pUzhaqQneKJ2fmVTRuzY61ja5KwfbBrLsq1Gu", 807_769_528_641)
    assert swap.fee_lamports == 6500


def test_amm_sell_for_sol_adds_the_fee_back() -> None:
    result = answer("5bvyp1nob51M6FCj")
    meta = result["meta"]
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    assert swap.kind is SwapKind.SWAP
    assert (swap.sold_mint, swap.sold_amount) == ("EWV6bjhKF5zkXANCdWPvDs7dofRVk4pKyVTitqgEWj8E", 468_934_276_696_458)
    assert swap.bought_mint == SOL_MINT
    assert swap.bought_amount == meta["postBalances"][0] - meta["preBalances"][0] + meta["fee"] == 201_692_493


def test_aggregator_buy_v0_with_two_lookup_tables_keeps_new_account_rent_as_the_wallets() -> None:
    result = answer("2zNeSn8cJpTAW51N")
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    assert swap.kind is SwapKind.SWAP
    assert (swap.sold_mint, swap.sold_amount) == (SOL_MINT, 3_882_999)
    assert (swap.bought_mint, swap.bought_amount) == ("8k1DvnFBsbuWJw2t4JqTibR7cAgqadMveqiykMr1pump", 4_374_143_343)


def test_arbitrage_pass_with_no_change_is_not_a_swap() -> None:
    result = answer("39ZSBSYRmfzrRq1R")
    assert result["transaction"]["message"]["addressTableLookups"]
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    assert swap.kind is SwapKind.NOT_A_SWAP and swap.reason == "no token balance of the wallet changed"


def test_sol_transfer_is_not_a_swap() -> None:
    result = answer("2E9Ddokz6HZkn457")
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    assert swap.kind is SwapKind.NOT_A_SWAP and "SOL only" in (swap.reason or "")


def test_failed_transaction_is_skipped_as_failed() -> None:
    result = copy.deepcopy(answer("2ML2h2YwBmRqgmF8"))
    result["meta"]["err"] = {"InstructionError": [2, {"Custom": 6001}]}
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    assert swap.kind is SwapKind.FAILED and "6001" in (swap.reason or "")


def test_a_wallet_that_did_not_sign_is_not_swapping() -> None:
    result = answer("2ML2h2YwBmRqgmF8")
    tx = landed_from_rpc_json(result)
    # the route's pool authority had balances move too, but it signed nothing
    someone = next(b["owner"] for b in result["meta"]["postTokenBalances"] if b["owner"] != fee_payer(result))
    swap = parse_swap(tx, someone)
    assert swap.kind is SwapKind.NOT_A_SWAP and swap.reason == "the wallet did not sign it"


def test_one_sided_token_move_is_a_transfer_not_a_swap() -> None:
    result = copy.deepcopy(answer("2ML2h2YwBmRqgmF8"))
    wallet = fee_payer(result)
    # keep the AUDIO leaving, drop the IOT arriving: an outgoing transfer
    for entry in result["meta"]["postTokenBalances"]:
        if entry["owner"] == wallet and entry["mint"] == IOT:
            entry["uiTokenAmount"]["amount"] = next(
                e["uiTokenAmount"]["amount"] for e in result["meta"]["preTokenBalances"]
                if e["accountIndex"] == entry["accountIndex"])
    swap = parse_swap(landed_from_rpc_json(result), wallet)
    assert swap.kind is SwapKind.NOT_A_SWAP and (swap.reason or "").startswith(f"one side only: {AUDIO} moved out")


def test_malformed_answer_names_the_field() -> None:
    result = copy.deepcopy(answer("2cd7QQSByKy6Y6ed"))
    result["meta"]["postBalances"] = result["meta"]["postBalances"][:-1]
    with pytest.raises(InvalidInputError, match="preBalances/postBalances"):
        landed_from_rpc_json(result)
    result = copy.deepcopy(answer("2cd7QQSByKy6Y6ed"))
    result["meta"]["postTokenBalances"][0]["accountIndex"] = 999
    with pytest.raises(InvalidInputError, match="accountIndex 999"):
        landed_from_rpc_json(result)


def test_value_prefers_a_cash_leg_then_sol() -> None:
    result = answer("2cd7QQSByKy6Y6ed")
    swap = parse_swap(landed_from_rpc_json(result), fee_payer(result))
    prices = {SOL_MINT: Decimal("150"), "7eR1yv7pUzhaqQneKJ2fmVTRuzY61ja5KwfbBrLsq1Gu": Decimal("999")}
    assert value_swap(swap, prices) == Decimal("45.0")  # 0.3 SOL x 150, the token's quote ignored
    assert value_swap(swap, {}) is None


# ---- FIFO cost basis -----------------------------------------------------------------------------------

W = "wallet1"
TOKEN = "TokenMint1111111111111111111111111111111111"


def swap(n: int, sold: str, sold_amount: int, bought: str, bought_amount: int, value: str) -> PricedSwap:
    return PricedSwap(W, f"sig{n}", 1_700_000_000 + n, sold, sold_amount, bought, bought_amount, Decimal(value))


def test_fifo_matches_oldest_lots_first() -> None:
    rows = realize_fifo([
        swap(1, USDC_MINT, 100_000_000, TOKEN, 100, "100"),  # 100 tokens at $1
        swap(2, USDC_MINT, 200_000_000, TOKEN, 100, "200"),  # 100 tokens at $2
        swap(3, TOKEN, 150, USDC_MINT, 450_000_000, "450"),  # sell 150 at $3
    ])
    assert len(rows) == 1
    # cost: 100 x $1 + 50 x $2 = $200, proceeds $450
    assert (rows[0].amount, rows[0].volume_usd, rows[0].profit_usd) == (150, Decimal(200), Decimal(250))


def test_sale_beyond_known_lots_realizes_only_the_matched_part() -> None:
    rows = realize_fifo([
        swap(1, USDC_MINT, 10, TOKEN, 10, "10"),
        swap(2, TOKEN, 40, USDC_MINT, 40, "40"),  # 30 of them came from before the history
    ])
    assert (rows[0].amount, rows[0].volume_usd, rows[0].profit_usd) == (10, Decimal(10), Decimal(0))


def test_selling_what_was_never_bought_realizes_nothing_and_buying_cash_opens_nothing() -> None:
    book = FifoBook()
    assert book.apply(swap(1, SOL_MINT, 10**9, USDC_MINT, 150_000_000, "150")) is None
    assert book.open_amount(W, USDC_MINT) == 0 and book.unmatched[(W, SOL_MINT)] == 10**9


def test_a_token_to_token_swap_closes_one_position_and_opens_another() -> None:
    other = "OtherMint111111111111111111111111111111111"
    rows = realize_fifo([
        swap(1, USDC_MINT, 50, TOKEN, 5, "50"),
        swap(2, TOKEN, 5, other, 7, "80"),
        swap(3, other, 7, USDC_MINT, 70, "70"),
    ])
    assert [(r.mint, r.profit_usd, r.volume_usd) for r in rows] == [(TOKEN, Decimal(30), Decimal(50)),
                                                                    (other, Decimal(-10), Decimal(80))]


amounts = st.integers(min_value=1, max_value=10**12)
values = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), amounts, values), min_size=1, max_size=30))
def test_fifo_conserves_cost_and_amount(steps: list[tuple[bool, int, Decimal]]) -> None:
    """Whatever the order of buys and sells: bought = open + matched + (nothing else), and the cost of
    every lot bought = cost still open + cost realized; profit = proceeds of matched parts - their cost."""
    book = FifoBook()
    bought = 0
    bought_cost = Decimal(0)
    matched = 0
    realized_cost = Decimal(0)
    for n, (is_buy, amount, value) in enumerate(steps):
        if is_buy:
            book.apply(swap(n, USDC_MINT, amount, TOKEN, amount, str(value)))
            bought += amount
            bought_cost += value
        else:
            row = book.apply(swap(n, TOKEN, amount, USDC_MINT, amount, str(value)))
            if row is not None:
                assert 0 < row.amount <= amount
                proceeds = value * row.amount / amount if row.amount != amount else value
                assert row.profit_usd == proceeds - row.volume_usd
                matched += row.amount
                realized_cost += row.volume_usd
    assert book.open_amount(W, TOKEN) + matched == bought
    assert abs(book.open_cost(W, TOKEN) + realized_cost - bought_cost) < Decimal("1e-12") * max(bought_cost, 1)


@settings(max_examples=100, deadline=None)
@given(amounts, values, values)
def test_round_trip_profit_is_proceeds_minus_cost(amount: int, cost: Decimal, proceeds: Decimal) -> None:
    rows = realize_fifo([swap(1, USDC_MINT, amount, TOKEN, amount, str(cost)),
                         swap(2, TOKEN, amount, USDC_MINT, amount, str(proceeds))])
    assert [(r.profit_usd, r.volume_usd) for r in rows] == [(proceeds - cost, cost)]


# ---- parser properties ------------------------------------------------------------------------------

RENT = 2_039_280
MINT_A = "MintA111111111111111111111111111111111111111"
MINT_B = "MintB111111111111111111111111111111111111111"
balances = st.integers(min_value=0, max_value=10**15)


def _token(index: int, mint: str, owner: str, amount: int) -> dict[str, Any]:
    return {"accountIndex": index, "mint": mint, "owner": owner,
            "uiTokenAmount": {"amount": str(amount), "decimals": 9 if mint == SOL_MINT else 6}}


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(balances, balances), b=st.tuples(balances, balances), wsol=st.tuples(balances, balances),
       lamports=st.tuples(st.integers(10**9, 10**12), st.integers(10**9, 10**12)),
       fee=st.integers(0, 10**6))
def test_legs_are_the_owners_balance_changes_with_wsol_as_sol(a, b, wsol, lamports, fee) -> None:
    """Whatever the balances: a token -> token swap has exactly the deltas as legs; a WSOL account's
    change counts through its lamports (rent + amount) together with the wallet's own, fee added back."""
    wallet = "Wa11et1111111111111111111111111111111111111"
    other = "0ther11111111111111111111111111111111111111"
    pool = [10**12, 10**12]
    result = {
        "slot": 5, "blockTime": 1_700_000_000,
        "transaction": {"signatures": ["sig"], "message": {
            "accountKeys": [wallet, "AccA", "AccB", "AccW", "PoolA"], "header": {"numRequiredSignatures": 1}}},
        "meta": {
            "err": None, "fee": fee,
            "preBalances": [lamports[0], RENT, RENT, RENT + wsol[0], pool[0]],
            "postBalances": [lamports[1], RENT, RENT, RENT + wsol[1], pool[1]],
            "preTokenBalances": [_token(1, MINT_A, wallet, a[0]), _token(2, MINT_B, wallet, b[0]),
                                 _token(3, SOL_MINT, wallet, wsol[0]), _token(4, MINT_A, other, 5)],
            "postTokenBalances": [_token(1, MINT_A, wallet, a[1]), _token(2, MINT_B, wallet, b[1]),
                                  _token(3, SOL_MINT, wallet, wsol[1]), _token(4, MINT_A, other, 7)],
        },
    }
    swap = parse_swap(landed_from_rpc_json(result), wallet)
    da, db = a[1] - a[0], b[1] - b[0]
    sol = lamports[1] - lamports[0] + fee + wsol[1] - wsol[0]
    if da * db < 0:
        assert swap.kind is SwapKind.SWAP
        sold, bought = ((MINT_A, -da), (MINT_B, db)) if da < 0 else ((MINT_B, -db), (MINT_A, da))
        assert (swap.sold_mint, swap.sold_amount) == sold and (swap.bought_mint, swap.bought_amount) == bought
        assert swap.sol_overhead_lamports == sol
    elif (da == 0) != (db == 0):
        delta = da or db
        if (delta < 0 and sol > 0) or (delta > 0 and sol < 0):
            assert swap.kind is SwapKind.SWAP
            assert {swap.sold_amount, swap.bought_amount} == {abs(delta), abs(sol)}
            assert SOL_MINT in (swap.sold_mint, swap.bought_mint)
        else:
            assert swap.kind is SwapKind.NOT_A_SWAP and (swap.reason or "").startswith("one side only")
    else:
        assert swap.kind is SwapKind.NOT_A_SWAP


@pytest.mark.parametrize("name", ["2ML2h2YwBmRqgmF8", "2zNeSn8cJpTAW51N", "5bvyp1nob51M6FCj"])
def test_meta_as_solders_hands_it_back_parses_the_same(name: str) -> None:
    """SolanaRpc.transaction_with_meta passes ``json.loads(meta.to_json())`` of solders' parsed answer
    to the parser: that shape must read exactly like the node's own JSON (loadedAddresses included)."""
    from solders.rpc.responses import GetTransactionResp

    raw = json.loads((FIXTURES / f"{name}.json").read_text())
    parsed = GetTransactionResp.from_json(json.dumps(raw))
    assert parsed.value is not None and parsed.value.transaction.meta is not None
    via_solders = {**raw["result"], "meta": json.loads(parsed.value.transaction.meta.to_json())}
    wallet = fee_payer(raw["result"])
    assert parse_swap(landed_from_rpc_json(via_solders), wallet) == \
        parse_swap(landed_from_rpc_json(raw["result"]), wallet)
    assert landed_from_rpc_json(via_solders).account_keys == landed_from_rpc_json(raw["result"]).account_keys


def test_the_solana_docs_example_is_not_a_swap_and_absent_fields_are_fine() -> None:
    result = answer("solana_docs_example")
    tx = landed_from_rpc_json(result)
    assert tx.block_time is None and tx.pre_token_balances == () and tx.fee == 5000
    swap = parse_swap(tx, "3UVYmECPPMZSCqWKfENfuoTv51fTDTWicX9xmBD2euKe")
    assert swap.kind is SwapKind.NOT_A_SWAP and swap.reason == "no token balance of the wallet changed"
    assert swap.fee_lamports == 5000


def test_json_parsed_account_keys_read_like_json_ones() -> None:
    """``jsonParsed`` lists every key (static, then loaded with ``source: lookupTable``) as objects with
    ``signer``: the same keys and signers as the ``json`` answer (here rewritten from the real one)."""
    result = answer("2ML2h2YwBmRqgmF8")
    message = result["transaction"]["message"]
    signers = message["header"]["numRequiredSignatures"]
    loaded = result["meta"]["loadedAddresses"]
    parsed = copy.deepcopy(result)
    parsed["transaction"]["message"] = {
        "accountKeys": [{"pubkey": key, "signer": i < signers, "writable": True, "source": "transaction"}
                        for i, key in enumerate(message["accountKeys"])]
        + [{"pubkey": key, "signer": False, "writable": True, "source": "lookupTable"} for key in loaded["writable"]]
        + [{"pubkey": key, "signer": False, "writable": False, "source": "lookupTable"} for key in loaded["readonly"]]}
    assert landed_from_rpc_json(parsed) == landed_from_rpc_json(result)
