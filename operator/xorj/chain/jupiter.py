"""Jupiter swap API v1 client: GET {base}/quote and POST {base}/swap (base ends in /swap/v1).

The models follow Jupiter's published JSON (camelCase on the wire; amounts as decimal strings).
Unknown fields are kept, because the quote must go back to /swap exactly as it came.

This client only talks to the API: it never signs. The swap answer's transaction goes through
:class:`xorj.chain.swap_guard.SwapGuard` (every instruction decoded and checked against the trade,
validity from our RPC, a simulation of the vault's accounts) before the vault's key touches it.
The quote is checked here (:func:`xorj.chain.swap_check.check_quote`): non-finite numbers, or a
minimum out below our slippage setting, are refused with QUOTE_REJECTED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj.chain.errors import (
    MalformedAnswerError,
    QuoteUnavailableError,
    RpcTimeoutError,
    RpcTransportError,
)
from xorj.chain.http import DirectClient
from xorj.chain.swap_check import check_quote

log = logging.getLogger(__name__)


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer amount")  # noqa: TRY004 - pydantic wants ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError("must be an integer amount (a decimal string)")


class SwapInfo(_Wire):
    amm_key: str = Field(alias="ammKey")
    label: str | None = None
    input_mint: str = Field(alias="inputMint")
    output_mint: str = Field(alias="outputMint")
    in_amount: int = Field(alias="inAmount")
    out_amount: int = Field(alias="outAmount")
    fee_amount: int | None = Field(default=None, alias="feeAmount")
    fee_mint: str | None = Field(default=None, alias="feeMint")

    _amounts = field_validator("in_amount", "out_amount", "fee_amount", mode="before")(
        lambda v: None if v is None else _to_int(v))


class RoutePlanStep(_Wire):
    swap_info: SwapInfo = Field(alias="swapInfo")
    percent: int | None = None
    bps: int | None = None


class QuoteResponse(_Wire):
    """Answer of GET /swap/v1/quote."""

    input_mint: str = Field(alias="inputMint")
    in_amount: int = Field(alias="inAmount")
    output_mint: str = Field(alias="outputMint")
    out_amount: int = Field(alias="outAmount")
    other_amount_threshold: int = Field(alias="otherAmountThreshold")
    swap_mode: Literal["ExactIn", "ExactOut"] = Field(alias="swapMode")
    slippage_bps: int = Field(alias="slippageBps", ge=0, le=10_000)
    price_impact_pct: float = Field(alias="priceImpactPct")
    route_plan: list[RoutePlanStep] = Field(alias="routePlan", min_length=1)
    context_slot: int | None = Field(default=None, alias="contextSlot")
    time_taken: float | None = Field(default=None, alias="timeTaken")

    _amounts = field_validator("in_amount", "out_amount", "other_amount_threshold", mode="before")(_to_int)

    @field_validator("price_impact_pct", mode="before")
    @classmethod
    def _impact(cls, v: Any) -> float:
        return float(v)


class SwapRequest(_Wire):
    """Body of POST /swap/v1/swap. ``quote_response`` is the quote JSON exactly as received."""

    user_public_key: str = Field(alias="userPublicKey")
    quote_response: dict[str, Any] = Field(alias="quoteResponse")
    wrap_and_unwrap_sol: bool = Field(default=True, alias="wrapAndUnwrapSol")
    dynamic_compute_unit_limit: bool = Field(default=True, alias="dynamicComputeUnitLimit")
    as_legacy_transaction: bool = Field(default=False, alias="asLegacyTransaction")
    prioritization_fee_lamports: int | None = Field(default=None, alias="prioritizationFeeLamports")


class SwapResponse(_Wire):
    """Answer of POST /swap/v1/swap."""

    swap_transaction: str = Field(alias="swapTransaction", min_length=1)
    last_valid_block_height: int = Field(alias="lastValidBlockHeight", gt=0)
    prioritization_fee_lamports: int | None = Field(default=None, alias="prioritizationFeeLamports")
    compute_unit_limit: int | None = Field(default=None, alias="computeUnitLimit")
    simulation_error: Any = Field(default=None, alias="simulationError")


@dataclass(frozen=True)
class Quote:
    model: QuoteResponse
    raw: dict[str, Any]


@dataclass(frozen=True)
class SignedSwap:
    """A swap transaction signed by the vault: what the ledger stores before the first send."""

    tx_bytes: bytes
    signature: Signature
    last_valid_block_height: int
    program_ids: tuple[str, ...]  # program of each top-level instruction, for error classification
    quote: Quote


SWAP_API_PATH = "/swap/v1"


class JupiterClient:
    """The swap API v1. ``base_url`` is the API root as Jupiter documents it, ending in ``/swap/v1``
    (e.g. ``https://lite-api.jup.ag/swap/v1``, or the local market's ``http://127.0.0.1:PORT/swap/v1``);
    a bare host URL gets ``/swap/v1`` appended."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, api_key: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith(SWAP_API_PATH) else base + SWAP_API_PATH
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        # transport retries 0: the executor owns every retry
        self._http = DirectClient(headers=headers, timeout=timeout, transport=transport)
        self._urls = {path: httpx.URL(self.base_url + path) for path in ("/quote", "/swap")}

    async def close(self) -> None:
        await self._http.aclose()

    async def quote(self, *, input_mint: str, output_mint: str, amount: int, slippage_bps: int,
                    timeout: float | None = None) -> Quote:
        params = {"inputMint": input_mint, "outputMint": output_mint, "amount": str(amount),
                  "slippageBps": str(slippage_bps), "swapMode": "ExactIn",
                  "restrictIntermediateTokens": "true"}
        body = await self._request("GET", "/quote", "quote", params=params, timeout=timeout)
        try:
            model = QuoteResponse.model_validate(body)
        except ValidationError as exc:
            raise MalformedAnswerError(f"quote: answer does not match the quote schema: {_first_error(exc)}",
                                       method="quote") from None
        if (model.input_mint, model.output_mint, model.in_amount, model.slippage_bps) != (
                input_mint, output_mint, amount, slippage_bps):
            raise MalformedAnswerError(
                "quote: answer is for another request (inputMint/outputMint/inAmount/slippageBps differ)",
                method="quote")
        check_quote(out_amount=model.out_amount, other_amount_threshold=model.other_amount_threshold,
                    price_impact_pct=model.price_impact_pct, slippage_bps=slippage_bps,
                    numbers={"timeTaken": model.time_taken})
        return Quote(model=model, raw=body)

    async def swap_transaction(self, quote: Quote, vault: Pubkey, *, timeout: float | None = None) -> SwapResponse:
        request = SwapRequest(userPublicKey=str(vault), quoteResponse=quote.raw)
        body = await self._request("POST", "/swap", "swap",
                                   json=request.model_dump(by_alias=True, exclude_none=True), timeout=timeout)
        try:
            answer = SwapResponse.model_validate(body)
        except ValidationError as exc:
            raise MalformedAnswerError(f"swap: answer does not match the swap schema: {_first_error(exc)}",
                                       method="swap") from None
        if answer.simulation_error:
            raise MalformedAnswerError(f"swap: the API's own simulation failed: {str(answer.simulation_error)[:200]}",
                                       method="swap")
        return answer

    async def _request(self, verb: str, path: str, what: str, *, timeout: float | None, **kwargs: Any) -> Any:
        try:
            resp = await self._http.request(verb, self._urls[path], timeout=timeout, **kwargs)
        except httpx.TimeoutException:
            raise RpcTimeoutError(f"{what}: no answer from the swap API within "
                                  f"{timeout if timeout is not None else self.timeout:g}s", method=what) from None
        except httpx.HTTPError as exc:
            raise RpcTransportError(f"{what}: swap API unreachable ({type(exc).__name__})", method=what) from None
        if resp.status_code in (400, 404, 422):
            raise QuoteUnavailableError(f"{what}: swap API refused (HTTP {resp.status_code}): "
                                        f"{_error_text(resp)}", method=what)
        if resp.status_code >= 400:
            raise RpcTransportError(f"{what}: swap API HTTP {resp.status_code}: {_error_text(resp)}", method=what)
        try:
            return resp.json()
        except ValueError:
            raise MalformedAnswerError(f"{what}: swap API answer is not JSON", method=what) from None


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict):
            return str(body.get("error") or body.get("message") or body)[:200]
    except ValueError:
        pass
    return resp.text[:200]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"field {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
