"""The chain clients' default transport (httpx over aiohttp's pool) against real sockets on this
machine: a failure keeps its meaning (refused or dropped is a transport error, silence is a
timeout), a POST is never re-sent behind the caller's back, and connections are kept alive.

The peers are plain asyncio TCP servers: the point is what happens on the socket, not a node."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from xorj.chain.errors import RpcTimeoutError, RpcTransportError
from xorj.chain.rpc import RpcTimeouts, SolanaRpc

Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

ANSWER = b'{"jsonrpc":"2.0","result":123,"id":0}'


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


async def _serve(peer: Peer) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/"


async def test_refused_connection_is_a_transport_error_not_a_timeout() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with SolanaRpc(f"http://127.0.0.1:{port}/", timeouts=RpcTimeouts(read=2.0)) as rpc:
        with pytest.raises(RpcTransportError) as caught:
            await rpc.block_height()
    assert not isinstance(caught.value, RpcTimeoutError)


async def test_dropped_send_is_a_transport_error_and_is_posted_exactly_once() -> None:
    requests: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await _read_request(reader))
        writer.close()  # the request arrived; the answer never leaves

    server, url = await _serve(hang_up)
    async with server, SolanaRpc(url, timeouts=RpcTimeouts(read=2.0, send=2.0)) as rpc:
        with pytest.raises(RpcTransportError) as caught:
            await rpc.send_raw(b"\x01" * 200)
        await asyncio.sleep(0.2)  # a re-POST, if the transport made one, would have arrived by now
    assert not isinstance(caught.value, RpcTimeoutError)
    assert len(requests) == 1 and b"sendTransaction" in requests[0]


async def test_silent_peer_is_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)
        writer.close()

    server, url = await _serve(silent)
    async with server, SolanaRpc(url, timeouts=RpcTimeouts(read=0.3)) as rpc:
        with pytest.raises(RpcTimeoutError):
            await rpc.block_height()


async def test_calls_reuse_one_kept_alive_connection() -> None:
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
            await writer.drain()

    server, url = await _serve(keep_alive)
    async with server, SolanaRpc(url) as rpc:
        for _ in range(5):
            assert await rpc.block_height() == 123
    assert connections == 1
