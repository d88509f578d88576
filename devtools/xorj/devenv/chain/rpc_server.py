"""The local chain's HTTP server: Solana JSON-RPC, Jupiter swap API v1 and an admin API, on one port.

Stands in for three real services a trading client talks to:
- a Solana RPC node (``POST /`` JSON-RPC 2.0, ``GET /health``, and its PubSub WebSocket at ``GET /``
  serving ``logsSubscribe`` with a ``mentions`` filter), over LiteSVM (``node``/``rpc_methods``), and more RPC nodes of the same cluster at ``POST /nodes/<name>/`` (same chain; faults may target one);
- Jupiter's hosted swap API v1 (``GET /swap/v1/quote``, ``POST /swap/v1/swap``) and price API v3
  (``GET /price/v3?ids=...``) over a local constant-product market (``market``);
- nothing real: ``/admin/...`` lets tests and chaos probes inject faults (``faults``), move prices,
  produce or pause blocks, count the swaps each vault filled on chain and show a vault's funds
  (``/admin/vault``).

Every LiteSVM call runs on the event loop thread, so transactions are processed one at a time in
arrival order, as a single leader would; blocks are produced by a clock task every ``slot_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from solders.pubkey import Pubkey

from xorj.devenv.chain.faults import MAIN_NODE, Decision, FaultEngine, FaultSpec
from xorj.devenv.chain.market import Market, SwapApiError
from xorj.devenv.chain.node import MAX_PROCESSING_AGE, LocalChainNode, RpcError, parse_pubkey
from xorj.devenv.chain.rpc_methods import RpcMethods
from xorj.errors import InvalidInputError

log = logging.getLogger("xorj.devenv.chain")

SWAP_API_PREFIX = "/swap/v1"
PRICE_API_PATH = "/price/v3"
ADMIN_PREFIX = "/admin"


@dataclass
class ChainServer:
    node: LocalChainNode
    market: Market
    slot_ms: int = 400
    faults: FaultEngine = field(default_factory=FaultEngine)
    paused: bool = False
    # a raw body served instead of the price API's answer (hostile-answer tests); None: the market's
    price_answer: str | None = None

    def __post_init__(self) -> None:
        self.rpc = RpcMethods(self.node)
        self._clock_task: asyncio.Task[None] | None = None
        self.requests: dict[str, int] = {}
        # logsSubscribe (mentions): subscription id -> (socket, address, commitment), and per
        # commitment the index in node.landed up to which notifications were sent
        self._log_subscriptions: dict[int, tuple[web.WebSocketResponse, str, str]] = {}
        self._log_cursor: dict[str, int] = {}
        self._next_subscription = 1
        # CPU seconds of the event loop thread spent answering each method (the benches' per-method
        # profile of the stand-in: it must not be what an executor bench measures)
        self.request_cpu: dict[str, float] = {}

    # ---- app --------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/", self.handle_rpc)
        app.router.add_get("/", self.handle_websocket)  # the PubSub WebSocket on the RPC's own URL (ws://)
        app.router.add_post("/nodes/{node}", self.handle_rpc)  # more RPC nodes of the cluster (fault scope)
        app.router.add_post("/nodes/{node}/", self.handle_rpc)
        app.router.add_get("/health", self.handle_health)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get(f"{SWAP_API_PREFIX}/quote", self.handle_quote)
        app.router.add_post(f"{SWAP_API_PREFIX}/swap", self.handle_swap)
        app.router.add_get(PRICE_API_PATH, self.handle_price)
        app.router.add_post(f"{ADMIN_PREFIX}/price_answer", self.admin_price_answer)
        app.router.add_get(f"{ADMIN_PREFIX}/state", self.admin_state)
        app.router.add_post(f"{ADMIN_PREFIX}/faults", self.admin_add_fault)
        app.router.add_get(f"{ADMIN_PREFIX}/faults", self.admin_list_faults)
        app.router.add_delete(f"{ADMIN_PREFIX}/faults", self.admin_clear_faults)
        app.router.add_delete(f"{ADMIN_PREFIX}/faults/{{fault_id}}", self.admin_remove_fault)
        app.router.add_post(f"{ADMIN_PREFIX}/reset", self.admin_reset)
        app.router.add_post(f"{ADMIN_PREFIX}/price", self.admin_price)
        app.router.add_post(f"{ADMIN_PREFIX}/blocks", self.admin_blocks)
        app.router.add_post(f"{ADMIN_PREFIX}/expire", self.admin_expire)
        app.router.add_post(f"{ADMIN_PREFIX}/pause", self.admin_pause)
        app.router.add_post(f"{ADMIN_PREFIX}/clock", self.admin_clock)
        app.router.add_post(f"{ADMIN_PREFIX}/fund", self.admin_fund)
        app.router.add_get(f"{ADMIN_PREFIX}/swaps", self.admin_swaps)
        app.router.add_get(f"{ADMIN_PREFIX}/vault", self.admin_vault)
        app.on_startup.append(self._start_clock)
        app.on_cleanup.append(self._stop_clock)
        return app

    async def _start_clock(self, app: web.Application) -> None:
        self._clock_task = asyncio.create_task(self._clock())

    async def _stop_clock(self, app: web.Application) -> None:
        if self._clock_task:
            self._clock_task.cancel()
            try:
                await self._clock_task
            except asyncio.CancelledError:
                pass

    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.slot_ms / 1000
        deadline = loop.time()
        while True:
            deadline += interval
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if loop.time() - deadline > 10 * interval:
                deadline = loop.time()  # the process was stopped for a while: no burst of blocks
            if not self.paused:
                self.node.advance(1)
            if self._log_subscriptions:
                await self._notify_logs()

    # ---- PubSub: logsSubscribe with a mentions filter ------------------------------------------------
    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        """Solana's PubSub WebSocket, logsSubscribe/logsUnsubscribe only: ``{"mentions": [address]}``
        (one address per subscription, as real nodes require) at a commitment (default finalized).
        A notification is sent once the transaction's block reaches that commitment:
        ``logsNotification`` with the signature, err and logs."""
        socket = web.WebSocketResponse(heartbeat=30)
        await socket.prepare(request)
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                await socket.send_json(self._pubsub_call(socket, message.data))
        finally:
            for sub_id in [i for i, (s, _, _) in self._log_subscriptions.items() if s is socket]:
                self._log_subscriptions.pop(sub_id, None)
        return socket

    def _pubsub_call(self, socket: web.WebSocketResponse, text: str) -> dict[str, Any]:
        try:
            call = json.loads(text)
        except ValueError:
            return {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
        call_id = call.get("id") if isinstance(call, dict) else None

        def error(code: int, message: str) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": call_id}

        if not isinstance(call, dict):
            return error(-32600, "Invalid request")
        params = call.get("params") or []
        if call.get("method") == "logsSubscribe":
            filter_ = params[0] if params else None
            config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
            if not isinstance(filter_, dict) or not isinstance(filter_.get("mentions"), list):
                return error(-32602, "Invalid params: only the {\"mentions\": [address]} filter is served")
            if len(filter_["mentions"]) != 1:
                return error(-32602, "Invalid Request: Only 1 address supported")
            try:
                address = str(parse_pubkey(filter_["mentions"][0]))
            except RpcError as exc:
                return {"jsonrpc": "2.0", "error": exc.to_json(), "id": call_id}
            commitment = config.get("commitment") or "finalized"
            if commitment not in ("processed", "confirmed", "finalized"):
                return error(-32602, f"Invalid params: unknown commitment {commitment!r}")
            if commitment not in self._log_cursor:  # from the first record not yet at that commitment
                limit = self.node.block_at(commitment).height
                landed = self.node.landed
                position = len(landed)
                while position > 0 and landed[position - 1].height > limit:
                    position -= 1
                self._log_cursor[commitment] = position
            sub_id = self._next_subscription
            self._next_subscription += 1
            self._log_subscriptions[sub_id] = (socket, address, commitment)
            return {"jsonrpc": "2.0", "result": sub_id, "id": call_id}
        if call.get("method") == "logsUnsubscribe":
            ok = bool(params) and isinstance(params[0], int) and self._log_subscriptions.pop(params[0], None) is not None
            return {"jsonrpc": "2.0", "result": ok, "id": call_id}
        return error(-32601, "Method not found")

    async def _notify_logs(self) -> None:
        landed = self.node.landed
        for commitment in {c for _, _, c in self._log_subscriptions.values()}:
            limit = self.node.block_at(commitment).height
            position = self._log_cursor.get(commitment, len(landed))
            while position < len(landed) and landed[position].height <= limit:
                record = landed[position]
                keys = {str(k) for k in record.transaction.message.account_keys}
                keys.update(record.loaded_writable, record.loaded_readonly)
                for sub_id, (socket, address, wanted) in list(self._log_subscriptions.items()):
                    if wanted == commitment and address in keys and not socket.closed:
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await socket.send_json({"jsonrpc": "2.0", "method": "logsNotification", "params": {
                                "result": {"context": {"slot": record.slot},
                                           "value": {"signature": record.signature, "err": record.err,
                                                     "logs": record.logs}},
                                "subscription": sub_id}})
                position += 1
            self._log_cursor[commitment] = position

    # ---- fault plumbing ---------------------------------------------------------------------------
    async def _with_faults(self, request: web.Request, method: str,
                           work: Callable[[], web.StreamResponse],
                           error_answer: Callable[[FaultSpec], web.StreamResponse]) -> web.StreamResponse:
        self.requests[method] = self.requests.get(method, 0) + 1
        node = request.match_info.get("node", MAIN_NODE)
        decision: Decision = self.faults.decide(method, node)
        if decision.delay_ms:
            await asyncio.sleep(decision.delay_ms / 1000)
        fault = decision.fault
        if fault is None:
            started = time.thread_time()
            try:
                return work()
            finally:
                self.request_cpu[method] = self.request_cpu.get(method, 0.0) + time.thread_time() - started
        log.info("fault fired", extra={"fault_kind": fault.kind, "method": method, "node": node})
        if fault.kind == "timeout":
            return await self._hang_and_drop(request, fault.hang_s)
        if fault.kind in ("error", "answer"):
            return error_answer(fault)
        if fault.kind == "http_error":
            return web.Response(status=fault.status, text=f"{fault.status} injected fault\n")
        if fault.kind == "status_lag":
            self.rpc.status_lag_blocks = fault.blocks  # the loop is single-threaded: only this call sees it
            try:
                return work()
            finally:
                self.rpc.status_lag_blocks = 0
        if fault.kind == "hostile":
            # the market serves this one call as a hostile API (the loop is single-threaded)
            self.market.hostile = fault.mode
            try:
                return work()
            finally:
                self.market.hostile = None
        if fault.kind == "malformed":
            return web.Response(status=200, content_type="application/json", text='{"jsonrpc":"2.0","result":{"va')
        # drop_after_process: the work is done (a transaction lands), only the answer is lost
        work()
        if fault.answer == "timeout":
            return await self._hang_and_drop(request, fault.hang_s)
        if fault.answer == "close":
            return self._drop(request)
        if fault.answer == "error":
            return error_answer(fault)
        return web.Response(status=fault.status, text=f"{fault.status} injected fault\n")

    async def _hang_and_drop(self, request: web.Request, seconds: float) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return self._drop(request)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp ends the handler quietly; the client sees a reset

    # ---- JSON-RPC ---------------------------------------------------------------------------------
    def _dispatch(self, call: Any) -> dict[str, Any]:
        if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str):
            return {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"},
                    "id": call.get("id") if isinstance(call, dict) else None}
        try:
            result = self.rpc.call(call["method"], call.get("params"))
            return {"jsonrpc": "2.0", "result": result, "id": call.get("id")}
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": call.get("id")}
        except InvalidInputError as exc:
            return {"jsonrpc": "2.0", "error": {"code": -32602, "message": str(exc)}, "id": call.get("id")}

    async def handle_rpc(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"},
                                      "id": None})
        if isinstance(body, list):
            method = body[0].get("method", "") if body and isinstance(body[0], dict) else ""
            call_id = None
            work = lambda: web.json_response([self._dispatch(call) for call in body])  # noqa: E731
        else:
            method = body.get("method", "") if isinstance(body, dict) else ""
            call_id = body.get("id") if isinstance(body, dict) else None
            work = lambda: web.json_response(self._dispatch(body))  # noqa: E731

        def rpc_error(fault: FaultSpec) -> web.StreamResponse:
            if fault.kind == "answer":
                return web.json_response({"jsonrpc": "2.0", "result": fault.result, "id": call_id})
            error: dict[str, Any] = {"code": fault.code, "message": fault.message}
            if fault.code == -32005:
                error["data"] = {"numSlotsBehind": 42}
            return web.json_response({"jsonrpc": "2.0", "error": error, "id": call_id})

        return await self._with_faults(request, method, work, rpc_error)

    async def handle_health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def handle_metrics(self, request: web.Request) -> web.StreamResponse:
        """The simulator's own state for the local Prometheus: requests by method, slot, faults."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

        registry = CollectorRegistry()
        requests = Counter("xorj_chain_requests", "Requests served by the local chain, by RPC or API method.",
                           ["method"], registry=registry)
        for method, count in self.requests.items():
            requests.labels(method).inc(count)
        Gauge("xorj_chain_slot", "The local chain's current slot.", registry=registry).set(self.node.slot)
        Gauge("xorj_chain_faults_active", "Faults injected and not yet cleared.",
              registry=registry).set(len(self.faults.to_json()))
        fired = Counter("xorj_chain_faults_fired", "Injected faults that fired, by fault kind and method.",
                        ["kind", "method"], registry=registry)
        for key, count in dict(self.faults.fired_total).items():
            kind, _, method = key.partition(":")
            fired.labels(kind, method).inc(count)
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ---- Jupiter swap API -------------------------------------------------------------------------
    @staticmethod
    def _swap_api_error(fault: FaultSpec) -> web.StreamResponse:
        return web.json_response({"error": fault.message, "errorCode": "INJECTED_FAULT"}, status=500)

    def _swap_api(self, produce: Callable[[], dict[str, Any]]) -> web.StreamResponse:
        try:
            return web.json_response(produce())
        except SwapApiError as exc:
            return web.json_response(exc.to_json(), status=exc.status)

    async def handle_quote(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        return await self._with_faults(request, "quote", lambda: self._swap_api(lambda: self.market.quote(params)),
                                       self._swap_api_error)

    async def handle_swap(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "Request body must be valid JSON", "errorCode": "INVALID_REQUEST"},
                                     status=400)
        return await self._with_faults(request, "swap", lambda: self._swap_api(lambda: self.market.swap(body)),
                                       self._swap_api_error)

    async def handle_price(self, request: web.Request) -> web.StreamResponse:
        ids = request.query.get("ids")

        def answer() -> web.StreamResponse:
            if self.price_answer is not None:
                return web.Response(status=200, content_type="application/json", text=self.price_answer)
            return self._swap_api(lambda: self.market.usd_prices(ids))

        return await self._with_faults(request, "price", answer, self._swap_api_error)

    async def admin_price_answer(self, request: web.Request) -> web.StreamResponse:
        def set_answer(body: Any) -> Any:
            text = body.get("body") if isinstance(body, dict) else None
            if text is not None and not isinstance(text, str):
                raise InvalidInputError("body: must be a string (the raw answer) or null (the market's own)")
            self.price_answer = text
            return {"price_answer": text}
        return await self._admin(request, set_answer)

    # ---- admin ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        node, market = self.node, self.market
        return {
            "slot": node.slot,
            "blockHeight": node.height,
            "finalizedSlot": node.slot_at("finalized"),
            "paused": self.paused,
            "slotMs": self.slot_ms,
            "maxProcessingAge": MAX_PROCESSING_AGE,
            "transactions": len(node.records),
            "mints": {symbol: str(info.address) for symbol, info in market.mints.items()},
            "price": market.price(),
            "reserves": {market.base_mint.symbol: market.reserves(market.base_mint.address,
                                                                   market.quote_mint.address)[0],
                         market.quote_mint.symbol: market.reserves(market.quote_mint.address,
                                                                    market.base_mint.address)[0]},
            "faults": self.faults.to_json(),
            "faultsFired": dict(self.faults.fired_total),
            "requests": dict(self.requests),
            "requestCpuSeconds": {method: round(cpu, 6) for method, cpu in self.request_cpu.items()},
        }

    async def _json_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise InvalidInputError("request body must be valid JSON") from None

    async def _admin(self, request: web.Request, action: Callable[[Any], Any] | Callable[[Any], Awaitable[Any]],
                     ) -> web.StreamResponse:
        try:
            body = await self._json_body(request)
            result = action(body)
            if asyncio.iscoroutine(result):
                result = await result
            return web.json_response(result)
        except (InvalidInputError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def admin_state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def admin_add_fault(self, request: web.Request) -> web.StreamResponse:
        def add(body: Any) -> Any:
            fault_id = self.faults.add(FaultSpec.from_json(body))
            log.info("fault added", extra={"fault_id": fault_id, "fault": body})
            return {"id": fault_id}
        return await self._admin(request, add)

    async def admin_list_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"faults": self.faults.to_json(), "fired": dict(self.faults.fired_total)})

    async def admin_clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.reset()
        return web.json_response({"faults": []})

    async def admin_remove_fault(self, request: web.Request) -> web.StreamResponse:
        text = request.match_info["fault_id"]
        if not text.isdigit():
            return web.json_response({"error": f"fault id must be a positive integer, got {text!r}"}, status=400)
        if not self.faults.remove(int(text)):
            return web.json_response({"error": f"no active fault with id {text}"}, status=404)
        log.info("fault removed", extra={"fault_id": int(text)})
        return web.json_response({"faults": self.faults.to_json()})

    async def admin_reset(self, request: web.Request) -> web.StreamResponse:
        self.faults.reset()
        self.paused = False
        self.price_answer = None
        return web.json_response(self.state())

    async def admin_price(self, request: web.Request) -> web.StreamResponse:
        def move(body: Any) -> Any:
            bps = body.get("bps") if isinstance(body, dict) else None
            if not isinstance(bps, int) or isinstance(bps, bool) or bps <= -10_000:
                raise InvalidInputError("price.bps must be an integer greater than -10000 (basis points)")
            price = self.market.move_price(bps)
            log.info("price moved", extra={"bps": bps, "price": price})
            return {"price": price}
        return await self._admin(request, move)

    async def admin_blocks(self, request: web.Request) -> web.StreamResponse:
        def advance(body: Any) -> Any:
            count = body.get("count", 1) if isinstance(body, dict) else None
            if not isinstance(count, int) or not 1 <= count <= 100_000:
                raise InvalidInputError("blocks.count must be an integer between 1 and 100000")
            self.node.advance(count)
            return {"slot": self.node.slot, "blockHeight": self.node.height}
        return await self._admin(request, advance)

    async def admin_expire(self, request: web.Request) -> web.StreamResponse:
        """Forced blockhash expiry: produce enough blocks that every blockhash handed out so far is too old."""
        self.node.advance(MAX_PROCESSING_AGE + 1)
        log.info("blockhashes expired", extra={"slot": self.node.slot})
        return web.json_response({"slot": self.node.slot, "blockHeight": self.node.height})

    async def admin_pause(self, request: web.Request) -> web.StreamResponse:
        def pause(body: Any) -> Any:
            paused = body.get("paused", True) if isinstance(body, dict) else None
            if not isinstance(paused, bool):
                raise InvalidInputError("pause.paused must be true or false")
            self.paused = paused
            return {"paused": self.paused, "slot": self.node.slot}
        return await self._admin(request, pause)

    async def admin_clock(self, request: web.Request) -> web.StreamResponse:
        def pin(body: Any) -> Any:
            if not isinstance(body, dict) or "blockTime" not in body:
                raise InvalidInputError("clock.blockTime is required: unix seconds, or null for the wall clock")
            block_time = body["blockTime"]
            if block_time is not None and (not isinstance(block_time, int) or isinstance(block_time, bool)
                                           or not 0 <= block_time <= 253_402_300_799):
                raise InvalidInputError("clock.blockTime must be unix seconds (an integer 0..253402300799) or null")
            block = self.node.pin_block_time(block_time)
            return {"slot": block.slot, "blockTime": block.block_time, "pinned": block_time is not None}
        return await self._admin(request, pin)

    async def admin_fund(self, request: web.Request) -> web.StreamResponse:
        def fund(body: Any) -> Any:
            if not isinstance(body, dict):
                raise InvalidInputError("fund: body must be a JSON object")
            try:
                owner = Pubkey.from_string(str(body.get("pubkey")))
            except ValueError:
                raise InvalidInputError("fund.pubkey must be a base-58 public key") from None
            lamports, tokens = body.get("lamports"), body.get("tokens", {})
            if not isinstance(lamports, int) or isinstance(lamports, bool) or not 0 <= lamports <= 10**18:
                raise InvalidInputError("fund.lamports must be an integer 0..10^18")
            if not isinstance(tokens, dict) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64 for v in tokens.values()):
                raise InvalidInputError("fund.tokens must map mint symbols to integer base units 0..2^64-1")
            try:
                self.market.fund_wallet(owner, lamports, tokens)
            except ValueError as exc:
                raise InvalidInputError(f"fund.tokens: {exc}") from None
            return {"pubkey": str(owner)}
        return await self._admin(request, fund)

    async def admin_vault(self, request: web.Request) -> web.StreamResponse:
        vault = request.query.get("vault", "")
        try:
            return web.json_response(self.market.vault_state(vault))
        except ValueError:
            return web.json_response({"error": f"vault must be a base-58 public key, got {vault!r}"}, status=400)

    async def admin_swaps(self, request: web.Request) -> web.StreamResponse:
        vault = request.query.get("vault")
        vaults = [vault] if vault else list(self.market.vaults)
        out = {}
        for pubkey in vaults:
            swaps = self.market.swaps_of(pubkey)
            out[pubkey] = {"swaps": swaps, "filled": [s["signature"] for s in swaps if s["filled"]],
                           "failed": [s["signature"] for s in swaps if not s["filled"]]}
        return web.json_response({"vaults": out})
