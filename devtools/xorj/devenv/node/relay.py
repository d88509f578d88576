"""A TCP relay from an address inside the node's network namespace to a service on the host's
loopback.

The control plane, Postgres and the local chain listen on 127.0.0.1 only. The node lives in its own
network namespace, so it reaches them through this relay: its listening socket is made inside the
node's namespace (setns, then back), on the address the node uses for "the host"; each accepted
connection is forwarded to the same port on the host's 127.0.0.1. Nothing is added to the host's
network: no listener on a host interface, no route, no NAT rule.
Run as ``python -m xorj.devenv.node.relay NETNS_PATH LISTEN_HOST:PORT TARGET_HOST:PORT``.

The other way round, ``--outward``: the listening socket is on the host (its 127.0.0.1), and each
connection is made from inside the node's namespace to the target, e.g. a Service's cluster IP, which
kube-proxy's rules in that namespace send to a ready endpoint chosen per connection. A host process
(the development operator, the chaos probes) then follows a Service the way a pod does: a new
connection after the HA ledger's failover reaches the new primary. Run as
``python -m xorj.devenv.node.relay --outward NETNS_PATH LISTEN_HOST:PORT TARGET_HOST:PORT``.
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
# An outward connection that neither succeeds nor fails within this long is given up (the client sees
# the connection closed and retries, as after any lost connection).
OUTWARD_CONNECT_SECONDS = 5.0


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


async def serve(listener: socket.socket, target: tuple[str, int], netns_path: str | None = None) -> None:
    """Forward each connection accepted on ``listener`` to ``target``: from the host, or, with
    ``netns_path``, from inside that network namespace."""
    async def open_upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if netns_path is None:
            return await asyncio.open_connection(*target)
        with inside_netns(netns_path):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, target), OUTWARD_CONNECT_SECONDS)
        except OSError:  # TimeoutError included
            sock.close()
            raise OSError(f"connect {target[0]}:{target[1]} in {netns_path}") from None
        return await asyncio.open_connection(sock=sock)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await open_upstream()
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


def listen_on_host(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    return sock


def main(argv: list[str] | None = None) -> None:
    args = list(argv if argv is not None else sys.argv[1:])
    outward = bool(args) and args[0] == "--outward"
    if outward:
        args = args[1:]
    if len(args) != 3:
        raise SystemExit("usage: python -m xorj.devenv.node.relay [--outward] NETNS_PATH LISTEN_HOST:PORT "
                         "TARGET_HOST:PORT")
    if outward:
        listener = listen_on_host(_address(args[1]))
    else:
        listener = listen_in_netns(args[0], _address(args[1]))
    # the start-up wait's signal: this process, not some other, holds the listening socket
    print(f"{READY_LINE} {args[1]} -> {args[2]}", flush=True)
    asyncio.run(serve(listener, _address(args[2]), netns_path=args[0] if outward else None))


if __name__ == "__main__":
    main()
