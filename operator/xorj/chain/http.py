"""The chain clients' HTTP stack: httpx's request and answer models sent straight to a transport,
over aiohttp's connection pool.

The RPC, swap API and price clients speak httpx (typed requests and answers, and an injectable
transport: ``httpx.MockTransport`` in unit tests). Under them, httpcore's pool scans every pooled
connection, with a socket poll each, twice per request: about 2 ms of CPU per request with a dozen
connections, most of an executor's CPU per trade. aiohttp's pool (``httpx_aiohttp``) does the same
work for a fraction of it, with keep-alive connections reused across requests. Above the transport,
``httpx.AsyncClient`` spent about as much again on what these clients never use (merging a base URL,
the cookie jar, auth and redirect handling); :class:`DirectClient` hands the request to the
transport itself.

Never retries: aiohttp re-sends only idempotent requests on a stale keep-alive connection (a GET),
never a POST (a sendTransaction re-sent behind the executor's back would be a retry it does not
know about). Connection failures keep the httpx exception classes the clients map to reason codes:
a refused or dropped connection is a transport error, only a timeout is a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Enough keep-alive connections for a process's calls in flight (trades x calls per trade); above it
# requests wait for a connection rather than open ever more sockets.
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=30.0)

_TIMEOUTS = (aiohttp.ServerTimeoutError, aiohttp.SocketTimeoutError, TimeoutError)


class PooledTransport(AiohttpTransport):
    """:class:`AiohttpTransport` with httpx's meaning of connection failures: the library maps every
    ``ClientConnectionError`` (a refused connection, a server that hung up) to ``ConnectTimeout``,
    which would turn "the node dropped us" into a timeout."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TimeoutException as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, _TIMEOUTS):
                raise
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise httpx.ConnectError(type(cause).__name__, request=request) from cause
            raise httpx.RemoteProtocolError(type(cause).__name__, request=request) from cause


def pooled_transport(limits: httpx.Limits = DEFAULT_LIMITS) -> httpx.AsyncBaseTransport:
    """A new pooled transport (one per client; its pool opens on first use in the running loop)."""
    return PooledTransport(limits=limits, retries=0)


class DirectClient:
    """Requests handed straight to a transport (the pooled one, or ``httpx.MockTransport`` in unit
    tests) with fixed headers and a default timeout; answers come back read in full. Never follows a
    redirect, keeps no cookies, and raises the transport's httpx exceptions unchanged."""

    def __init__(self, *, headers: Mapping[str, str], timeout: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._headers = httpx.Headers({"Accept-Encoding": "gzip, deflate", **headers})
        self._timeout = _timeout_extension(timeout)  # built once: most calls use the default
        self._transport = transport or pooled_transport()

    async def request(self, method: str, url: httpx.URL, *, content: bytes | str | None = None,
                      json: Any = None, params: Mapping[str, str] | None = None,
                      timeout: float | None = None) -> httpx.Response:
        """``url`` is parsed once by the caller (parsing a str URL is most of httpx's cost per request)."""
        request = httpx.Request(method, url.copy_merge_params(params) if params else url, headers=self._headers,
                                content=content, json=json,
                                extensions={"timeout": self._timeout if timeout is None else _timeout_extension(timeout)})
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


def _timeout_extension(seconds: float) -> dict[str, float | None]:
    """httpx's per-request timeout extension (connect, read, write, pool), as the transport reads it."""
    return httpx.Timeout(seconds).as_dict()
