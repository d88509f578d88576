"""Jupiter swap API models, the quote checks, and decoding the swap answer (the transaction checks are\ntested in test_chain_swap_check)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from xorj.chain.errors import MalformedAnswerError, QuoteRejectedError
from xorj.chain.jupiter import QuoteResponse, SwapRequest, SwapResponse
from xorj.chain.swap_check import check_quote
from xorj.chain.swap_guard import decode_swap_transaction
from xorj.domain.trades import ReasonCode

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


def _quote_json(**changes) -> dict:
    return {**QUOTE_JSON, **changes}


@pytest.mark.parametrize("impact", ["NaN", "nan", "inf", "-Infinity"])
def test_a_quote_with_a_non_finite_price_impact_is_refused(impact):
    model = QuoteResponse.model_validate(_quote_json(priceImpactPct=impact))
    with pytest.raises(QuoteRejectedError, match="non-finite") as caught:
        check_quote(out_amount=model.out_amount, other_amount_threshold=model.other_amount_threshold,
                    price_impact_pct=model.price_impact_pct, slippage_bps=100)
    assert caught.value.reason is ReasonCode.QUOTE_REJECTED and caught.value.rule == "non-finite"


def test_the_quote_minimum_out_must_respect_our_slippage():
    # 150000 out at 100 bps: at least 148500 must be promised
    check_quote(out_amount=150_000, other_amount_threshold=148_500, price_impact_pct=0.001, slippage_bps=100)
    with pytest.raises(QuoteRejectedError, match="min-out"):
        check_quote(out_amount=150_000, other_amount_threshold=148_499, price_impact_pct=0.001, slippage_bps=100)
    with pytest.raises(QuoteRejectedError, match="min-out"):
        check_quote(out_amount=150_000, other_amount_threshold=0, price_impact_pct=0.001, slippage_bps=100)
    with pytest.raises(QuoteRejectedError, match="min-out"):  # more than the quote itself
        check_quote(out_amount=150_000, other_amount_threshold=150_001, price_impact_pct=0.001, slippage_bps=100)
    with pytest.raises(QuoteRejectedError, match="price-impact-range"):
        check_quote(out_amount=150_000, other_amount_threshold=148_500, price_impact_pct=3.0, slippage_bps=100)


def test_garbage_transaction_bytes_are_a_malformed_answer():
    answer = SwapResponse.model_validate({"swapTransaction": base64.b64encode(b"not a tx").decode(),
                                         "lastValidBlockHeight": 1})
    with pytest.raises(MalformedAnswerError, match="swapTransaction"):
        decode_swap_transaction(answer)
    with pytest.raises(ValidationError):
        SwapResponse.model_validate({"swapTransaction": "", "lastValidBlockHeight": 1})


def _swap_api(handler):
    import httpx

    from xorj.chain.jupiter import JupiterClient

    return JupiterClient("https://api.jup.ag/swap/v1", api_key="sEcReT", transport=httpx.MockTransport(handler))


def test_the_swap_api_client_asks_for_the_trade_and_sends_its_key_in_a_header():
    """Jupiter's hosted API is a boundary this machine cannot reach: an httpx MockTransport answers
    as it documents GET /swap/v1/quote."""
    import asyncio

    import httpx

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=QUOTE_JSON)

    quote = asyncio.run(_swap_api(handler).quote(input_mint=IN_MINT, output_mint=OUT_MINT, amount=1_000_000,
                                                 slippage_bps=100))
    assert quote.model.out_amount == 150_000
    request = seen[0]
    assert request.url.path == "/swap/v1/quote" and request.url.params["slippageBps"] == "100"
    assert request.headers["x-api-key"] == "sEcReT" and "sEcReT" not in str(request.url)


@pytest.mark.parametrize("status, body, error", [
    (200, {**QUOTE_JSON, "inAmount": "999"}, MalformedAnswerError),  # an answer for another request
    (200, "not json", MalformedAnswerError),
    (422, {"error": "no route"}, "QuoteUnavailableError"),
    (503, {"error": "busy"}, "RpcTransportError"),
])
def test_hostile_or_refused_swap_api_answers_fail_with_a_reason_code(status, body, error):
    import asyncio

    import httpx

    from xorj.chain import errors

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    expected = getattr(errors, error) if isinstance(error, str) else error
    with pytest.raises(expected) as caught:
        asyncio.run(_swap_api(handler).quote(input_mint=IN_MINT, output_mint=OUT_MINT, amount=1_000_000,
                                             slippage_bps=100))
    assert isinstance(caught.value.reason, ReasonCode)
