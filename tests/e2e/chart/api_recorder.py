"""A recording reverse proxy in front of the real kube-apiserver, to see which API calls a process makes.

The process under test gets a kubeconfig pointing at ``http://127.0.0.1:<port>`` with its own bearer
token; the proxy forwards each request unchanged (headers, body, streaming watch answers) to the real
API server over TLS and records (method, path, query, status). :func:`rbac_calls` turns the records
into the (apiGroup, resource, verb) triples RBAC authorises, so a test can compare what a ServiceAccount
is granted with what its process really used.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
              "content-length", "proxy-authorization", "proxy-authenticate"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: str
    status: int


class ApiRecorder:
    def __init__(self, upstream: str, ca_file: str | None) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.calls: list[Call] = []
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _start(self) -> None:
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp exposes no getter

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        # forward the request as sent: no Content-Type added where the client sent none
        skip = () if "Content-Type" in request.headers else ("Content-Type",)
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body or None, allow_redirects=False,
                                         skip_auto_headers=skip) as upstream:
            self.calls.append(Call(request.method, request.path, request.query_string, upstream.status))
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client (or, at stop, the upstream session) went away mid-stream: a watch ended
            return response

    def start(self) -> ApiRecorder:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        async def _stop() -> None:
            # the upstream session first: open watch streams end, so their handlers return
            if self._session:
                await self._session.close()
            if self._runner:
                await asyncio.wait_for(self._runner.cleanup(), timeout=20)

        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def rbac_call(call: Call) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of one resource request; None for discovery etc."""
    parts = [p for p in call.path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        if len(parts) < 3:
            return None
        group, rest = parts[1], parts[3:]
    if not rest:
        return None  # discovery of one group version
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    query = parse_qs(call.query)
    method = call.method.upper()
    if method == "GET":
        verb = "watch" if query.get("watch", ["false"])[0] in ("true", "1") else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())
    return group, resource, verb


def rbac_calls(calls: list[Call], allowed_only: bool = True) -> set[tuple[str, str, str]]:
    out = set()
    for call in calls:
        triple = rbac_call(call)
        if triple and (not allowed_only or call.status != 403):
            out.add(triple)
            if triple[2] == "patch" and call.status == 201:
                # a server-side apply that created the object: authorised as create as well
                out.add((triple[0], triple[1], "create"))
    return out
