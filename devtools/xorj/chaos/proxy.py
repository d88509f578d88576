"""A TCP proxy in the executors' path to Postgres that chaos actions can cut and restore.

The local environment has no NetworkPolicy enforcement, so a ledger partition is made real here:
the executors' DSN points at this proxy; ``cut`` closes every live connection and then, in
``reset`` mode, closes each new one at once (connection refused-like), or in ``blackhole`` mode
accepts it and forwards nothing (a silent partition: clients wait for their own timeouts).
``restore`` forwards again. Control over HTTP on loopback: ``GET /state``, ``POST /cut``
(body ``{"mode": "reset"|"blackhole"}``), ``POST /restore``.

Run: ``python -m xorj.chaos.proxy --target 127.0.0.1:5432 --state-file proxy.json`` (it writes
``{"listen_port", "control_port", "pid"}`` once it listens on both, binding free ports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

from aiohttp import web

log = logging.getLogger("xorj.chaos.proxy")
MODES = ("reset", "blackhole")


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.cut_mode: str | None = None
        self.cut_since: float | None = None
        self.connections: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.refused = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.cut_mode == "reset":
            self.refused += 1
            writer.transport.abort()
            return
        if self.cut_mode == "blackhole":
            self.refused += 1
            self.connections.add(writer)
            try:
                while await reader.read(65536):  # swallow, never answer
                    pass
            finally:
                self.connections.discard(writer)
                writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self.connections.discard(writer)
            self.connections.discard(up_writer)

    def cut(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.cut_mode = mode
        self.cut_since = time.time()
        for writer in list(self.connections):  # every live session dies with the partition
            writer.transport.abort()
        self.connections.clear()
        log.warning("path cut", extra={"mode": mode})

    def restore(self) -> None:
        self.cut_mode = None
        self.cut_since = None
        log.warning("path restored")

    def state(self) -> dict:
        return {"cut": self.cut_mode is not None, "mode": self.cut_mode, "cut_since": self.cut_since,
                "live_connections": len(self.connections), "accepted": self.accepted, "refused": self.refused,
                "target": f"{self.target[0]}:{self.target[1]}"}

    def control_app(self) -> web.Application:
        app = web.Application()

        async def state(_: web.Request) -> web.Response:
            return web.json_response(self.state())

        async def cut(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else {}
            try:
                self.cut(body.get("mode", "reset"))
            except ValueError as exc:
                return web.json_response({"error": f"cut.{exc}"}, status=400)
            return web.json_response(self.state())

        async def restore(_: web.Request) -> web.Response:
            self.restore()
            return web.json_response(self.state())

        app.router.add_get("/state", state)
        app.router.add_post("/cut", cut)
        app.router.add_post("/restore", restore)
        return app


async def serve(target_host: str, target_port: int, state_file: Path, listen_port: int = 0) -> None:
    proxy = CuttableProxy(target_host, target_port)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen_port)
    runner = web.AppRunner(proxy.control_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state = {"listen_port": server.sockets[0].getsockname()[1], "control_port": control_port, "pid": os.getpid()}
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(state_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to (loopback)")
    parser.add_argument("--state-file", required=True, type=Path)
    parser.add_argument("--listen-port", type=int, default=0)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not host.startswith("127.") and host != "localhost":
        parser.error("--target must be a loopback address")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(host, int(port), args.state_file, args.listen_port))


if __name__ == "__main__":
    main()
