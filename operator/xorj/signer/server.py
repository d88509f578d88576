"""The signer boundary's server: holds the vault keys (a :class:`~xorj.chain.keyring.Keyring`) and
serves the executor's :class:`~xorj.executor.signing.SignerClient` on a Unix socket.

It never trusts the caller. For each POST /v1/sign it decides on its own, in this order, and answers
a refusal (:class:`~xorj.domain.signing.SigningRefusal`, logged without secrets) unless all hold:

1. the body is at most ``max_body_bytes`` and parses; fewer than ``max_in_flight`` requests are served;
2. the ledger holds the trade (read by the signer itself), its vault is one the signer holds, and
   the trade may get a new attempt (PENDING, or SUBMITTED with every attempt resolved without landing:
   :func:`~xorj.domain.signing.new_attempt_refusal`);
3. no signature this process gave for the same attempt is still unaccounted for: not in the ledger and
   still valid on chain (:func:`~xorj.domain.signing.unrecorded_signature_refusal`);
4. the quote is the trade's (mints, amount, ExactIn, slippage within the trade's and the signer's
   cap) and passes the quote checks;
5. the transaction passes the swap guard (:class:`~xorj.chain.swap_guard.SwapGuard`: every
   instruction, validity from the signer's own RPC, a simulation with the vault's accounts).

Only then the trade's vault key signs. GET /v1/vaults/{vault} says whether a vault's key is held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import weakref
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from xorj.chain.errors import (
    ChainCallError,
    MalformedAnswerError,
    QuoteRejectedError,
    SimulationFailedError,
    SwapRejectedError,
)
from xorj.chain.jupiter import Quote, QuoteResponse, SwapResponse
from xorj.chain.keyring import Keyring
from xorj.chain.rpc import RpcTimeouts, SolanaRpc
from xorj.chain.swap_check import check_quote
from xorj.chain.swap_guard import SwapGuard
from xorj.domain.signing import (
    IssuedSignature,
    Refusal,
    SigningRefusal,
    new_attempt_refusal,
    unrecorded_signature_refusal,
)
from xorj.domain.trades import ReasonCode, Trade
from xorj.errors import LedgerError
from xorj.executor.signing import SIGN_PATH, VAULTS_PATH, RefusalAnswer, SignAnswer, SignRequest
from xorj.ledger import transactions as tx
from xorj.ledger.aio import AsyncLedger
from xorj.redaction import redact_urls
from xorj.signer.settings import SignerSettings

log = logging.getLogger(__name__)

LEDGER_APPLICATION_NAME = "xorj-signer"

# HTTP status of each refusal (the code in the body is what callers act on)
_STATUS = {
    SigningRefusal.BAD_REQUEST: 400, SigningRefusal.TOO_LARGE: 413, SigningRefusal.BUSY: 429,
    SigningRefusal.TRADE_UNKNOWN: 404, SigningRefusal.VAULT_NOT_HELD: 403, SigningRefusal.TRADE_STATE: 409,
    SigningRefusal.ATTEMPT_IN_FLIGHT: 409, SigningRefusal.SIGNED_NOT_RECORDED: 409,
    SigningRefusal.QUOTE_MISMATCH: 403, SigningRefusal.QUOTE_REJECTED: 403, SigningRefusal.SWAP_REJECTED: 403,
    SigningRefusal.SIMULATION_FAILED: 422, SigningRefusal.CHAIN_ERROR: 503,
}


class _Refused(Exception):
    def __init__(self, refusal: Refusal, *, rule: str | None = None, reason: ReasonCode | None = None) -> None:
        super().__init__(refusal.detail)
        self.refusal, self.rule, self.reason = refusal, rule, reason


def _refuse(code: SigningRefusal, detail: str, *, rule: str | None = None,
            reason: ReasonCode | None = None) -> _Refused:
    return _Refused(Refusal(code, detail), rule=rule, reason=reason)


class SignerService:
    """The signer process: ``keyring``, ``ledger`` and ``rpc`` are built from the settings unless given."""

    def __init__(self, settings: SignerSettings, *, keyring: Keyring | None = None,
                 ledger: AsyncLedger | None = None, rpc: SolanaRpc | None = None) -> None:
        self.settings = settings
        if keyring is None:
            keyring = (Keyring.from_file(settings.keypair_file, field="XORJ_SIGNER_KEYPAIR_FILE")
                       if settings.keypair_file is not None else
                       Keyring.from_directory(settings.keys_dir or Path(), field="XORJ_SIGNER_KEYS_DIR",
                                              check_interval=settings.keys_check_seconds))
        self.keyring = keyring
        self._own_ledger = ledger is None
        self.ledger = ledger or AsyncLedger.for_dsn(settings.ledger_dsn.get_secret_value(),
                                                    name=LEDGER_APPLICATION_NAME)
        self._own_rpc = rpc is None
        self.rpc = rpc or SolanaRpc(settings.rpc_url_with_key(), timeouts=RpcTimeouts(read=settings.rpc_timeout_seconds,
                                                                           send=settings.rpc_timeout_seconds))
        self.guard = SwapGuard(self.rpc, settings.swap_limits())
        self._issued: dict[int, IssuedSignature] = {}
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._in_flight = 0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # ---- serving ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_post(SIGN_PATH, self._sign)
        app.router.add_get(VAULTS_PATH + "{vault}", self._vault)
        return app

    async def start(self) -> None:
        if self._own_ledger:
            await self.ledger.open()
        path = self.settings.socket
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by an earlier run
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(path)).start()
        os.chmod(path, 0o660)  # the executor's container shares the group, nobody else
        log.info("signer started", extra={"socket": str(path), "keys": self.keyring.describe()})

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.close()
        log.info("signer stopped")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_rpc:
            await self.rpc.close()
        if self._own_ledger:
            await self.ledger.close()

    # ---- handlers ---------------------------------------------------------------------------

    async def _vault(self, request: web.Request) -> web.Response:
        vault = request.match_info["vault"]
        key = self.keyring.get(vault)
        if key is None:
            return self._refusal(_refuse(SigningRefusal.VAULT_NOT_HELD, f"the signer holds {self.keyring.describe()}"),
                                 None)
        return web.json_response({"vault": str(key.pubkey)})

    async def _sign(self, request: web.Request) -> web.Response:
        if self._in_flight >= self.settings.max_in_flight:
            return self._refusal(_refuse(SigningRefusal.BUSY, f"{self._in_flight} requests in flight"), None)
        self._in_flight += 1
        trade_id: int | None = None
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise _refuse(SigningRefusal.TOO_LARGE,
                              f"body larger than {self.settings.max_body_bytes} bytes") from None
            try:
                asked = SignRequest.model_validate_json(body)
                trade_id = asked.trade_id
                answer = SwapResponse.model_validate(asked.swap)
                quote = Quote(model=QuoteResponse.model_validate(asked.quote), raw=asked.quote)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"]) or "body"
                raise _refuse(SigningRefusal.BAD_REQUEST, f"{where}: {error['msg']}") from None
            lock = self._locks.get(trade_id)
            if lock is None:
                lock = self._locks[trade_id] = asyncio.Lock()
            async with lock:  # one decision at a time per trade (a second signature must see the first)
                signed = await self._checked_sign(trade_id, answer, quote)
            return web.json_response(signed.model_dump())
        except _Refused as refused:
            return self._refusal(refused, trade_id)
        finally:
            self._in_flight -= 1

    def _refusal(self, refused: _Refused, trade_id: int | None) -> web.Response:
        refusal = refused.refusal
        detail = redact_urls(refusal.detail)  # an RPC error may name the endpoint: never its credentials
        log.warning("signing refused", extra={"trade_id": trade_id, "refused": refusal.code.value,
                                              "rule": refused.rule, "detail": detail[:300]})
        body = RefusalAnswer(refused=refusal.code, detail=detail[:1000], rule=refused.rule,
                             reason=refused.reason)
        return web.json_response(body.model_dump(mode="json"), status=_STATUS[refusal.code])

    # ---- the checks -------------------------------------------------------------------------

    async def _checked_sign(self, trade_id: int, answer: SwapResponse, quote: Quote) -> SignAnswer:
        trade = await self._ledger_read(trade_id)
        key = self.keyring.get(trade.vault)
        if key is None:
            raise _refuse(SigningRefusal.VAULT_NOT_HELD, f"trade {trade_id} is for vault {trade.vault}; the signer "
                          f"holds {self.keyring.describe()}")
        refusal = new_attempt_refusal(trade)
        if refusal is not None:
            raise _Refused(refusal)
        self._check_quote(trade, quote)
        await self._check_issued(trade)
        try:
            signed = await self.guard.sign(answer, quote, key, input_mint=trade.input_mint,
                                           output_mint=trade.output_mint, amount=trade.amount)
        except SwapRejectedError as exc:
            raise _refuse(SigningRefusal.SWAP_REJECTED, str(exc), rule=exc.rule, reason=exc.reason) from None
        except QuoteRejectedError as exc:
            raise _refuse(SigningRefusal.QUOTE_REJECTED, str(exc), rule=exc.rule, reason=exc.reason) from None
        except SimulationFailedError as exc:
            raise _refuse(SigningRefusal.SIMULATION_FAILED, str(exc), reason=exc.reason) from None
        except MalformedAnswerError as exc:
            raise _refuse(SigningRefusal.SWAP_REJECTED, str(exc), rule="malformed",
                          reason=ReasonCode.MALFORMED_RESPONSE) from None
        except ChainCallError as exc:
            raise _refuse(SigningRefusal.CHAIN_ERROR, str(exc), reason=exc.reason) from None
        self._issued[trade_id] = IssuedSignature(len(trade.attempts) + 1, str(signed.signature),
                                                 signed.last_valid_block_height)
        log.info("signed", extra={"trade_id": trade_id, "vault": trade.vault, "attempt_no": len(trade.attempts) + 1,
                                  "signature": str(signed.signature),
                                  "last_valid_block_height": signed.last_valid_block_height})
        return SignAnswer(transaction=base64.b64encode(signed.tx_bytes).decode(),
                          last_valid_block_height=signed.last_valid_block_height,
                          program_ids=list(signed.program_ids))

    async def _ledger_read(self, trade_id: int) -> Trade:
        try:
            trade = await self.ledger.run(tx.find_trade(trade_id))
        except LedgerError as exc:
            raise _refuse(SigningRefusal.CHAIN_ERROR, f"ledger: {type(exc).__name__}",
                          reason=ReasonCode.LEDGER_UNAVAILABLE) from None
        if trade is None:
            raise _refuse(SigningRefusal.TRADE_UNKNOWN, f"the ledger holds no trade {trade_id}")
        return trade

    def _check_quote(self, trade: Trade, quote: Quote) -> None:
        model = quote.model
        bound = min(self.settings.slippage_cap_bps, trade.max_slippage_bps or self.settings.slippage_cap_bps)
        if (model.input_mint, model.output_mint, model.in_amount, model.swap_mode) != (
                trade.input_mint, trade.output_mint, trade.amount, "ExactIn"):
            raise _refuse(SigningRefusal.QUOTE_MISMATCH, f"the quote is not for trade {trade.trade_id}'s "
                          "mints and amount (ExactIn)")
        if model.slippage_bps > bound:
            raise _refuse(SigningRefusal.QUOTE_MISMATCH, f"the quote's slippage {model.slippage_bps} bps is above "
                          f"the {bound} bps allowed for trade {trade.trade_id}")
        try:
            check_quote(out_amount=model.out_amount, other_amount_threshold=model.other_amount_threshold,
                        price_impact_pct=model.price_impact_pct, slippage_bps=model.slippage_bps,
                        numbers={"timeTaken": model.time_taken})
        except QuoteRejectedError as exc:
            raise _refuse(SigningRefusal.QUOTE_REJECTED, str(exc), rule=exc.rule, reason=exc.reason) from None

    async def _check_issued(self, trade: Trade) -> None:
        issued = self._issued.get(trade.trade_id)
        if issued is None or len(trade.attempts) >= issued.attempt_no:
            return
        try:
            # the same bytes may have been recorded for another trade (identical swaps of one vault)
            if await self.ledger.run(tx.attempt_trade(issued.signature)) is not None:
                return
            height = await self.rpc.block_height("finalized")
        except LedgerError as exc:
            raise _refuse(SigningRefusal.CHAIN_ERROR, f"ledger: {type(exc).__name__}",
                          reason=ReasonCode.LEDGER_UNAVAILABLE) from None
        except ChainCallError as exc:
            raise _refuse(SigningRefusal.CHAIN_ERROR, str(exc), reason=exc.reason) from None
        refusal = unrecorded_signature_refusal(trade, issued, height)
        if refusal is not None:
            raise _Refused(refusal, reason=ReasonCode.BLOCKHASH_EXPIRED)
        del self._issued[trade.trade_id]
