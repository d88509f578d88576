"""A single-node Solana cluster over solders' LiteSVM: blocks, blockhash ages, commitment, history.

Stands in for a Solana validator + RPC node (what a real cluster's RPC endpoint sees). LiteSVM has no
blocks: it only has one "latest blockhash" and ``expire_blockhash()`` invalidates every earlier one at
once. This module adds what an RPC client relies on:

- blocks produced on a clock (one per ``advance()``; the server calls it every slot interval). Slots
  and block heights are different numbers, as on a real cluster where skipped slots make the slot run
  ahead: here slots start at ``initial_slot`` (1000) and heights at 1, so a client comparing a slot
  with ``lastValidBlockHeight`` is caught at once;
- a window of the last ``max_processing_age`` (150) blockhashes, each valid until its
  ``lastValidBlockHeight`` = height + 150, checked here (LiteSVM's own check is turned off because
  it only knows the latest hash);
- commitment levels: processed = the working block, confirmed = ``confirm_depth`` blocks back,
  finalized = ``finalize_depth`` blocks back;
- a record of every transaction that landed (successful or failed with a fee charged), with its slot,
  error, logs, balances and token balances, used by getSignatureStatuses / getTransaction /
  getSignaturesForAddress. Transactions that never land (expired blockhash, duplicate, no fee payer
  funds) are dropped as a real leader drops them.

LiteSVM's transaction history stays on, so the same signed bytes never execute twice
(AlreadyProcessed); this module also refuses a signature it already recorded.

Account state is always the latest (processed) state; commitment only changes the context slot and
the blockhash/height returned, which is all the executor reads at other commitment levels.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import base58
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
MAX_PROCESSING_AGE = 150  # blockhashes a transaction may reference (solana-sdk MAX_PROCESSING_AGE)
MAX_RECENT_STATUS_SLOTS = 300  # status cache reach without searchTransactionHistory
FAUCET_LAMPORTS = 10**9 * 10**9  # a billion SOL for requestAirdrop
COMMITMENTS = ("processed", "confirmed", "finalized")


class RpcError(Exception):
    """A JSON-RPC error answer (code, message, optional data), as a Solana RPC node returns it."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(-32602, message)


def error_json(err: Any) -> Any:
    """solders TransactionErrorType -> the JSON Solana RPC uses (e.g. {"InstructionError":[0,{"Custom":6001}]})."""
    if err is None:
        return None
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


_FIELDLESS_MESSAGES = {
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "SignatureFailure": "Transaction did not pass signature verification",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
}


