"""Trader history on the local chain: a wallet swaps on the local market (real SPL transfers under
LiteSVM), the backfill finds the swaps through getSignaturesForAddress/getTransaction, parses the
amounts exactly, records them in the ledger (Postgres) idempotently with a cursor, a refresh reads
only what is new, and the realized trades come out as the CSV ``xorj score`` reads."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import subprocess
import sys
from decimal import Decimal

import httpx
import psycopg
import pytest
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.transaction import VersionedTransaction

from tests.integration.reconciler.helpers import send, send_batch, signed_transfer, vault_key
from xorj.chain.errors import MalformedAnswerError
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc
from xorj.domain.trader_history import SwapKind
from xorj.domain.trades import ReasonCode
from xorj.ledger.trader_swaps import TraderSwapStore
from xorj.scoring_io import read_scoring_csv
from xorj.traders.backfill import history_csv, realized, refresh
from xorj.traders.history import ChainHistory

pytestmark = [pytest.mark.chain, pytest.mark.postgres]


async def _swap(chain, vault: str, input_symbol: str, output_symbol: str, amount: int) -> tuple[str, dict]:
    """One swap of ``vault`` on the local market, signed with its key, waited for until confirmed."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        quote = (await http.get(chain.swap_api_url + "/quote", params={
            "inputMint": chain.mints[input_symbol], "outputMint": chain.mints[output_symbol],
            "amount": str(amount), "slippageBps": "100"})).json()
        body = (await http.post(chain.swap_api_url + "/swap", json={
            "quoteResponse": quote, "userPublicKey": vault, "wrapAndUnwrapSol": True})).json()
        tx = VersionedTransaction.from_bytes(base64.b64decode(body["swapTransaction"]))
        keypair = Keypair.from_bytes(chain.vault_keypair_bytes(vault))
        signatures = list(tx.signatures)
        signatures[0] = keypair.sign_message(to_bytes_versioned(tx.message))
        signed = VersionedTransaction.populate(tx.message, signatures)
        answer = (await http.post(chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
                                                       "params": [base64.b64encode(bytes(signed)).decode(),
                                                                  {"encoding": "base64"}]})).json()
        signature = answer["result"]
        for _ in range(400):
            status = (await http.post(chain.rpc_url, json={
                "jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses",
                "params": [[signature], {"searchTransactionHistory": True}]})).json()["result"]["value"][0]
            if status and status["confirmationStatus"] in ("confirmed", "finalized"):
                assert status["err"] is None, status
                return signature, quote
            await asyncio.sleep(0.05)
    raise AssertionError(f"{signature} not confirmed")


async def _refresh(chain, store: TraderSwapStore, vault: str, cash: frozenset[str]):
    prices = JupiterPriceClient(price_api_url_for(chain.swap_api_url))
    async with SolanaRpc(chain.rpc_url) as rpc:
        try:
            return await refresh(vault, ChainHistory(rpc, page_limit=2), prices, store, cash_mints=cash)
        finally:
            await prices.close()


