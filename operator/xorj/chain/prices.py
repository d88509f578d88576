"""USD prices of mints, behind one interface (:class:`PriceSource`), and its client for Jupiter's price
API v3 (``GET {base}/price/v3?ids=<mint>,<mint>``, header ``x-api-key``).

The answer is a JSON object keyed by mint; each entry carries ``usdPrice`` (USD per whole token) and
``decimals`` (plus ``blockId``, ``liquidity``, ``createdAt``, ``priceChange24h``, unused here). Mints
Jupiter has no reliable price for are left out of the answer. The local market serves the same shape
from its pools (:mod:`xorj.devenv.chain.market`).

Failing closed: an answer that is not that shape, a price that is not a finite positive number
(``NaN``/``Infinity`` included, which Python's JSON parser would otherwise accept), or a key that is
not a requested mint fails the lookup with :class:`MalformedAnswerError` (MALFORMED_RESPONSE); an
unreachable API fails it with the transport's reason. A mint left out is absent from the result: the
caller decides (the risk gate refuses a trade it cannot value).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from xorj.chain.errors import MalformedAnswerError, RpcTimeoutError, RpcTransportError
from xorj.chain.http import DirectClient

PRICE_API_PATH = "/price/v3"
MAX_IDS_PER_REQUEST = 50  # Jupiter's documented limit
MAX_DECIMALS = 18


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """The USD price of one whole token of ``mint``; ``decimals`` as the price source states them
    (None when it does not): callers compare them with the mint's decimals read from the chain."""

    mint: str
    usd_price: Decimal
    decimals: int | None = None


class PriceSource(Protocol):
    """USD prices per mint. Returns the mints it has a price for; raises ChainCallError (with its
    reason code) when the source cannot be read or answers nonsense."""

    async def prices(self, mints: Sequence[str]) -> dict[str, TokenPrice]: ...


def price_api_url_for(swap_api_url: str) -> str:
    """The price API next to a Jupiter swap API: ``https://api.jup.ag/swap/v1`` -> ``https://api.jup.ag
    /price/v3`` (the hosted service and the local market both serve both under one host)."""
    base = swap_api_url.rstrip("/")
    if base.endswith("/swap/v1"):
        base = base[: -len("/swap/v1")]
    return base + PRICE_API_PATH


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def parse_price_answer(text: str, requested: Iterable[str]) -> dict[str, TokenPrice]:
    """The price API v3 answer ``text`` for ``requested`` mints, checked (see the module doc)."""
    wanted = set(requested)
    try:
        body = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant)
    except ValueError as exc:
        raise MalformedAnswerError(f"price: answer is not valid JSON ({str(exc)[:100]})", method="price") from None
    if not isinstance(body, dict):
        raise MalformedAnswerError(f"price: answer is a JSON {type(body).__name__}, not an object keyed by mint",
                                   method="price")
    out: dict[str, TokenPrice] = {}
    for mint, entry in body.items():
        if mint not in wanted:
            raise MalformedAnswerError(f"price: answer has a price for {mint[:60]!r}, which was not asked for",
                                       method="price")
        if entry is None:
            continue  # the older shape of "no price": absent
        if not isinstance(entry, dict):
            raise MalformedAnswerError(f"price: entry of {mint} is not an object", method="price")
        price = entry.get("usdPrice")
        if isinstance(price, bool) or not isinstance(price, Decimal):
            raise MalformedAnswerError(f"price: usdPrice of {mint} is not a number: {str(price)[:40]!r}",
                                       method="price")
        try:
            finite = price.is_finite() and price > 0
        except InvalidOperation:
            finite = False
        if not finite:
            raise MalformedAnswerError(f"price: usdPrice of {mint} must be a finite positive number, got {price}",
                                       method="price")
        decimals = entry.get("decimals")
        if decimals is not None:
            if isinstance(decimals, bool) or not isinstance(decimals, Decimal) \
                    or decimals != decimals.to_integral_value() or not 0 <= decimals <= MAX_DECIMALS:
                raise MalformedAnswerError(f"price: decimals of {mint} must be an integer in 0..{MAX_DECIMALS}, "
                                           f"got {str(decimals)[:40]}", method="price")
            decimals = int(decimals)
        out[mint] = TokenPrice(mint, price, decimals)
    return out


class JupiterPriceClient:
    """Jupiter's price API v3 (the hosted one on mainnet, or the local market's stand-in). ``base_url``
    ends in ``/price/v3``; a bare host gets it appended. ``api_key`` goes in ``x-api-key``."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith(PRICE_API_PATH) else base + PRICE_API_PATH
        self._host = urlsplit(self.url).netloc or "price API"
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        # transport retries 0: the executor owns every retry
        self._http = DirectClient(headers=headers, timeout=timeout, transport=transport)
        self._endpoint = httpx.URL(self.url)

    async def close(self) -> None:
        await self._http.aclose()

    async def prices(self, mints: Sequence[str]) -> dict[str, TokenPrice]:
        unique = sorted(set(mints))
        out: dict[str, TokenPrice] = {}
        for start in range(0, len(unique), MAX_IDS_PER_REQUEST):
            chunk = unique[start:start + MAX_IDS_PER_REQUEST]
            out.update(parse_price_answer(await self._get(chunk), chunk))
        return out

    async def _get(self, ids: Sequence[str]) -> str:
        try:
            resp = await self._http.request("GET", self._endpoint, params={"ids": ",".join(ids)})
        except httpx.TimeoutException:
            raise RpcTimeoutError(f"price: no answer from {self._host} within {self.timeout:g}s",
                                  method="price") from None
        except httpx.HTTPError as exc:
            raise RpcTransportError(f"price: {self._host} unreachable ({type(exc).__name__})", method="price") from None
        if resp.status_code >= 400:
            raise RpcTransportError(f"price: {self._host} answered HTTP {resp.status_code}", method="price")
        return resp.text


__all__ = [
    "MAX_IDS_PER_REQUEST",
    "PRICE_API_PATH",
    "JupiterPriceClient",
    "PriceSource",
    "TokenPrice",
    "parse_price_answer",
    "price_api_url_for",
]
