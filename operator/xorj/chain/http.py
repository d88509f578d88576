"""The chain clients' HTTP transport: httpx's client API over aiohttp's connection pool.

The RPC, swap API and price clients speak httpx (typed requests and answers, and an injectable
transport: ``httpx.MockTransport`` in unit tests). Under them, httpcore's pool scans every pooled
connection, with a socket poll each, twice per request: about 2 ms of CPU per request with a dozen
connections, most of an executor's CPU per trade. aiohttp's pool (``httpx_aiohttp``) does the same
work for a fraction of it, with keep-alive connections reused across requests.

Never retries: aiohttp re-sends only idempotent requests on a stale keep-alive connection (a GET),
never a POST (a sendTransaction re-sent behind the executor's back would be a retry it does not
know about). Connection failures keep the httpx exception classes the clients map to reason codes:
a refused or dropped connection is a transport error, only a timeout is a timeout.
"""

from __future__ import annotations

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