def test_backfill_finds_parses_records_once_and_refreshes_only_new(local_chain, chain_faults_reset, ledger,
                                                                   ledger_dsn) -> None:
    vault = local_chain.take_vault()
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    cash = frozenset({usdc})
    store = TraderSwapStore(ledger)

    buy, buy_quote = asyncio.run(_swap(local_chain, vault, "USDC", "SOL", 200 * 10**6))
    sell, sell_quote = asyncio.run(_swap(local_chain, vault, "SOL", "USDC", int(buy_quote["outAmount"])))
    key = vault_key(local_chain, vault)
    transfer_out = send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, key))  # not a swap
    overdrawn = send_batch(local_chain.rpc_url, [signed_transfer(local_chain.rpc_url, key, lamports=10**18)])[0]
    third, third_quote = asyncio.run(_swap(local_chain, vault, "USDC", "SOL", 50 * 10**6))
    statuses = _rpc(local_chain.rpc_url, "getSignatureStatuses", [transfer_out, overdrawn])["value"]
    assert statuses[0]["err"] is None and statuses[1]["err"] is not None  # landed, failed (fee paid)

    # page_limit=2 makes the five transactions span three pages of getSignaturesForAddress
    first = asyncio.run(_refresh(local_chain, store, vault, cash))
    assert (first.read, first.recorded, first.swaps, first.not_swaps, first.failed, first.cursor) == \
        (5, 5, 3, 1, 1, third)

    everything = store.swaps(vault)
    assert [s.swap.signature for s in everything] == [buy, sell, transfer_out, overdrawn, third]  # chain order
    assert everything[2].swap.kind is SwapKind.NOT_A_SWAP and "SOL only" in everything[2].swap.reason
    assert everything[3].swap.kind is SwapKind.FAILED and everything[3].value_usd is None
    stored = [s for s in everything if s.swap.kind is SwapKind.SWAP]
    legs = [(s.swap.kind, s.swap.sold_mint, s.swap.sold_amount, s.swap.bought_mint, s.swap.bought_amount)
            for s in stored]
    assert legs == [
        (SwapKind.SWAP, usdc, int(buy_quote["inAmount"]), sol, int(buy_quote["outAmount"])),
        (SwapKind.SWAP, sol, int(sell_quote["inAmount"]), usdc, int(sell_quote["outAmount"])),
        (SwapKind.SWAP, usdc, int(third_quote["inAmount"]), sol, int(third_quote["outAmount"])),
    ]
    # valued from the cash (USDC) leg: exact
    assert [s.value_usd for s in stored] == [Decimal(200), Decimal(sell_quote["outAmount"]) / 10**6, Decimal(50)]

    again = asyncio.run(_refresh(local_chain, store, vault, cash))
    assert (again.read, again.recorded, again.cursor) == (0, 0, third)  # nothing new past the cursor

    fourth, _ = asyncio.run(_swap(local_chain, vault, "SOL", "USDC", int(third_quote["outAmount"]) // 2))
    latest = asyncio.run(_refresh(local_chain, store, vault, cash))
    assert (latest.read, latest.recorded, latest.cursor) == (1, 1, fourth)  # only the new one was read

    # recording the same transactions again (a re-run, a second process) adds no row
    assert store.record(vault, store.swaps(vault), None) == 0
    with psycopg.connect(ledger_dsn) as conn:
        count = conn.execute("SELECT count(*) FROM trader_swaps WHERE wallet = %s", (vault,)).fetchone()[0]
    assert count == 6

    rows = realized(store.swaps(vault), cash_mints=cash)
    # the round trip closed all of the first lot: profit = USDC back - USDC in, cost = USDC in
    assert (rows[0].signature, rows[0].volume_usd) == (sell, Decimal(200))
    assert rows[0].profit_usd == (Decimal(sell_quote["outAmount"]) - 200 * 10**6) / 10**6
    third_out = int(third_quote["outAmount"])
    # about half of the third lot (its amount may be odd): cost pro rata of the $50 it cost
    assert (rows[1].signature, rows[1].amount) == (fourth, third_out // 2)
    assert rows[1].volume_usd == Decimal(50) * (third_out // 2) / third_out
    history = read_scoring_csv(history_csv(rows).splitlines(), "backfill")
    assert list(history.wallets) == [vault] and len(history.profit_usd) == 2


def _xorj(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from xorj.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_backfill_prints_the_score_csv_and_records_with_a_cursor(local_chain, chain_faults_reset, ledger_dsn,
                                                                     tmp_path) -> None:
    vault = local_chain.take_vault()
    _, quote = asyncio.run(_swap(local_chain, vault, "USDC", "SOL", 30 * 10**6))
    asyncio.run(_swap(local_chain, vault, "SOL", "USDC", int(quote["outAmount"])))
    env = {**os.environ, "XORJ_LEDGER_DSN": ledger_dsn}
    args = ["traders", "backfill", vault, "--rpc-url", local_chain.rpc_url,
            "--price-url", price_api_url_for(local_chain.swap_api_url), "--cash-mint", local_chain.mints["USDC"]]
    result = _xorj(*args, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "wallet,timestamp,profit_usd,volume_usd" and len(lines) == 2
    assert lines[1].startswith(f"{vault},") and lines[1].endswith(",30")
    assert "2 new transactions (2 swaps" in result.stderr
    again = _xorj(*args, env=env)
    assert again.returncode == 0 and "0 new transactions" in again.stderr and again.stdout == result.stdout
    history_file = tmp_path / "history.csv"
    history_file.write_text(result.stdout)
    scored = _xorj("score", str(history_file), "--output", "json", env=env)
    assert scored.returncode == 0, scored.stderr
    assert [(t["wallet"], t["status"]) for t in json.loads(scored.stdout)] == [(vault, "INSUFFICIENT_HISTORY")]

    bad = _xorj("traders", "backfill", "not-a-key", "--rpc-url", local_chain.rpc_url,
                "--price-url", "http://127.0.0.1:1", env=env)
    assert bad.returncode == 2 and "WALLET" in bad.stderr


def _rpc(url: str, method: str, *params):
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10)
    return answer.json()["result"]


def _missing(answers: list[dict]) -> None:
    return None


def _other_transaction(answers: list[dict]) -> dict:
    return answers[1]  # a real, validly signed transaction, but not the one asked for first


def _wrong_slot(answers: list[dict]) -> dict:
    return {**answers[0], "slot": answers[0]["slot"] + 1}


def _balances_cut(answers: list[dict]) -> dict:
    crafted = copy.deepcopy(answers[0])
    crafted["meta"]["postBalances"] = crafted["meta"]["postBalances"][:-1]
    return crafted


@pytest.mark.parametrize(("craft", "why"), [(_missing, "does not have it"),
                                            (_other_transaction, "not a transaction signed with that signature"),
                                            (_wrong_slot, "listed in slot"),
                                            (_balances_cut, "preBalances/postBalances")])
def test_a_lying_transaction_answer_fails_the_refresh_and_records_nothing(local_chain, chain_faults_reset, ledger,
                                                                          craft, why) -> None:
    vault = local_chain.take_vault()
    first, quote = asyncio.run(_swap(local_chain, vault, "USDC", "SOL", 10 * 10**6))
    second, _ = asyncio.run(_swap(local_chain, vault, "SOL", "USDC", int(quote["outAmount"])))
    answers = [_rpc(local_chain.rpc_url, "getTransaction", sig, {"encoding": "base64", "commitment": "confirmed",
                                                                 "maxSupportedTransactionVersion": 0})
               for sig in (first, second)]
    local_chain.set_fault(kind="answer", method="getTransaction", result=craft(answers))
    store = TraderSwapStore(ledger)
    with pytest.raises(MalformedAnswerError) as failure:
        asyncio.run(_refresh(local_chain, store, vault, frozenset({local_chain.mints["USDC"]})))
    assert failure.value.reason is ReasonCode.MALFORMED_RESPONSE and why in str(failure.value)
    assert store.cursor(vault) is None and store.swaps(vault) == []
    local_chain.reset_faults()
    assert asyncio.run(_refresh(local_chain, store, vault, frozenset())).recorded == 2  # honest again: all there


def test_a_price_stated_for_other_decimals_is_not_used(local_chain, chain_faults_reset, ledger) -> None:
    """The price source says USDC has 9 decimals (the chain says 6): that price is about something else,
    so the swap stays unvalued (and opens no lot) rather than valued a thousand times off."""
    vault = local_chain.take_vault()
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    asyncio.run(_swap(local_chain, vault, "USDC", "SOL", 20 * 10**6))
    store = TraderSwapStore(ledger)
    local_chain.set_price_answer(json.dumps({usdc: {"usdPrice": 1.0, "decimals": 9}}))
    try:
        asyncio.run(_refresh(local_chain, store, vault, frozenset()))
    finally:
        local_chain.set_price_answer(None)
    [recorded] = store.swaps(vault)
    assert recorded.swap.kind is SwapKind.SWAP and (recorded.swap.sold_mint, recorded.swap.bought_mint) == (usdc, sol)
    assert (recorded.value_usd, recorded.priced_at) == (None, None)
