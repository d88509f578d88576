"""Jupiter-compatible quote/swap over the local market: real SPL transfers processed by LiteSVM,
exactly-once on resend, and the Jupiter program's 6001 slippage failure on chain."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey

from tests.integration.chain.conftest import ChainClient

pytestmark = pytest.mark.chain

JUPITER = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
SLIPPAGE_ERR = {"InstructionError": [1, {"Custom": 6001}]}


async def test_quote_has_jupiter_fields_and_constant_product_price(client: ChainClient) -> None:
    quote = await client.quote("USDC", "SOL", 100 * 10**6, slippage_bps=100)
    for name in ("inputMint", "inAmount", "outputMint", "outAmount", "otherAmountThreshold", "swapMode",
                 "slippageBps", "priceImpactPct", "routePlan", "contextSlot", "timeTaken"):
        assert name in quote, name
    assert quote["inAmount"] == str(100 * 10**6) and quote["swapMode"] == "ExactIn"
    out, threshold = int(quote["outAmount"]), int(quote["otherAmountThreshold"])
    assert threshold == out * (10_000 - 100) // 10_000
    price = client.chain.state()["price"]
    # 100 USDC buys about 1/price SOL-like tokens, less the fee and price impact
    assert 0.99 * (100 / price) * 10**9 < out < (100 / price) * 10**9
    bigger = await client.quote("USDC", "SOL", 1_000_000 * 10**6)
    assert int(bigger["outAmount"]) < 10_000 * int(quote["outAmount"])  # constant product: impact grows


async def test_quote_and_swap_reject_bad_input_naming_the_field(client: ChainClient) -> None:
    answer = await client.http.get(client.chain.swap_api_url + "/quote", params={
        "inputMint": client.chain.mints["USDC"], "outputMint": client.chain.mints["SOL"], "amount": "ten"})
    assert answer.status_code == 400 and "amount" in answer.json()["error"]
    answer = await client.http.get(client.chain.swap_api_url + "/quote", params={
        "inputMint": str(Pubkey.default()), "outputMint": client.chain.mints["SOL"], "amount": "10"})
    assert answer.status_code == 400 and answer.json()["errorCode"] == "TOKEN_NOT_TRADABLE"
    quote = await client.quote("USDC", "SOL", 10**6)
    answer = await client.http.post(client.chain.swap_api_url + "/swap",
                                    json={"quoteResponse": quote, "userPublicKey": "nope"})
    assert answer.status_code == 400 and "userPublicKey" in answer.json()["error"]


async def test_swap_transaction_shape(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    quote = await client.quote("USDC", "SOL", 10 * 10**6)
    tx, body = await client.swap_transaction(quote, vault)
    assert str(tx.message.account_keys[0]) == vault  # fee payer is the vault
    programs = [str(tx.message.account_keys[ix.program_id_index]) for ix in tx.message.instructions]
    assert programs[1] == JUPITER
    assert tx.signatures[0] == type(tx.signatures[0]).default()  # the user's slot is left to sign
    height = await client.result("getBlockHeight", {"commitment": "processed"})
    assert height <= body["lastValidBlockHeight"] <= height + 150
    assert tx.message.header.num_required_signatures == 2


async def test_swap_fills_by_the_quoted_amounts(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    usdc_before = await client.token_balance(vault, "USDC")
    sol_before = await client.token_balance(vault, "SOL")
    tx, quote, _ = await client.signed_swap(vault, amount=250 * 10**6)
    answer = await client.send(tx)
    assert answer["result"] == str(tx.signatures[0])
    status = await client.wait_status(answer["result"], "confirmed")
    assert status["err"] is None
    assert await client.token_balance(vault, "USDC") == usdc_before - int(quote["inAmount"])
    assert await client.token_balance(vault, "SOL") == sol_before + int(quote["outAmount"])
    assert client.chain.swap_signatures(vault) == [answer["result"]]
    transaction = await client.result("getTransaction", answer["result"],
                                      {"commitment": "confirmed", "maxSupportedTransactionVersion": 0})
    pre = {b["mint"]: int(b["uiTokenAmount"]["amount"]) for b in transaction["meta"]["preTokenBalances"]
           if b["owner"] == vault}
    post = {b["mint"]: int(b["uiTokenAmount"]["amount"]) for b in transaction["meta"]["postTokenBalances"]
            if b["owner"] == vault}
    assert post[client.chain.mints["SOL"]] - pre[client.chain.mints["SOL"]] == int(quote["outAmount"])
    # and back: SOL -> USDC moves the price the other way
    back, quote_back, _ = await client.signed_swap(vault, "SOL", "USDC", amount=int(quote["outAmount"]))
    signature = (await client.send(back))["result"]
    await client.wait_status(signature, "confirmed")
    assert await client.token_balance(vault, "SOL") == sol_before
    assert client.chain.swap_signatures(vault) == [answer["result"], signature]


async def test_resending_the_same_bytes_never_fills_twice(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    usdc_before = await client.token_balance(vault, "USDC")
    tx, quote, _ = await client.signed_swap(vault, amount=20 * 10**6)
    first = await client.send(tx, skip_preflight=True)
    for _ in range(3):
        again = await client.send(tx, skip_preflight=True)
        assert again["result"] == first["result"]  # a node answers the signature, executes nothing
    preflight = await client.send(tx)
    assert preflight["error"]["code"] == -32002 and preflight["error"]["data"]["err"] == "AlreadyProcessed"
    await client.wait_status(first["result"], "confirmed")
    assert client.chain.swap_signatures(vault) == [first["result"]]
    assert await client.token_balance(vault, "USDC") == usdc_before - int(quote["inAmount"])


async def test_resigned_stale_quote_executes_again(client: ChainClient) -> None:
    """The double-fill hazard is real here: a new transaction for the same quote fills again."""
    vault = client.chain.take_vault()
    quote = await client.quote("USDC", "SOL", 5 * 10**6, slippage_bps=300)
    first, _ = await client.swap_transaction(quote, vault)
    client.chain.advance_blocks(1)
    second, _ = await client.swap_transaction(quote, vault)
    assert first.message.recent_blockhash != second.message.recent_blockhash
    for tx in (first, second):
        assert "result" in await client.send(client.sign(tx, vault))
    assert len(client.chain.swap_signatures(vault)) == 2


async def test_price_move_past_bound_fails_on_chain_with_6001(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    usdc_before = await client.token_balance(vault, "USDC")
    tx, quote, _ = await client.signed_swap(vault, amount=100 * 10**6, slippage_bps=50)
    client.chain.move_price(200)  # SOL-like token 2% dearer: the quote's 0.5% bound is exceeded
    preflight = await client.send(tx)
    assert preflight["error"]["code"] == -32002
    assert preflight["error"]["data"]["err"] == SLIPPAGE_ERR
    assert "custom program error: 0x1771" in preflight["error"]["message"]
    signature = (await client.send(tx, skip_preflight=True))["result"]
    status = await client.wait_status(signature, "confirmed")
    assert status["err"] == SLIPPAGE_ERR
    transaction = await client.result("getTransaction", signature,
                                      {"commitment": "confirmed", "maxSupportedTransactionVersion": 0})
    assert transaction["meta"]["err"] == SLIPPAGE_ERR
    message = transaction["transaction"]["message"]
    failing = message["instructions"][1]
    assert message["accountKeys"][failing["programIdIndex"]] == JUPITER
    assert any(f"Program {JUPITER} failed: custom program error: 0x1771" in line
               for line in transaction["meta"]["logMessages"])
    assert await client.token_balance(vault, "USDC") == usdc_before  # atomic: nothing moved
    assert client.chain.swap_signatures(vault) == []
    assert [s["signature"] for s in client.chain.swaps(vault)] == [signature]
    # a fresh quote at the new price fills
    fresh, _, _ = await client.signed_swap(vault, amount=100 * 10**6, slippage_bps=50)
    assert "result" in await client.send(fresh)


async def test_price_move_within_slippage_still_fills(client: ChainClient) -> None:
    vault = client.chain.take_vault()
    tx, quote, _ = await client.signed_swap(vault, amount=100 * 10**6, slippage_bps=300)
    client.chain.move_price(100)  # 1% < 3%
    signature = (await client.send(tx))["result"]
    assert (await client.wait_status(signature, "confirmed"))["err"] is None
    assert client.chain.swap_signatures(vault) == [signature]


async def test_own_swaps_move_the_price(client: ChainClient) -> None:
    before = client.chain.state()["price"]
    vault = client.chain.take_vault()
    tx, _, _ = await client.signed_swap(vault, amount=50_000 * 10**6)  # buy SOL-like with USDC
    signature = (await client.send(tx))["result"]
    await client.wait_status(signature, "processed")
    assert client.chain.state()["price"] > before


async def test_solana_py_reads_a_failed_swap_and_token_balances(solana_client, client: ChainClient) -> None:
    from solana.rpc.commitment import Confirmed, Processed
    from solders.signature import Signature
    from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError
    from spl.token.instructions import get_associated_token_address

    vault = client.chain.take_vault()
    tx, _, _ = await client.signed_swap(vault, amount=10 * 10**6, slippage_bps=10)
    client.chain.move_price(100)
    signature = (await client.send(tx, skip_preflight=True))["result"]
    await client.wait_status(signature, "confirmed")
    fetched = await solana_client.get_transaction(Signature.from_string(signature), commitment=Confirmed,
                                                  max_supported_transaction_version=0)
    err = fetched.value.transaction.meta.err
    assert isinstance(err, TransactionErrorInstructionError)
    assert err.index == 1 and err.err == InstructionErrorCustom(6001)
    statuses = await solana_client.get_signature_statuses([Signature.from_string(signature)])
    assert statuses.value[0].err == err
    ata = get_associated_token_address(Pubkey.from_string(vault), Pubkey.from_string(client.chain.mints["USDC"]))
    balance = await solana_client.get_token_account_balance(ata, Processed)
    assert balance.value.amount == str(100_000 * 10**6) and balance.value.decimals == 6
