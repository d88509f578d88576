"""A TCP relay from an address inside the node's network namespace to a service on the host's
loopback.

The control plane, Postgres and the local chain listen on 127.0.0.1 only. The node lives in its own
network namespace, so it reaches them through this relay: its listening socket is made inside the
node's namespace (setns, then back), on the address the node uses for "the host"; each accepted
connection is forwarded to the same port on the host's 127.0.0.1. Nothing is added to the host's
network: no listener on a host interface, no route, no NAT rule.
Run as ``python -m xorj.devenv.node.relay NETNS_PATH LISTEN_HOST:PORT TARGET_HOST:PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import sys
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
READY_LINE = "relay listening"


@contextlib.contextmanager
def inside_netns(netns_path: str) -> Iterator[None]:
    """Run the block with this thread in another network namespace; sockets made in it stay there."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns_path}")
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the host namespace")
    finally:
        os.close(own)
        os.close(target)


def listen_in_netns(netns_path: str, address: tuple[str, int]) -> socket.socket:
    """A listening socket that belongs to another network namespace (it keeps it for life)."""
    with inside_netns(netns_path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    return sock


def connect_in_netns(netns_path: str, address: tuple[str, int], timeout: float = 2.0) -> socket.socket:
    """A socket connected to ``address`` as a process inside that network namespace sees it
    (raises OSError when nothing accepts there)."""
    with inside_netns(netns_path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, upstream_writer), _pump(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 3:
        raise SystemExit("usage: python -m xorj.devenv.node.relay NETNS_PATH LISTEN_HOST:PORT TARGET_HOST:PORT")
    listener = listen_in_netns(args[0], _address(args[1]))
    # the start-up wait's signal: this process, not some other, holds the listening socket
    print(f"{READY_LINE} {args[1]} -> {args[2]}", flush=True)
    asyncio.run(serve(listener, _address(args[2])))


if __name__ == "__main__":
    main()
