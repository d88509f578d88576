"""A TCP relay from an address on the node's veth to a service on the host's loopback.

The control plane, Postgres and the local chain listen on 127.0.0.1 only. The node lives in its own
network namespace, joined to the host by one veth pair, so it reaches them through this relay: it
listens on the host end of the veth (an address only the node can reach) and forwards every
connection to the same service on 127.0.0.1. Nothing else is needed on the host: no NAT rule, no
sysctl. Run as ``python -m xorj.devenv.node.relay LISTEN_HOST:PORT TARGET_HOST:PORT``.
"""

from __future__ import annotations

import asyncio
import sys


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


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, upstream_writer), _pump(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        raise SystemExit("usage: python -m xorj.devenv.node.relay LISTEN_HOST:PORT TARGET_HOST:PORT")
    asyncio.run(serve(_address(args[0]), _address(args[1])))


if __name__ == "__main__":
    main()
