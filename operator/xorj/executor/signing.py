"""The executor's signers (the :class:`~xorj.executor.ports.Signer` port): the vault keys in this
process (:class:`KeyringSigner`, one keypair file or a directory of them), or the signer boundary,
a separate ``xorj signer`` process on a Unix socket that holds the keys and re-checks every request
on its own (:class:`SignerClient`; the server is :mod:`xorj.signer.server`).

The wire format of the boundary lives here too (:class:`SignRequest`, :class:`SignAnswer`,
:class:`RefusalAnswer`), shared by both ends.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj.chain.errors import (
    ChainCallError,
    MalformedAnswerError,
    QuoteRejectedError,
    SimulationFailedError,
    SwapRejectedError,
)
from xorj.chain.jupiter import Quote, SignedSwap, SwapResponse
from xorj.chain.keyring import Keyring
from xorj.chain.keys import VaultKey, check_vault_pubkey, load_vault_key
from xorj.chain.swap_guard import SwapGuard, decode_swap_transaction
from xorj.domain.signing import SigningRefusal
from xorj.domain.trades import ReasonCode, Trade
from xorj.errors import XorjError
from xorj.executor.settings import ExecutorSettings

SIGN_PATH = "/v1/sign"
VAULTS_PATH = "/v1/vaults/"
SIGNER_METHOD = "signer"  # ChainCallError.method of the signer's own failures (waited for, as our RPC)


class VaultNotHeldError(XorjError):
    """The signer holds no key for the trade's vault (the trade fails with VAULT_MISMATCH, unsigned)."""


class SignerRefusedError(SwapRejectedError):
    """The signer boundary refused to sign for a reason of its own (the trade's state in the ledger,
    a quote that is not the trade's): nothing was signed. ``rule`` is ``signer:<code>``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"signer:{code}", message, method=SIGNER_METHOD)


# ---- the wire format ---------------------------------------------------------------------------

class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignRequest(_Wire):
    """Body of POST /v1/sign: the trade (by id: the signer reads it from the ledger), the swap API's
    answer and the quote it was built from, both as the swap API sent them."""

    trade_id: int = Field(gt=0)
    swap: dict[str, Any]
    quote: dict[str, Any]


class SignAnswer(_Wire):
    """Answer of POST /v1/sign: the signed transaction (base64) and the validity our RPC allows."""

    transaction: str = Field(min_length=1)
    last_valid_block_height: int = Field(gt=0)
    program_ids: list[str]


class RefusalAnswer(_Wire):
    """A refused request: the code (:class:`~xorj.domain.signing.SigningRefusal`), the guard's rule and
    the failure's reason code when there is one, and a sentence for people (no secrets)."""

    refused: SigningRefusal
    detail: str
    rule: str | None = None
    reason: ReasonCode | None = None


# ---- in process ---------------------------------------------------------------------------------

def keyring_of(settings: ExecutorSettings, key: VaultKey | None = None) -> Keyring | None:
    """The vault keys this executor holds itself: ``key`` (already loaded), the keypair file (checked
    against ``vault_pubkey``) or the directory of keypair files; None when a signer socket is set (the
    keys stay in the signer process)."""
    if key is None and settings.vault_keypair_file is not None:
        key = load_vault_key(settings.vault_keypair_file)
    if key is not None:
        check_vault_pubkey(key, settings.vault_pubkey)
        return Keyring.of(key)
    if settings.vault_keys_dir is not None:
        return Keyring.from_directory(settings.vault_keys_dir, check_interval=settings.vault_keys_check_seconds)
    return None


class KeyringSigner:
    """The vault keys in this process: the swap guard checks each transaction, then the trade's
    vault key signs it."""

    def __init__(self, keyring: Keyring, guard: SwapGuard) -> None:
        self.keyring = keyring
        self.guard = guard

    async def public_key(self, vault: str) -> Pubkey:
        key = self.keyring.get(vault)
        if key is None:
            raise VaultNotHeldError(f"this executor holds {self.keyring.describe()}")
        return key.pubkey

    async def sign_swap(self, trade: Trade, answer: SwapResponse, quote: Quote) -> SignedSwap:
        key = self.keyring.get(trade.vault)
        if key is None:
            raise VaultNotHeldError(f"this executor holds {self.keyring.describe()}")
        return await self.guard.sign(answer, quote, key, input_mint=trade.input_mint,
                                     output_mint=trade.output_mint, amount=trade.amount)

    def describe(self) -> str:
        return f"in-process keyring ({self.keyring.describe()})"

    async def close(self) -> None:
        return None


# ---- the signer boundary's client ----------------------------------------------------------------

