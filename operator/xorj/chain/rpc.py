"""Solana JSON-RPC client: solders' typed requests and answers, POSTed with httpx's models over aiohttp's
pool (:mod:`xorj.chain.http`, the one HTTP stack of the package; the swap and price clients use it too),
with the executor's rules applied.

* Every call has an explicit timeout (``asyncio.timeout`` around the request; cancelling the
  request is safe because the caller decides what a timeout means).
* The transport never retries (``retries=0``): a re-POST after a transport error, ReadTimeout
  included, would be a sendTransaction retry the executor does not know about. The executor owns
  every retry.
* Preflight is explicit: ``skipPreflight``, ``preflightCommitment`` and ``maxRetries`` are always sent.
* Failures become typed :mod:`xorj.chain.errors` exceptions carrying a reason code; a JSON-RPC
  error object, an HTTP error status or an answer that does not parse as the method's schema never
  passes as an answer.
* ``transport`` is injectable (``httpx.MockTransport`` in unit tests, where a node is not the point).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.rpc.config import (
    RpcAccountInfoConfig,
    RpcContextConfig,
    RpcSendTransactionConfig,
    RpcSignaturesForAddressConfig,
    RpcSignatureStatusConfig,
    RpcSimulateTransactionAccountsConfig,
    RpcSimulateTransactionConfig,
    RpcTransactionConfig,
)
from solders.rpc.requests import (
    GetAccountInfo,
    GetBalance,
    GetBlockHeight,
    GetEpochInfo,
    GetLatestBlockhash,
    GetMultipleAccounts,
    GetSignaturesForAddress,
    GetSignatureStatuses,
    GetTokenAccountBalance,
    GetTransaction,
    IsBlockhashValid,
    SendRawTransaction,
    SimulateVersionedTransaction,
)
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetBlockHeightResp,
    GetEpochInfoResp,
    GetLatestBlockhashResp,
    GetMultipleAccountsResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetTokenAccountBalanceResp,
    GetTransactionResp,
    IsBlockhashValidResp,
    RPCError,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import UiTransactionEncoding

from xorj.chain.classify import TxFailure, classify_tx_failure, tx_failure_from_solders
from xorj.chain.errors import (
    ChainCallError,
    MalformedAnswerError,
    RpcRequestError,
    RpcTimeoutError,
    RpcTransportError,
)
from xorj.chain.http import DirectClient
from xorj.domain.expiry import FinalizedPoint
from xorj.domain.reconciliation import ChainSignature
from xorj.domain.trades import ReasonCode


class _SoldersAnswer(Protocol):
    """A solders response class: it parses a JSON-RPC answer text (into itself, or an error type)."""

    @staticmethod
    def from_json(raw: str) -> object: ...


_Answer = TypeVar("_Answer", bound=_SoldersAnswer)

log = logging.getLogger(__name__)

COMMITMENT_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}
_COMMITMENTS = {"processed": CommitmentLevel.Processed, "confirmed": CommitmentLevel.Confirmed,
                "finalized": CommitmentLevel.Finalized}
# the JSON-RPC error objects solders parses an answer into (instead of the method's answer type)
_RPC_ERRORS = RPCError.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RpcTimeouts:
    """Seconds allowed per call class. ``send`` is short on purpose: a slow send is rebroadcast."""

    read: float = 5.0
    send: float = 5.0


@dataclass(frozen=True)
class PreflightSettings:
    """Preflight, always explicit. The default skips it: a preflight rejection is never proof that
    the bytes cannot land (an earlier broadcast may be in flight), while a landed failure is a
    definitive on-chain answer the algorithm can act on (e.g. Jupiter's slippage error)."""

    skip_preflight: bool = True
    preflight_commitment: str = "confirmed"
    # The node must not re-forward on its own: the executor rebroadcasts the same bytes itself.
    max_retries: int | None = 0


@dataclass(frozen=True)
class SignatureStatus:
    """One getSignatureStatuses entry. ``failure`` is the transaction error when it landed failed."""

    slot: int
    confirmation: str  # processed | confirmed | finalized
    failure: TxFailure | None
    raw_err: Any = None

    def at_least(self, commitment: str) -> bool:
        return COMMITMENT_RANK[self.confirmation] >= COMMITMENT_RANK[commitment]


@dataclass(frozen=True)
class AccountInfo:
    lamports: int
    owner: Pubkey
    data: bytes


@dataclass(frozen=True)
class SimulationAnswer:
    """simulateTransaction's answer: ``err`` (solders error or None), logs, and the requested
    accounts' state after the simulated transaction (None: the account does not exist then)."""

    slot: int
    err: Any
    logs: list[str]
    accounts: list[AccountInfo | None] | None
    units_consumed: int | None


@dataclass(frozen=True)
class StatusAnswer:
    """One getSignatureStatuses answer: the entries, and the slot the answering node answered as of.
    A "not found" is only as good as that slot (:mod:`xorj.domain.expiry`)."""

    context_slot: int
    statuses: list[SignatureStatus | None]


@dataclass(frozen=True)
class LatestBlockhash:
    blockhash: Hash
    last_valid_block_height: int


@dataclass(frozen=True)
class LandedAnswer:
    """One getTransaction answer: the verified transaction, its status meta as JSON-RPC shapes it
    (camelCase keys: ``preTokenBalances``, ``loadedAddresses``...), its slot and block time."""

    transaction: VersionedTransaction
    meta: dict[str, Any]
    slot: int
    block_time: int | None


@dataclass(frozen=True)
class AccountView:
    owner: str  # the owning program's id (base58)
    lamports: int
    data: bytes


class SolanaRpc:
    """The executor's view of a Solana JSON-RPC node."""

    def __init__(self, url: str, *, timeouts: RpcTimeouts = RpcTimeouts(),
                 preflight: PreflightSettings = PreflightSettings(), commitment: str = "confirmed",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if commitment not in _COMMITMENTS:
            raise ValueError(f"commitment must be one of {sorted(_COMMITMENTS)}, got {commitment!r}")
        if preflight.preflight_commitment not in _COMMITMENTS:
            raise ValueError(f"preflight_commitment must be one of {sorted(_COMMITMENTS)}, "
                             f"got {preflight.preflight_commitment!r}")
        self.url = url
        self._endpoint = httpx.URL(url)  # parsed once: httpx re-parses a str URL on every request
        self._host = urlsplit(url).netloc or url
        self.timeouts = timeouts
        self.preflight = preflight
        self._http = DirectClient(
            headers={"Content-Type": "application/json"},
            # A backstop under the per-call asyncio timeout; the per-call one is what callers rely on.
            timeout=max(timeouts.read, timeouts.send) + 5.0,
            transport=transport,
        )
        self._send_config = RpcSendTransactionConfig(
            skip_preflight=preflight.skip_preflight,
            preflight_commitment=_COMMITMENTS[preflight.preflight_commitment],
            max_retries=preflight.max_retries,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SolanaRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- calls -------------------------------------------------------------------------------

    async def latest_blockhash(self, commitment: str = "confirmed", *, timeout: float | None = None) -> LatestBlockhash:
        resp = await self._call("getLatestBlockhash", GetLatestBlockhash(RpcContextConfig(_COMMITMENTS[commitment])),
                                GetLatestBlockhashResp, timeout)
        return LatestBlockhash(resp.value.blockhash, int(resp.value.last_valid_block_height))

    async def is_blockhash_valid(self, blockhash: Hash, commitment: str = "processed", *,
                                 timeout: float | None = None) -> bool:
        request = IsBlockhashValid(blockhash, RpcContextConfig(commitment=_COMMITMENTS[commitment]))
        resp = await self._call("isBlockhashValid", request, IsBlockhashValidResp, timeout)
        return bool(resp.value)

    async def accounts(self, pubkeys: Sequence[Pubkey], commitment: str = "processed", *,
                       timeout: float | None = None) -> list[AccountInfo | None]:
        """getMultipleAccounts (base64): each account's lamports, owner program and data."""
        resp = await self._call("getMultipleAccounts",
                                GetMultipleAccounts(list(pubkeys), RpcAccountInfoConfig(
                                    encoding=UiAccountEncoding.Base64, commitment=_COMMITMENTS[commitment])),
                                GetMultipleAccountsResp, timeout)
        if len(resp.value) != len(pubkeys):
            raise MalformedAnswerError(f"getMultipleAccounts from {self._host}: {len(resp.value)} accounts for "
                                       f"{len(pubkeys)} keys", method="getMultipleAccounts")
        return [None if a is None else AccountInfo(int(a.lamports), a.owner, bytes(a.data)) for a in resp.value]

    async def simulate(self, tx: VersionedTransaction, accounts: Sequence[Pubkey], commitment: str = "processed", *,
                       timeout: float | None = None) -> SimulationAnswer:
        """simulateTransaction without signature verification and with the message's OWN blockhash
        (never replaced), returning ``accounts`` as they would be after the transaction."""
        resp = await self._call("simulateTransaction",
                                SimulateVersionedTransaction(tx, RpcSimulateTransactionConfig(
                                    sig_verify=False, commitment=_COMMITMENTS[commitment],
                                    replace_recent_blockhash=False, inner_instructions=True,
                                    accounts=RpcSimulateTransactionAccountsConfig(
                                        addresses=list(accounts), encoding=UiAccountEncoding.Base64))),
                                SimulateTransactionResp, timeout)
        value = resp.value
        states = None
        if value.accounts is not None:
            if len(value.accounts) != len(accounts):
                raise MalformedAnswerError(f"simulateTransaction from {self._host}: {len(value.accounts)} accounts "
                                           f"for {len(accounts)} requested", method="simulateTransaction")
            states = [None if a is None else AccountInfo(int(a.lamports), a.owner, bytes(a.data))
                      for a in value.accounts]
        return SimulationAnswer(slot=int(resp.context.slot), err=value.err, logs=list(value.logs or []),
                                accounts=states, units_consumed=value.units_consumed)

    async def block_height(self, commitment: str = "finalized", *, timeout: float | None = None) -> int:
        resp = await self._call("getBlockHeight", GetBlockHeight(RpcContextConfig(_COMMITMENTS[commitment])),
                                GetBlockHeightResp, timeout)
        return int(resp.value)

    async def finalized_point(self, *, timeout: float | None = None) -> FinalizedPoint:
        """The finalized block's slot AND height from one answer (getEpochInfo at finalized: both
        fields come from the same bank), so an expiry proof names one block, not two reads apart."""
        resp = await self._call("getEpochInfo", GetEpochInfo(RpcContextConfig(CommitmentLevel.Finalized)),
                                GetEpochInfoResp, timeout)
        slot, height = int(resp.value.absolute_slot), int(resp.value.block_height)
        if slot < 0 or height < 0 or height > slot:
            # block heights never run ahead of slots (skipped slots only widen the gap)
            raise MalformedAnswerError(f"getEpochInfo from {self._host}: block height {height} above slot {slot}",
                                       method="getEpochInfo")
        return FinalizedPoint(slot=slot, height=height)

    async def send_raw(self, tx_bytes: bytes, *, program_ids: Sequence[str] = (),
                       timeout: float | None = None) -> Signature:
        """Broadcast signed bytes. A JSON-RPC error about the transaction carries ``tx_failure``."""
        resp = await self._call("sendTransaction", SendRawTransaction(tx_bytes, self._send_config),
                                SendTransactionResp, timeout if timeout is not None else self.timeouts.send,
                                program_ids=program_ids)
        return resp.value

    async def signature_statuses(self, signatures: Sequence[Signature], *, program_ids: Sequence[str] = (),
                                 timeout: float | None = None) -> StatusAnswer:
        """Statuses, searching the whole transaction history (a status older than the recent
        cache is still an answer; without the search it would look like 'unknown'), with the
        answer's context slot (a lagging node's "not found" is not proof: see xorj.domain.expiry)."""
        resp = await self._call("getSignatureStatuses",
                                GetSignatureStatuses(list(signatures), RpcSignatureStatusConfig(True)),
                                GetSignatureStatusesResp, timeout)
        if len(resp.value) != len(signatures):
            raise MalformedAnswerError(f"getSignatureStatuses from {self._host}: {len(resp.value)} entries for "
                                       f"{len(signatures)} signatures", method="getSignatureStatuses")
        out: list[SignatureStatus | None] = []
        for status in resp.value:
            if status is None:
                out.append(None)
                continue
            level = status.confirmation_status
            confirmation = ("processed", "confirmed", "finalized")[int(level)] if level is not None else (
                "finalized" if status.confirmations is None else "confirmed")
            failure = None
            if status.err is not None:
                failure = tx_failure_from_solders(status.err, program_ids=program_ids)
            out.append(SignatureStatus(slot=int(status.slot), confirmation=confirmation, failure=failure,
                                       raw_err=status.err))
        return StatusAnswer(context_slot=int(resp.context.slot), statuses=out)

    async def transaction_logs(self, signature: Signature, *, timeout: float | None = None) -> list[str] | None:
        """The log messages of a landed transaction (None when the node does not have it)."""
        resp = await self._call("getTransaction",
                                GetTransaction(signature, RpcTransactionConfig(
                                    encoding=UiTransactionEncoding.Json, commitment=CommitmentLevel.Confirmed,
                                    max_supported_transaction_version=0)),
                                GetTransactionResp, timeout)
        if resp.value is None or resp.value.transaction.meta is None:
            return None
        return list(resp.value.transaction.meta.log_messages or [])

    async def balance(self, pubkey: Pubkey, commitment: str = "confirmed", *, timeout: float | None = None) -> int:
        resp = await self._call("getBalance", GetBalance(pubkey, RpcContextConfig(_COMMITMENTS[commitment])),
                                GetBalanceResp, timeout)
        return int(resp.value)

    async def token_balance(self, account: Pubkey, commitment: str = "confirmed", *,
                            timeout: float | None = None) -> int:
        resp = await self._call("getTokenAccountBalance",
                                GetTokenAccountBalance(account, _COMMITMENTS[commitment]),
                                GetTokenAccountBalanceResp, timeout)
        return int(resp.value.amount)

    async def account(self, pubkey: Pubkey, commitment: str = "confirmed", *,
                      timeout: float | None = None) -> AccountView | None:
        """The account's owner program, lamports and data (None when it does not exist)."""
        resp = await self._call("getAccountInfo",
                                GetAccountInfo(pubkey, RpcAccountInfoConfig(encoding=UiAccountEncoding.Base64,
                                                                            commitment=_COMMITMENTS[commitment])),
                                GetAccountInfoResp, timeout)
        if resp.value is None:
            return None
        return AccountView(owner=str(resp.value.owner), lamports=int(resp.value.lamports), data=bytes(resp.value.data))

    async def signatures_for_address(self, address: Pubkey, *, before: str | None = None, until: str | None = None,
                                     limit: int = 1000, commitment: str = "confirmed",
                                     timeout: float | None = None) -> list[ChainSignature]:
        """One page of getSignaturesForAddress: the address's transactions newest first, older than
        ``before``, stopping at ``until`` (excluded). The answer is checked, not trusted: at most
        ``limit`` entries, slots never rising, no repeats, neither ``before`` nor ``until`` in it, and a
        confirmation status on each (the reconciler's cursor depends on it)."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit: must be 1..1000 (the RPC's page limit), got {limit}")
        resp = await self._call("getSignaturesForAddress",
                                GetSignaturesForAddress(address, RpcSignaturesForAddressConfig(
                                    before=None if before is None else Signature.from_string(before),
                                    until=None if until is None else Signature.from_string(until), limit=limit,
                                    commitment=_COMMITMENTS[commitment])),
                                GetSignaturesForAddressResp, timeout)

        def malformed(why: str) -> MalformedAnswerError:
            return MalformedAnswerError(f"getSignaturesForAddress from {self._host}: {why}",
                                        method="getSignaturesForAddress")

        if len(resp.value) > limit:
            raise malformed(f"{len(resp.value)} entries for a limit of {limit}")
        out: list[ChainSignature] = []
        seen: set[str] = set()
        for entry in resp.value:
            signature = str(entry.signature)
            if signature in seen or signature in (before, until):
                raise malformed(f"signature {signature} repeated, or it is the page's before/until bound")
            seen.add(signature)
            if out and int(entry.slot) > out[-1].slot:
                raise malformed(f"not newest first: slot {entry.slot} after slot {out[-1].slot}")
            if entry.confirmation_status is None:
                raise malformed(f"no confirmationStatus for {signature}")
            level = ("processed", "confirmed", "finalized")[int(entry.confirmation_status)]
            out.append(ChainSignature(signature=signature, slot=int(entry.slot), failed=entry.err is not None,
                                      confirmation=level, block_time=entry.block_time,
                                      error=None if entry.err is None else str(entry.err)[:300]))
        return out

    async def transaction(self, signature: str, commitment: str = "confirmed", *,
                          timeout: float | None = None) -> VersionedTransaction | None:
        """The landed transaction (base64, so its signatures can be verified), None when the node does
        not have it at ``commitment``. The answer must be the transaction asked for: its signatures
        include ``signature`` and all of them verify against its message."""
        answer = await self.transaction_with_meta(signature, commitment, timeout=timeout)
        return None if answer is None else answer.transaction

    async def transaction_with_meta(self, signature: str, commitment: str = "confirmed", *,
                                    timeout: float | None = None) -> LandedAnswer | None:
        """:meth:`transaction` with its status meta (balances, token balances, fee, error, inner
        instructions, loaded addresses) in the JSON-RPC shape, its slot and block time; the same
        checks on the transaction, and a meta must be present."""
        resp = await self._call("getTransaction",
                                GetTransaction(Signature.from_string(signature), RpcTransactionConfig(
                                    encoding=UiTransactionEncoding.Base64, commitment=_COMMITMENTS[commitment],
                                    max_supported_transaction_version=0)),
                                GetTransactionResp, timeout)
        if resp.value is None:
            return None
        tx = resp.value.transaction.transaction
        if not isinstance(tx, VersionedTransaction):
            raise MalformedAnswerError(f"getTransaction from {self._host}: {signature} not in base64 form",
                                       method="getTransaction")
        if signature not in {str(s) for s in tx.signatures} or not all(tx.verify_with_results()):
            raise MalformedAnswerError(f"getTransaction from {self._host}: the answer for {signature} is not a "
                                       "transaction signed with that signature", method="getTransaction")
        meta = resp.value.transaction.meta
        if meta is None:
            raise MalformedAnswerError(f"getTransaction from {self._host}: no status meta for {signature}",
                                       method="getTransaction")
        return LandedAnswer(transaction=tx, meta=json.loads(meta.to_json()), slot=int(resp.value.slot),
                            block_time=None if resp.value.block_time is None else int(resp.value.block_time))

    # ---- plumbing ----------------------------------------------------------------------------

    async def _call(self, method: str, request: Any, expected: type[_Answer], timeout: float | None,
                    *, program_ids: Sequence[str] = ()) -> _Answer:
        limit = self.timeouts.read if timeout is None else timeout
        answer: httpx.Response | None = None
        try:
            async with asyncio.timeout(limit):
                answer = await self._http.request("POST", self._endpoint, content=request.to_json())
            answer.raise_for_status()
            # JSON is UTF-8 (RFC 8259): decoding the bytes skips httpx's charset sniffing of the
            # Content-Type; bytes that are not UTF-8 are an unparsed answer (UnicodeDecodeError is a ValueError)
            resp: object = expected.from_json(answer.content.decode())
        except TimeoutError:
            raise RpcTimeoutError(f"{method} to {self._host}: no answer within {limit:g}s", method=method) from None
        except httpx.TimeoutException:
            raise RpcTimeoutError(f"{method} to {self._host}: transport timeout", method=method) from None
        except httpx.HTTPStatusError as exc:
            raise RpcTransportError(f"{method} to {self._host}: HTTP {exc.response.status_code}",
                                    method=method) from None
        except httpx.HTTPError as exc:
            # the exception's text quotes the URL (and its API key): only its type is kept
            raise RpcTransportError(f"{method} to {self._host}: {type(exc).__name__}", method=method) from None
        except ChainCallError:
            raise
        except (ValueError, TypeError) as exc:  # solders parse errors (SerdeJSONError is a ValueError)
            raise _unparsed(method, self._host, answer.text if answer is not None else "", exc) from None
        except BaseException as exc:
            # solders panics (a BaseException) on a JSON-RPC error it models without a field it expects,
            # e.g. -32005 "node is behind" without its data: still an answer, never a crash
            if type(exc).__name__ in ("SerdeJSONError", "PanicException"):
                raise _unparsed(method, self._host, answer.text if answer is not None else "", exc) from None
            raise
        if isinstance(resp, _RPC_ERRORS):
            raise _request_error(method, self._host, resp, program_ids)
        if not isinstance(resp, expected):
            # solders hands back un-modelled JSON-RPC errors (e.g. code -32000) as the bare code
            raise RpcRequestError(f"{method} to {self._host}: JSON-RPC error {resp!r}"[:300], method=method,
                                  code=resp if isinstance(resp, int) else None)
        return resp


def _unparsed(method: str, host: str, text: str, exc: BaseException) -> ChainCallError:
    """An answer solders could not parse: a JSON-RPC error object is still the node's refusal (with
    its code and message); anything else is malformed."""
    with contextlib.suppress(ValueError):
        body = json.loads(text)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code") if isinstance(error.get("code"), int) else None
            return RpcRequestError(f"{method} to {host}: JSON-RPC error {code}: {error['message']}"[:300],
                                   method=method, code=code)
    return MalformedAnswerError(f"{method} from {host}: answer does not parse ({str(exc)[:200]})", method=method)


def _request_error(method: str, host: str, err: Any, program_ids: Sequence[str]) -> RpcRequestError:
    """Turn a solders JSON-RPC error into a typed error; transaction errors keep their TxFailure."""
    message = getattr(err, "message", None) or str(err)
    data = getattr(err, "data", None)
    tx_err = getattr(data, "err", None) if data is not None else None
    if tx_err is not None:
        logs = list(getattr(data, "logs", None) or [])
        failure = tx_failure_from_solders(tx_err, program_ids=program_ids, logs=logs)
        reason = classify_tx_failure(failure)
        if reason is ReasonCode.PROGRAM_ERROR and failure.kind == "AlreadyProcessed":
            reason = ReasonCode.RPC_ERROR
        return RpcRequestError(f"{method} to {host}: {message} [{failure.describe()}]"[:500], method=method,
                               reason=reason, tx_failure=failure)
    name = type(err).__name__
    text = str(message)
    lowered = text.lower()
    if "blockhash not found" in lowered or "BlockhashNotFound" in text:
        return RpcRequestError(f"{method} to {host}: {text}"[:500], method=method,
                               reason=ReasonCode.BLOCKHASH_EXPIRED, tx_failure=TxFailure(kind="BlockhashNotFound"))
    if "already processed" in lowered or "AlreadyProcessed" in text:
        return RpcRequestError(f"{method} to {host}: {text}"[:500], method=method,
                               reason=ReasonCode.RPC_ERROR, tx_failure=TxFailure(kind="AlreadyProcessed"))
    if "insufficient funds" in lowered or "InsufficientFunds" in text:
        return RpcRequestError(f"{method} to {host}: {text}"[:500], method=method,
                               reason=ReasonCode.INSUFFICIENT_FUNDS,
                               tx_failure=TxFailure(kind="InsufficientFundsForFee"))
    return RpcRequestError(f"{method} to {host}: {name}: {text}"[:500], method=method, reason=ReasonCode.RPC_ERROR)
