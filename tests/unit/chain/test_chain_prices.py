"""The Jupiter price API v3 client. The hosted API is a boundary this machine cannot reach: its answers
are served here by an httpx MockTransport speaking the documented shape (GET /price/v3?ids=a,b, an
object keyed by mint with usdPrice and decimals, unpriced mints left out)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from xorj.chain.errors import MalformedAnswerError, RpcTransportError
from xorj.chain.prices import JupiterPriceClient, parse_price_answer, price_api_url_for
from xorj.domain.trades import ReasonCode

SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
DOCUMENTED = ('{"%s": {"createdAt": "2024-06-05T08:55:25.527Z", "liquidity": 621679197.67, "usdPrice": 147.48, '
              '"blockId": 348004023, "decimals": 9, "priceChange24h": 1.29}}' % SOL)


def _client(answer: str, status: int = 200, seen: list | None = None) -> JupiterPriceClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, text=answer, headers={"content-type": "application/json"})
    return JupiterPriceClient("https://api.jup.ag/price/v3", api_key="k", transport=httpx.MockTransport(handler))


def test_documented_answer_parses_and_unpriced_mints_are_absent() -> None:
    seen: list[httpx.Request] = []
    prices = asyncio.run(_client(DOCUMENTED, seen=seen).prices([USDC, SOL]))
    assert prices[SOL].usd_price == Decimal("147.48") and prices[SOL].decimals == 9
    assert USDC not in prices
    request = seen[0]
    assert request.url.path == "/price/v3" and set(request.url.params["ids"].split(",")) == {SOL, USDC}
    assert request.headers["x-api-key"] == "k"


@pytest.mark.parametrize("answer", [
    '{"%s": {"usdPrice": NaN}}' % SOL,
    '{"%s": {"usdPrice": Infinity}}' % SOL,
    '{"%s": {"usdPrice": -1}}' % SOL,
    '{"%s": {"usdPrice": 0}}' % SOL,
    '{"%s": {"usdPrice": "147.48"}}' % SOL,
    '{"%s": {"usdPrice": true}}' % SOL,
    '{"%s": {"usdPrice": 1, "decimals": 9.5}}' % SOL,
    '{"%s": {"usdPrice": 1}}' % USDC,  # a price nobody asked for
    '[1, 2]',
    '{"usdPrice": [1',
])
def test_hostile_answers_fail_with_a_reason_code(answer: str) -> None:
    with pytest.raises(MalformedAnswerError) as caught:
        asyncio.run(_client(answer).prices([SOL]))
    assert caught.value.reason is ReasonCode.MALFORMED_RESPONSE


def test_http_errors_fail_the_lookup() -> None:
    with pytest.raises(RpcTransportError):
        asyncio.run(_client("{}", status=503).prices([SOL]))


def test_price_api_sits_beside_the_swap_api() -> None:
    assert price_api_url_for("https://api.jup.ag/swap/v1") == "https://api.jup.ag/price/v3"
    assert price_api_url_for("http://127.0.0.1:8080/swap/v1/") == "http://127.0.0.1:8080/price/v3"
    assert parse_price_answer("{}", [SOL]) == {}