class SignerClient:
    """Asks the ``xorj signer`` process on ``socket`` (a Unix socket) for public keys and signatures.
    ``transport`` replaces the socket (unit tests: ``httpx.MockTransport``). A vault it was told is
    held is remembered for ``held_ttl`` seconds (the sign request re-checks it anyway)."""

    def __init__(self, socket: str, *, timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None,
                 held_ttl: float = 5.0) -> None:
        self.socket = socket
        self._http = httpx.AsyncClient(base_url="http://signer", timeout=httpx.Timeout(timeout),
                                       transport=transport or httpx.AsyncHTTPTransport(uds=socket, retries=0))
        self._held: dict[str, tuple[Pubkey, float]] = {}
        self._held_ttl = held_ttl

    async def close(self) -> None:
        await self._http.aclose()

    def describe(self) -> str:
        return f"signer on {self.socket}"

    async def public_key(self, vault: str) -> Pubkey:
        held = self._held.get(vault)
        if held is not None and held[1] > time.monotonic():
            return held[0]
        resp = await self._request("GET", VAULTS_PATH + vault)
        if resp.status_code != 200:
            self._raise_refusal(resp)
        try:
            pubkey = Pubkey.from_string(str(resp.json()["vault"]))
        except (ValueError, KeyError, TypeError):
            raise MalformedAnswerError("signer: vault answer is not {\"vault\": <public key>}",
                                       method=SIGNER_METHOD) from None
        if str(pubkey) != vault:
            raise MalformedAnswerError(f"signer: asked for vault {vault}, answered {pubkey}", method=SIGNER_METHOD)
        self._held[vault] = (pubkey, time.monotonic() + self._held_ttl)
        return pubkey

    async def sign_swap(self, trade: Trade, answer: SwapResponse, quote: Quote) -> SignedSwap:
        request = SignRequest(trade_id=trade.trade_id, swap=answer.model_dump(by_alias=True, exclude_none=True),
                              quote=quote.raw)
        resp = await self._request("POST", SIGN_PATH, json=request.model_dump())
        if resp.status_code != 200:
            self._held.pop(trade.vault, None)
            self._raise_refusal(resp)
        try:
            signed = SignAnswer.model_validate(resp.json())
            tx = VersionedTransaction.from_bytes(base64.b64decode(signed.transaction, validate=True))
        except (ValidationError, ValueError, binascii.Error):
            raise MalformedAnswerError("signer: sign answer does not match the schema", method=SIGNER_METHOD) from None
        # The signer signs exactly the message it was given, with the trade's vault as fee payer:
        # anything else is not what the swap guard passed here, and is never stored or sent.
        asked = decode_swap_transaction(answer)
        message = to_bytes_versioned(tx.message)
        vault = Pubkey.from_string(trade.vault)
        if (message != to_bytes_versioned(asked.message) or list(tx.message.account_keys)[0] != vault
                or not tx.signatures[0].verify(vault, message)):
            raise MalformedAnswerError("signer: the signed transaction is not the vault's signature of the "
                                       "message asked for", method=SIGNER_METHOD)
        return SignedSwap(tx_bytes=bytes(tx), signature=tx.signatures[0],
                          last_valid_block_height=signed.last_valid_block_height,
                          program_ids=tuple(signed.program_ids), quote=quote)

    async def _request(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(verb, path, **kwargs)
        except httpx.HTTPError as exc:
            # the signer is away (restarting, not yet started): nothing was signed; waiting is safe
            raise ChainCallError(f"signer: {type(exc).__name__} on {self.socket}", method=SIGNER_METHOD,
                                 reason=ReasonCode.RPC_ERROR) from None

    @staticmethod
    def _raise_refusal(resp: httpx.Response) -> None:
        try:
            refusal = RefusalAnswer.model_validate(resp.json())
        except (ValidationError, ValueError):
            raise MalformedAnswerError(f"signer: HTTP {resp.status_code} without a refusal body",
                                       method=SIGNER_METHOD) from None
        raise refusal_error(refusal)


class EarlierSignatureLiveError(ChainCallError):
    """The signer already gave a signature for this attempt that the ledger does not hold (its
    write-ahead commit was lost, for instance in a ledger outage) and that can still land: it signs no
    second one until the chain's block height passes the first one's validity. Nothing new was
    signed, and the wait is bounded by a blockhash's lifetime, so the executor waits it out instead of
    counting it against its RPC patience (:attr:`xorj.executor.submission.SubmissionSettings.prepare_live_signature_patience`)."""


def refusal_error(refusal: RefusalAnswer) -> Exception:
    """The exception the submission algorithm acts on for a refusal: the same it would meet with the
    keys in process (a guard refusal stays SWAP_REJECTED with its rule, a failed simulation keeps
    its reason), VAULT_MISMATCH for a vault not held, a wait for a busy signer or a live earlier
    signature, and SWAP_REJECTED with rule ``signer:<code>`` for the rest."""
    code, detail = refusal.refused, f"signer refused ({refusal.refused.value}): {refusal.detail}"
    match code:
        case SigningRefusal.VAULT_NOT_HELD:
            return VaultNotHeldError(refusal.detail)
        case SigningRefusal.SWAP_REJECTED if refusal.reason is ReasonCode.MALFORMED_RESPONSE:
            return MalformedAnswerError(detail, method="swap")
        case SigningRefusal.SWAP_REJECTED:
            return SwapRejectedError(refusal.rule or "signer", detail)
        case SigningRefusal.QUOTE_REJECTED:
            return QuoteRejectedError(refusal.rule or "signer", detail)
        case SigningRefusal.SIMULATION_FAILED:
            return SimulationFailedError(detail, reason=refusal.reason or ReasonCode.PROGRAM_ERROR)
        case SigningRefusal.SIGNED_NOT_RECORDED:
            return EarlierSignatureLiveError(detail, method=SIGNER_METHOD,
                                             reason=refusal.reason or ReasonCode.BLOCKHASH_EXPIRED)
        case SigningRefusal.CHAIN_ERROR | SigningRefusal.BUSY:
            return ChainCallError(detail, method=SIGNER_METHOD, reason=refusal.reason or ReasonCode.RPC_ERROR)
        case _:
            return SignerRefusedError(code.value, detail)