def error_message(err_json: Any) -> str:
    """Display text of a TransactionError, as agave formats it in preflight failure messages."""
    if isinstance(err_json, str):
        return _FIELDLESS_MESSAGES.get(err_json, err_json)
    if isinstance(err_json, dict) and "InsufficientFundsForRent" in err_json:
        index = err_json["InsufficientFundsForRent"].get("account_index")
        return f"Transaction results in an account ({index}) with insufficient funds for rent"
    if isinstance(err_json, dict) and "InstructionError" in err_json:
        index, inner = err_json["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            text = f"custom program error: {inner['Custom']:#x}"
        else:
            text = str(inner)
        return f"Error processing Instruction {index}: {text}"
    return json.dumps(err_json)


@dataclass(frozen=True)
class Block:
    slot: int
    height: int
    blockhash: str
    block_time: int

    @property
    def last_valid_block_height(self) -> int:
        return self.height + MAX_PROCESSING_AGE


@dataclass
class TxRecord:
    signature: str
    slot: int
    height: int
    index_in_block: int
    block_time: int
    transaction: VersionedTransaction
    err: Any  # JSON form, None on success
    logs: list[str]
    fee: int
    compute_units: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[dict[str, Any]]
    post_token_balances: list[dict[str, Any]]
    # getTransaction's meta.innerInstructions (JSON shape, indexes into the full key list)
    inner_instructions: list[dict[str, Any]] = field(default_factory=list)
    # a v0 message's addresses loaded from lookup tables (meta.loadedAddresses), base58
    loaded_writable: list[str] = field(default_factory=list)
    loaded_readonly: list[str] = field(default_factory=list)


ALT_HEADER_SIZE = 56  # address lookup table account: LookupTableMeta, then the addresses


def inner_instructions_json(inner: Any) -> list[dict[str, Any]]:
    """LiteSVM's inner instructions (one list per top-level instruction) in getTransaction's ``json``
    shape: ``[{"index": i, "instructions": [{programIdIndex, accounts, data (base58), stackHeight}]}]``,
    top-level instructions without any left out, as agave does."""
    out: list[dict[str, Any]] = []
    for index, instructions in enumerate(inner or []):
        if not instructions:
            continue
        out.append({"index": index, "instructions": [
            {"programIdIndex": ix.program_id_index, "accounts": list(bytes(ix.accounts)),
             "data": base58.b58encode(bytes(ix.data)).decode(), "stackHeight": item.stack_height()}
            for item in instructions for ix in (item.instruction(),)]})
    return out


@dataclass
class SubmitOutcome:
    """What happened to one sendTransaction: landed (recorded) or dropped, and why."""

    signature: str
    landed: bool
    err: Any = None
    dropped_reason: str | None = None


@dataclass
class NodeConfig:
    confirm_depth: int = 1
    finalize_depth: int = 32
    initial_slot: int = 1000


@dataclass
class LocalChainNode:
    config: NodeConfig = field(default_factory=NodeConfig)

    def __post_init__(self) -> None:
        # LiteSVM() preloads SPL Token, Token-2022, ATA and Memo. Its blockhash check only knows the
        # latest hash, so it is off and the 150-block window is enforced here instead.
        self.svm = LiteSVM().with_blockhash_check(False)
        self.slot = self.config.initial_slot
        self.height = 1
        self.svm.warp_to_slot(self.slot)
        self.blocks: OrderedDict[int, Block] = OrderedDict()  # by height
        self.blockhash_height: dict[str, int] = {}
        self.records: dict[str, TxRecord] = {}
        self.landed: list[TxRecord] = []  # in processing order (heights never decrease): logsSubscribe's feed
        self.by_address: dict[str, list[str]] = {}
        self._index_in_slot = 0
        # None: blocks carry the wall clock; a number: the blockTime of every block produced from now
        # on (a backdated history phase, see docs/trader-history.md "Backdated history")
        self.block_time_pin: int | None = None
        self._new_block()
        self.genesis_hash = self.blocks[self.height].blockhash
        self.faucet = Keypair()
        self.svm.set_account(self.faucet.pubkey(), Account(FAUCET_LAMPORTS, b"", SYSTEM_PROGRAM_ID, False))

    # ---- blocks -------------------------------------------------------------------------------
    def _new_block(self) -> None:
        block_time = int(time.time()) if self.block_time_pin is None else self.block_time_pin
        block = Block(self.slot, self.height, str(self.svm.latest_blockhash()), block_time)
        self.blocks[self.height] = block
        self.blockhash_height[block.blockhash] = self.height
        keep = MAX_PROCESSING_AGE + self.config.finalize_depth + MAX_RECENT_STATUS_SLOTS
        while len(self.blocks) > keep:
            _, old = self.blocks.popitem(last=False)
            self.blockhash_height.pop(old.blockhash, None)

    def advance(self, count: int = 1) -> None:
        """Produce ``count`` blocks: each gets a fresh blockhash, and older ones age by one."""
        for _ in range(count):
            self.svm.expire_blockhash()
            self.slot += 1
            self.height += 1
            self.svm.warp_to_slot(self.slot)
            self._index_in_slot = 0
            self._new_block()

    def pin_block_time(self, block_time: int | None) -> Block:
        """Stamp the blocks produced from now on with ``block_time`` (unix seconds; None: the wall clock
        again) and produce one, so the next transaction lands in a block carrying that time."""
        self.block_time_pin = block_time
        self.advance(1)
        return self.current

    def head_height(self, behind: int = 0) -> int:
        """The newest block height a node ``behind`` blocks behind this one has (a lagging RPC
        node: see the ``status_lag`` fault), never older than the oldest block still kept."""
        oldest = next(iter(self.blocks))
        return max(oldest, self.height - max(0, behind))

    def block_at(self, commitment: str | None, behind: int = 0) -> Block:
        commitment = commitment or "finalized"
        if commitment not in COMMITMENTS:
            raise invalid_params(f"Invalid params: unknown commitment {commitment!r}")
        depth = {"processed": 0, "confirmed": self.config.confirm_depth,
                 "finalized": self.config.finalize_depth}[commitment]
        oldest = next(iter(self.blocks))
        return self.blocks[max(1, oldest, self.head_height(behind) - depth)]

    def slot_at(self, commitment: str | None, behind: int = 0) -> int:
        return self.block_at(commitment, behind).slot

    @property
    def current(self) -> Block:
        return self.blocks[self.height]

    def blockhash_valid(self, blockhash: str) -> bool:
        height = self.blockhash_height.get(blockhash)
        return height is not None and self.height <= height + MAX_PROCESSING_AGE

    # ---- transactions -------------------------------------------------------------------------
    def loaded_addresses(self, tx: VersionedTransaction) -> tuple[list[Pubkey], list[Pubkey]]:
        """The (writable, readonly) addresses a v0 message loads from address lookup tables, read from
        the tables' accounts as they are now (a table's data: a 56-byte header, then 32-byte
        addresses). Empty for a legacy message; a missing table or index loads nothing (the bank then
        fails the transaction by itself)."""
        lookups = getattr(tx.message, "address_table_lookups", None) or []
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in lookups:
            table = self.svm.get_account(lookup.account_key)
            data = bytes(table.data) if table is not None else b""
            addresses = [Pubkey.from_bytes(data[at:at + 32]) for at in range(ALT_HEADER_SIZE, len(data) - 31, 32)]
            writable.extend(addresses[i] for i in bytes(lookup.writable_indexes) if i < len(addresses))
            readonly.extend(addresses[i] for i in bytes(lookup.readonly_indexes) if i < len(addresses))
        return writable, readonly

    def _snapshot(self, keys: list[Pubkey]) -> tuple[list[int], list[dict[str, Any]]]:
        """Lamports and token balances of ``keys`` (static then loaded: the order accountIndex refers to)."""
        balances: list[int] = []
        token_balances: list[dict[str, Any]] = []
        for index, key in enumerate(keys):
            account = self.svm.get_account(key)
            balances.append(account.lamports if account else 0)
            if account and account.owner in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) and len(account.data) == 165:
                token_balances.append(self._token_balance(index, account))
        return balances, token_balances

    def _token_balance(self, index: int, account: Any) -> dict[str, Any]:
        mint = Pubkey.from_bytes(bytes(account.data[0:32]))
        owner = Pubkey.from_bytes(bytes(account.data[32:64]))
        amount = struct.unpack_from("<Q", bytes(account.data), 64)[0]
        return {
            "accountIndex": index,
            "mint": str(mint),
            "owner": str(owner),
            "programId": str(account.owner),
            "uiTokenAmount": ui_token_amount(amount, self.mint_decimals(mint)),
        }

    def mint_decimals(self, mint: Pubkey) -> int:
        account = self.svm.get_account(mint)
        if account is None or len(account.data) < 45:
            return 0
        return account.data[44]

    def precheck(self, tx: VersionedTransaction) -> Any:
        """The checks a bank makes before executing, in agave's order (check_age, then the status
        cache): an old duplicate reports BlockhashNotFound. Returns the err JSON or None."""
        if not self.blockhash_valid(str(tx.message.recent_blockhash)):
            return "BlockhashNotFound"
        if str(tx.signatures[0]) in self.records:
            return "AlreadyProcessed"
        return None

    def simulate(self, tx: VersionedTransaction, sig_verify: bool = False) -> dict[str, Any]:
        """Run the transaction against current state without committing it (simulateTransaction)."""
        pre_err = self.precheck(tx)
        if pre_err is not None:
            return {"err": pre_err, "logs": [], "unitsConsumed": 0, "returnData": None, "postAccounts": {}}
        self.svm.with_sigverify(sig_verify)
        try:
            result = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
        post_accounts: dict[Pubkey, Account] = {}
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            err = error_json(result.err())
        else:
            meta = result.meta()
            err = None
            post_accounts = dict(result.post_accounts())
        return_data = meta.return_data()
        rd = None
        if return_data is not None and bytes(return_data.data):
            rd = {"programId": str(return_data.program_id),
                  "data": [base64.b64encode(bytes(return_data.data)).decode(), "base64"]}
        return {"err": err, "logs": list(meta.logs()), "unitsConsumed": meta.compute_units_consumed(),
                "returnData": rd, "postAccounts": post_accounts}

    def process(self, tx: VersionedTransaction) -> SubmitOutcome:
        """Execute and commit in the working slot, if the bank would accept the transaction at all."""
        signature = str(tx.signatures[0])
        pre_err = self.precheck(tx)
        if pre_err is not None:
            return SubmitOutcome(signature, landed=False, dropped_reason=pre_err)
        # resolved once, before execution, as the bank does: the same keys before and after
        loaded_writable, loaded_readonly = self.loaded_addresses(tx)
        keys = [*tx.message.account_keys, *loaded_writable, *loaded_readonly]
        pre_balances, pre_tokens = self._snapshot(keys)
        result = self.svm.send_transaction(tx)
        if self.svm.get_transaction(tx.signatures[0]) is None:
            # rejected before execution (no fee payer funds, bad signature...): never lands
            reason = error_json(result.err()) if isinstance(result, FailedTransactionMetadata) else None
            return SubmitOutcome(signature, landed=False, dropped_reason=json.dumps(reason))
        meta = result.meta() if isinstance(result, FailedTransactionMetadata) else result
        err = error_json(result.err()) if isinstance(result, FailedTransactionMetadata) else None
        post_balances, post_tokens = self._snapshot(keys)
        block = self.current
        record = TxRecord(
            signature=signature, slot=self.slot, height=self.height, index_in_block=self._index_in_slot,
            block_time=block.block_time, transaction=tx, err=err, logs=list(meta.logs()),
            fee=meta.fee(), compute_units=meta.compute_units_consumed(),
            pre_balances=pre_balances, post_balances=post_balances,
            pre_token_balances=pre_tokens, post_token_balances=post_tokens,
            inner_instructions=inner_instructions_json(meta.inner_instructions()),
            loaded_writable=[str(k) for k in loaded_writable], loaded_readonly=[str(k) for k in loaded_readonly],
        )
        self._index_in_slot += 1
        self.records[signature] = record
        self.landed.append(record)
        for key in dict.fromkeys(str(k) for k in keys):  # agave indexes loaded addresses too
            self.by_address.setdefault(key, []).append(signature)
        return SubmitOutcome(signature, landed=True, err=err)

    def confirmation_status(self, record: TxRecord, behind: int = 0) -> tuple[str, int | None]:
        depth = self.head_height(behind) - record.height
        if depth >= self.config.finalize_depth:
            return "finalized", None
        if depth >= self.config.confirm_depth:
            return "confirmed", depth
        return "processed", depth

    def meets(self, record: TxRecord, commitment: str | None, behind: int = 0) -> bool:
        return record.height <= self.block_at(commitment, behind).height

    def seen(self, record: TxRecord, behind: int = 0) -> bool:
        """Whether a node ``behind`` blocks behind has the record's block yet."""
        return record.height <= self.head_height(behind)

    def in_status_cache(self, record: TxRecord) -> bool:
        """Whether getSignatureStatuses finds it without searchTransactionHistory."""
        return record.height >= self.height - MAX_RECENT_STATUS_SLOTS

    def airdrop(self, pubkey: Pubkey, lamports: int) -> str:
        """requestAirdrop: a real system transfer from the faucet, recorded like any transaction."""
        message = MessageV0.try_compile(
            self.faucet.pubkey(),
            [transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=pubkey, lamports=lamports))],
            [], Hash.from_string(self.current.blockhash))
        outcome = self.process(VersionedTransaction(message, [self.faucet]))
        if not outcome.landed or outcome.err is not None:
            raise RpcError(-32603, "Internal error: airdrop failed")
        return outcome.signature


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    ui = amount / (10**decimals)
    if decimals:
        text = f"{amount / 10**decimals:.{decimals}f}".rstrip("0").rstrip(".")
    else:
        text = str(amount)
    return {"amount": str(amount), "decimals": decimals, "uiAmount": ui, "uiAmountString": text}


def parse_signature(text: str) -> Signature:
    try:
        return Signature.from_string(text)
    except Exception:
        raise invalid_params(f"Invalid param: {text!r} is not a valid signature") from None


def parse_pubkey(text: Any) -> Pubkey:
    if not isinstance(text, str):
        raise invalid_params("Invalid params: expected a base-58 pubkey string")
    try:
        return Pubkey.from_string(text)
    except Exception:
        raise invalid_params("Invalid param: Invalid") from None
