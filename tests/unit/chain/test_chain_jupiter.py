"""Jupiter swap API models and the swap-transaction checks: fee payer, programs, co-signers, our slot."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from xorj.chain.classify import JUPITER_PROGRAM_ID, TOKEN_PROGRAM_ID
from xorj.chain.errors import MalformedAnswerError
from xorj.chain.jupiter import (
    DEFAULT_ALLOWED_PROGRAMS,
    Quote,
    QuoteResponse,
    SwapRequest,
    SwapResponse,
    sign_swap_transaction,
)
from xorj.chain.keys import VaultKey

IN_MINT = "So11111111111111111111111111111111111111112"
OUT_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

QUOTE_JSON = {
    "inputMint": IN_MINT, "inAmount": "1000000", "outputMint": OUT_MINT, "outAmount": "150000",
    "otherAmountThreshold": "148500", "swapMode": "ExactIn", "slippageBps": 100, "platformFee": None,
    "priceImpactPct": "0.0012", "routePlan": [{"swapInfo": {
        "ammKey": "HcoJqG325TTifs6jyWvRJ9ET4pDu12Xrt2EQKZGFmuKX", "label": "Whirlpool", "inputMint": IN_MINT,
        "outputMint": OUT_MINT, "inAmount": "1000000", "outAmount": "150000", "feeAmount": "30",
        "feeMint": IN_MINT}, "percent": 100}],
    "contextSlot": 299283763, "timeTaken": 0.0158, "swapUsdValue": "150.1",  # unknown fields are kept
}


def test_quote_model_parses_jupiter_json_and_keeps_unknown_fields():
    quote = QuoteResponse.model_validate(QUOTE_JSON)
    assert quote.in_amount == 1_000_000 and quote.other_amount_threshold == 148_500
    assert quote.price_impact_pct == pytest.approx(0.0012)
    assert quote.route_plan[0].swap_info.label == "Whirlpool"
    body = SwapRequest(userPublicKey="V", quoteResponse=QUOTE_JSON).model_dump(by_alias=True, exclude_none=True)
    assert body["quoteResponse"] == QUOTE_JSON  # verbatim, strings stay strings
    assert body["userPublicKey"] == "V" and body["wrapAndUnwrapSol"] is True


@pytest.mark.parametrize("field, value", [("inAmount", "-5"), ("inAmount", 1.5), ("routePlan", []),
                                          ("slippageBps", 20000), ("swapMode", "Sideways")])
def test_quote_model_refuses_bad_fields(field, value):
    with pytest.raises(ValidationError):
        QuoteResponse.model_validate({**QUOTE_JSON, field: value})


JUPITER = Pubkey.from_string(JUPITER_PROGRAM_ID)


def _swap_answer(payer: Pubkey, *, cosigner: Keypair | None = None, program: Pubkey = JUPITER,
                 sign_cosigner: bool = True, lvbh: int = 345) -> SwapResponse:
    accounts = [AccountMeta(payer, True, True)]
    if cosigner is not None:
        accounts.append(AccountMeta(cosigner.pubkey(), True, False))
    ixs = [Instruction(program, b"\x01\x02", accounts),
           Instruction(Pubkey.from_string(TOKEN_PROGRAM_ID), b"\x03", [AccountMeta(payer, False, True)])]
    message = MessageV0.try_compile(payer, ixs, [], Hash.new_unique())
    signatures = [Signature.default()] * message.header.num_required_signatures
    if cosigner is not None and sign_cosigner:
        keys = list(message.account_keys)
        signatures[keys.index(cosigner.pubkey())] = cosigner.sign_message(to_bytes_versioned(message))
    tx = VersionedTransaction.populate(message, signatures)
    return SwapResponse.model_validate({"swapTransaction": base64.b64encode(bytes(tx)).decode(),
                                        "lastValidBlockHeight": lvbh, "prioritizationFeeLamports": 0})


def _quote() -> Quote:
    return Quote(model=QuoteResponse.model_validate(QUOTE_JSON), raw=QUOTE_JSON)


def test_sign_fills_only_the_vault_slot_and_keeps_cosigner_signature():
    vault, pool = Keypair(), Keypair()
    answer = _swap_answer(vault.pubkey(), cosigner=pool)
    original = VersionedTransaction.from_bytes(base64.b64decode(answer.swap_transaction))
    signed = sign_swap_transaction(answer, _quote(), VaultKey(vault))
    tx = VersionedTransaction.from_bytes(signed.tx_bytes)
    message_bytes = to_bytes_versioned(tx.message)
    assert tx.signatures[0] == signed.signature
    assert tx.signatures[0].verify(vault.pubkey(), message_bytes)
    assert tx.signatures[1] == original.signatures[1]  # the pool authority's signature is untouched
    assert tx.verify_with_results() == [True, True]
    assert signed.last_valid_block_height == 345
    assert signed.program_ids == (JUPITER_PROGRAM_ID, TOKEN_PROGRAM_ID)
    # deterministic: signing the same answer again gives the same bytes
    assert sign_swap_transaction(answer, _quote(), VaultKey(vault)).tx_bytes == signed.tx_bytes


def test_refuses_a_transaction_whose_fee_payer_is_not_the_vault():
    vault, other = Keypair(), Keypair()
    with pytest.raises(MalformedAnswerError, match="fee payer"):
        sign_swap_transaction(_swap_answer(other.pubkey()), _quote(), VaultKey(vault))


def test_refuses_programs_outside_the_allow_list():
    vault = Keypair()
    rogue = Pubkey.new_unique()
    with pytest.raises(MalformedAnswerError, match=f"program {rogue} is not allowed"):
        sign_swap_transaction(_swap_answer(vault.pubkey(), program=rogue), _quote(), VaultKey(vault))
    # an extra program is accepted when configured
    extra = DEFAULT_ALLOWED_PROGRAMS | {str(rogue)}
    sign_swap_transaction(_swap_answer(vault.pubkey(), program=rogue), _quote(), VaultKey(vault), extra)


def test_refuses_a_missing_cosigner_signature():
    vault, pool = Keypair(), Keypair()
    with pytest.raises(MalformedAnswerError, match="co-signer"):
        sign_swap_transaction(_swap_answer(vault.pubkey(), cosigner=pool, sign_cosigner=False), _quote(),
                              VaultKey(vault))


def test_refuses_garbage_transaction_bytes():
    vault = Keypair()
    answer = SwapResponse.model_validate({"swapTransaction": base64.b64encode(b"not a tx").decode(),
                                         "lastValidBlockHeight": 1})
    with pytest.raises(MalformedAnswerError, match="swapTransaction"):
        sign_swap_transaction(answer, _quote(), VaultKey(vault))
    with pytest.raises(ValidationError):
        SwapResponse.model_validate({"swapTransaction": "", "lastValidBlockHeight": 1})
