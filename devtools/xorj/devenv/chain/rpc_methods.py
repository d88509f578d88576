"""Solana JSON-RPC methods over the local node, with the answer shapes of agave's RPC (v2.2).

Stands in for a Solana RPC node's JSON-RPC API (the methods a trading client and its tests use).
Each method takes the JSON ``params`` array and returns the JSON ``result`` or raises ``RpcError``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import base58
from solders.hash import Hash
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj.devenv.chain.node import (
    COMMITMENTS,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    LocalChainNode,
    RpcError,
    TxRecord,
    error_message,
    invalid_params,
    parse_pubkey,
    parse_signature,
    ui_token_amount,
)

API_VERSION = "2.2.0"
FEATURE_SET = 3294202862
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) <= index or params[index] is None:
        return {}
    config = params[index]
    if not isinstance(config, dict):
        raise invalid_params(f"Invalid params: parameter {index} must be a configuration object")
    return config


def _commitment(config: dict[str, Any], key: str = "commitment") -> str:
    value = config.get(key) or "finalized"
    # legacy names still accepted by agave
    value = {"recent": "processed", "single": "confirmed", "singleGossip": "confirmed",
             "root": "finalized", "max": "finalized"}.get(value, value)
    if value not in COMMITMENTS:
        raise invalid_params(f"Invalid params: unknown variant `{value}`, expected one of "
                             "`processed`, `confirmed`, `finalized`")
    return value


def _arg(params: list[Any], index: int, name: str) -> Any:
    if len(params) <= index:
        raise invalid_params(f"Invalid params: missing parameter {index} ({name})")
    return params[index]


def decode_transaction(data: Any, encoding: str) -> VersionedTransaction:
    if not isinstance(data, str):
        raise invalid_params("Invalid params: transaction must be an encoded string")
    try:
        if encoding == "base64":
            raw = base64.b64decode(data, validate=True)
        elif encoding == "base58":
            raw = base58.b58decode(data)
        else:
            raise invalid_params(f"Invalid params: unsupported encoding: {encoding}. "
                                 "Supported encodings: base58, base64")
    except RpcError:
        raise
    except Exception as exc:
        raise invalid_params(f"invalid {encoding} encoding: {exc}") from None
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except Exception as exc:
        raise invalid_params("failed to deserialize solana_transaction::versioned::VersionedTransaction: "
                             f"{exc}") from None
    try:
        tx.sanitize()
    except Exception as exc:
        raise invalid_params(f"invalid transaction: {exc}") from None
    return tx


class RpcMethods:
    def __init__(self, node: LocalChainNode):
        self.node = node
        self.status_lag_blocks = 0  # set for one call by a status_lag fault
        self.table: dict[str, Callable[[list[Any]], Any]] = {
            "getLatestBlockhash": self.get_latest_blockhash,
            "getBlockHeight": self.get_block_height,
            "getSlot": self.get_slot,
            "getEpochInfo": self.get_epoch_info,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getSignaturesForAddress": self.get_signatures_for_address,
            "getTransaction": self.get_transaction,
            "getBalance": self.get_balance,
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getTokenAccountBalance": self.get_token_account_balance,
            "requestAirdrop": self.request_airdrop,
            "getHealth": self.get_health,
            "getVersion": self.get_version,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance_for_rent_exemption,
            "isBlockhashValid": self.is_blockhash_valid,
            "getGenesisHash": self.get_genesis_hash,
            "getFeeForMessage": self.get_fee_for_message,
        }

    def call(self, method: str, params: Any) -> Any:
        handler = self.table.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise invalid_params("Invalid params: params must be an array")
        return handler(params)

    # A status_lag fault makes this call answer as a node ``status_lag_blocks`` behind: every block,
    # slot, height, context slot and transaction record it reads is as of that node's head.
    def _block(self, commitment: str | None) -> Any:
        return self.node.block_at(commitment, self.status_lag_blocks)

    def _slot(self, commitment: str | None) -> int:
        return self.node.slot_at(commitment, self.status_lag_blocks)

    def _context(self, slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": API_VERSION, "slot": slot}, "value": value}

    def _min_context_slot(self, config: dict[str, Any], slot: int) -> None:
        wanted = config.get("minContextSlot")
        if wanted is not None and wanted > slot:
            raise RpcError(-32016, "Minimum context slot has not been reached", {"contextSlot": slot})

    # ---- cluster ----------------------------------------------------------------------------------
    def get_latest_blockhash(self, params: list[Any]) -> Any:
        config = _config(params, 0)
        block = self._block(_commitment(config))
        self._min_context_slot(config, block.slot)
        return self._context(block.slot, {"blockhash": block.blockhash,
                                          "lastValidBlockHeight": block.last_valid_block_height})

    def get_block_height(self, params: list[Any]) -> Any:
        config = _config(params, 0)
        block = self._block(_commitment(config))
        self._min_context_slot(config, block.slot)
        return block.height

    def get_slot(self, params: list[Any]) -> Any:
        config = _config(params, 0)
        slot = self._slot(_commitment(config))
        self._min_context_slot(config, slot)
        return slot

    def get_epoch_info(self, params: list[Any]) -> Any:
        block = self._block(_commitment(_config(params, 0)))
        slot = block.slot
        return {"absoluteSlot": slot, "blockHeight": block.height, "epoch": 0, "slotIndex": slot,
                "slotsInEpoch": 432000, "transactionCount": len(self.node.records)}

    def is_blockhash_valid(self, params: list[Any]) -> Any:
        blockhash = _arg(params, 0, "blockhash")
        config = _config(params, 1)
        slot = self._slot(_commitment(config))
        return self._context(slot, self.node.blockhash_valid(str(blockhash)))

    def get_genesis_hash(self, params: list[Any]) -> Any:
        return self.node.genesis_hash

    def get_fee_for_message(self, params: list[Any]) -> Any:
        data = _arg(params, 0, "message")
        config = _config(params, 1)
        slot = self._slot(_commitment(config))
        try:
            message = from_bytes_versioned(base64.b64decode(data))
        except Exception:
            raise invalid_params("invalid base64 encoding of message") from None
        valid = self.node.blockhash_valid(str(message.recent_blockhash))
        return self._context(slot, 5000 * message.header.num_required_signatures if valid else None)

    def get_health(self, params: list[Any]) -> Any:
        return "ok"

    def get_version(self, params: list[Any]) -> Any:
        return {"solana-core": API_VERSION, "feature-set": FEATURE_SET}

    def get_minimum_balance_for_rent_exemption(self, params: list[Any]) -> Any:
        size = _arg(params, 0, "data length")
        if not isinstance(size, int) or size < 0:
            raise invalid_params("Invalid params: data length must be a non-negative integer")
        return self.node.svm.minimum_balance_for_rent_exemption(size)

    # ---- transactions -----------------------------------------------------------------------------
    def send_transaction(self, params: list[Any]) -> Any:
        config = _config(params, 1)
        tx = decode_transaction(_arg(params, 0, "transaction"), config.get("encoding") or "base58")
        preflight_slot = self._slot(_commitment(config, "preflightCommitment"))
        self._min_context_slot(config, preflight_slot)
        if not config.get("skipPreflight", False):
            if not all(tx.verify_with_results()):
                raise RpcError(-32003, "Transaction signature verification failure")
            simulated = self.node.simulate(tx, sig_verify=True)
            if simulated["err"] is not None:
                raise RpcError(-32002, f"Transaction simulation failed: {error_message(simulated['err'])}", {
                    "accounts": None, "err": simulated["err"], "innerInstructions": None,
                    "loadedAccountsDataSize": None, "logs": simulated["logs"],
                    "replacementBlockhash": None, "returnData": simulated["returnData"],
                    "unitsConsumed": simulated["unitsConsumed"],
                })
        # maxRetries is accepted and ignored: there is no forwarding to other leaders here.
        self.node.process(tx)
        return str(tx.signatures[0])

    def simulate_transaction(self, params: list[Any]) -> Any:
        config = _config(params, 1)
        tx = decode_transaction(_arg(params, 0, "transaction"), config.get("encoding") or "base58")
        sig_verify = bool(config.get("sigVerify", False))
        replace = bool(config.get("replaceRecentBlockhash", False))
        if sig_verify and replace:
            raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        slot = self._slot(_commitment(config))
        replacement = None
        if replace:
            block = self.node.current
            msg = tx.message
            blockhash = Hash.from_string(block.blockhash)
            if isinstance(msg, MessageV0):
                msg = MessageV0(msg.header, msg.account_keys, blockhash, msg.instructions, msg.address_table_lookups)
            else:
                msg = Message.new_with_compiled_instructions(
                    msg.header.num_required_signatures, msg.header.num_readonly_signed_accounts,
                    msg.header.num_readonly_unsigned_accounts, msg.account_keys, blockhash, msg.instructions)
            tx = VersionedTransaction.populate(msg, tx.signatures)
            replacement = {"blockhash": block.blockhash, "lastValidBlockHeight": block.last_valid_block_height}
        accounts_config = config.get("accounts")
        addresses: list[Pubkey] = []
        if accounts_config is not None:
            if not isinstance(accounts_config, dict) or not isinstance(accounts_config.get("addresses"), list):
                raise invalid_params("Invalid params: accounts.addresses must be an array of base-58 pubkeys")
            encoding = accounts_config.get("encoding") or "base64"
            if encoding != "base64":
                raise invalid_params(f"Invalid params: accounts.encoding {encoding!r} is not supported by the "
                                     "local chain (base64)")
            addresses = [parse_pubkey(text) for text in accounts_config["addresses"]]
        result = self.node.simulate(tx, sig_verify=sig_verify)
        accounts = None
        if accounts_config is not None:
            # the state each account would have after the transaction (agave: null after a failure)
            post = result["postAccounts"]
            accounts = [None if result["err"] is not None else
                        _account_json(post[key] if key in post else self.node.svm.get_account(key))
                        for key in addresses]
        value = {"err": result["err"], "logs": result["logs"], "accounts": accounts,
                 "unitsConsumed": result["unitsConsumed"], "returnData": result["returnData"],
                 "innerInstructions": None, "loadedAccountsDataSize": None,
                 "replacementBlockhash": replacement}
        return self._context(slot, value)

    def _lagging(self, record: TxRecord) -> bool:
        return not self.node.seen(record, self.status_lag_blocks)

    def _status(self, record: TxRecord) -> dict[str, Any]:
        status, confirmations = self.node.confirmation_status(record, self.status_lag_blocks)
        return {"slot": record.slot, "confirmations": confirmations, "err": record.err,
                "status": {"Ok": None} if record.err is None else {"Err": record.err},
                "confirmationStatus": status}

    def get_signature_statuses(self, params: list[Any]) -> Any:
        signatures = _arg(params, 0, "signatures")
        if not isinstance(signatures, list):
            raise invalid_params("Invalid params: signatures must be an array of strings")
        if len(signatures) > MAX_SIGNATURE_STATUSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        search_history = bool(_config(params, 1).get("searchTransactionHistory", False))
        values = []
        for text in signatures:
            signature = str(parse_signature(text))
            record = self.node.records.get(signature)
            if record is None or (not search_history and not self.node.in_status_cache(record)) \
                    or self._lagging(record):
                values.append(None)
            else:
                values.append(self._status(record))
        return self._context(self._slot("processed"), values)

    def get_signatures_for_address(self, params: list[Any]) -> Any:
        address = str(parse_pubkey(_arg(params, 0, "address")))
        config = _config(params, 1)
        commitment = _commitment(config)
        if commitment == "processed":
            raise invalid_params("Method does not support commitment below `confirmed`")
        limit = config.get("limit") or MAX_SIGNATURES_FOR_ADDRESS
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
            raise invalid_params(f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        before, until = config.get("before"), config.get("until")
        newest_first = list(reversed(self.node.by_address.get(address, [])))
        if before is not None:
            before = str(parse_signature(before))
            newest_first = newest_first[newest_first.index(before) + 1:] if before in newest_first else []
        out = []
        for signature in newest_first:
            if signature == until:
                break
            record = self.node.records[signature]
            if not self.node.meets(record, commitment, self.status_lag_blocks):
                continue
            status, _ = self.node.confirmation_status(record, self.status_lag_blocks)
            out.append({"signature": signature, "slot": record.slot, "err": record.err, "memo": None,
                        "blockTime": record.block_time, "confirmationStatus": status})
            if len(out) >= limit:
                break
        return out

    def get_transaction(self, params: list[Any]) -> Any:
        signature = str(parse_signature(_arg(params, 0, "signature")))
        config = _config(params, 1)
        commitment = _commitment(config)
        if commitment == "processed":
            raise invalid_params("Method does not support commitment below `confirmed`")
        encoding = config.get("encoding") or "json"
        if encoding not in ("json", "base64", "base58"):
            raise invalid_params(f"Invalid params: unsupported encoding {encoding!r} (json, base64, base58)")
        record = self.node.records.get(signature)
        if record is None or not self.node.meets(record, commitment, self.status_lag_blocks):
            return None
        tx = record.transaction
        is_legacy = str(tx.version()).endswith("Legacy")
        max_version = config.get("maxSupportedTransactionVersion")
        if not is_legacy and max_version is None:
            raise RpcError(-32015, "Transaction version (0) is not supported by the requesting client. "
                           "Please try the request again with the following configuration parameter: "
                           '"maxSupportedTransactionVersion": 0')
        if encoding == "base64":
            encoded: Any = [base64.b64encode(bytes(tx)).decode(), "base64"]
        elif encoding == "base58":
            encoded = [base58.b58encode(bytes(tx)).decode(), "base58"]
        else:
            encoded = _ui_transaction(tx, is_legacy)
        meta = {
            "err": record.err,
            "status": {"Ok": None} if record.err is None else {"Err": record.err},
            "fee": record.fee,
            "preBalances": record.pre_balances,
            "postBalances": record.post_balances,
            "innerInstructions": record.inner_instructions,
            "logMessages": record.logs,
            "preTokenBalances": record.pre_token_balances,
            "postTokenBalances": record.post_token_balances,
            "rewards": [],
            "loadedAddresses": {"writable": record.loaded_writable, "readonly": record.loaded_readonly},
            "computeUnitsConsumed": record.compute_units,
        }
        result: dict[str, Any] = {"slot": record.slot, "blockTime": record.block_time, "transaction": encoded,
                                  "meta": meta}
        if max_version is not None:
            result["version"] = "legacy" if is_legacy else 0
        return result

    def request_airdrop(self, params: list[Any]) -> Any:
        pubkey = parse_pubkey(_arg(params, 0, "pubkey"))
        lamports = _arg(params, 1, "lamports")
        if not isinstance(lamports, int) or lamports <= 0:
            raise invalid_params("Invalid params: lamports must be a positive integer")
        return self.node.airdrop(pubkey, lamports)

    # ---- accounts ---------------------------------------------------------------------------------
    def get_balance(self, params: list[Any]) -> Any:
        pubkey = parse_pubkey(_arg(params, 0, "pubkey"))
        slot = self._slot(_commitment(_config(params, 1)))
        return self._context(slot, self.node.svm.get_balance(pubkey) or 0)

    def get_multiple_accounts(self, params: list[Any]) -> Any:
        keys = _arg(params, 0, "pubkeys")
        if not isinstance(keys, list) or len(keys) > 100:
            raise invalid_params("Invalid params: pubkeys must be an array of at most 100 base-58 pubkeys")
        config = _config(params, 1)
        encoding = config.get("encoding") or "base64"
        if encoding != "base64":
            raise invalid_params(f"Invalid params: encoding {encoding!r} is not supported by the local chain (base64)")
        slot = self.node.slot_at(_commitment(config))
        return self._context(slot, [_account_json(self.node.svm.get_account(parse_pubkey(k))) for k in keys])

    def get_account_info(self, params: list[Any]) -> Any:
        pubkey = parse_pubkey(_arg(params, 0, "pubkey"))
        config = _config(params, 1)
        slot = self._slot(_commitment(config))
        account = self.node.svm.get_account(pubkey)
        if account is None:
            return self._context(slot, None)
        data = bytes(account.data)
        data_slice = config.get("dataSlice")
        if isinstance(data_slice, dict):
            offset, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
            data = data[offset:offset + length]
        encoding = config.get("encoding") or "binary"
        if encoding == "jsonParsed" and account.owner in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) \
                and len(account.data) == 165:
            encoded: Any = self._parsed_token_account(pubkey, bytes(account.data))
        elif encoding in ("base64", "jsonParsed"):
            encoded = [base64.b64encode(data).decode(), "base64"]
        elif encoding == "base58":
            encoded = [base58.b58encode(data).decode(), "base58"]
        elif encoding == "binary":
            encoded = base58.b58encode(data).decode()
        elif encoding == "base64+zstd":
            raise invalid_params("Invalid params: base64+zstd is not supported by the local chain")
        else:
            raise invalid_params(f"Invalid params: unknown encoding {encoding!r}")
        return self._context(slot, {"data": encoded, "executable": account.executable,
                                    "lamports": account.lamports, "owner": str(account.owner),
                                    "rentEpoch": 18446744073709551615, "space": len(account.data)})

    def _parsed_token_account(self, pubkey: Pubkey, data: bytes) -> dict[str, Any]:
        mint = Pubkey.from_bytes(data[0:32])
        owner = Pubkey.from_bytes(data[32:64])
        amount = int.from_bytes(data[64:72], "little")
        return {"program": "spl-token", "space": 165, "parsed": {"type": "account", "info": {
            "isNative": False, "mint": str(mint), "owner": str(owner), "state": "initialized",
            "tokenAmount": ui_token_amount(amount, self.node.mint_decimals(mint))}}}

    def get_token_account_balance(self, params: list[Any]) -> Any:
        pubkey = parse_pubkey(_arg(params, 0, "pubkey"))
        slot = self._slot(_commitment(_config(params, 1)))
        account = self.node.svm.get_account(pubkey)
        if account is None or account.owner not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) \
                or len(account.data) < 165:
            raise invalid_params("Invalid param: could not find account" if account is None
                                 else "Invalid param: not a Token account")
        data = bytes(account.data)
        mint = Pubkey.from_bytes(data[0:32])
        amount = int.from_bytes(data[64:72], "little")
        return self._context(slot, ui_token_amount(amount, self.node.mint_decimals(mint)))


def _account_json(account: Any) -> dict[str, Any] | None:
    """An account in the base64 shape of getMultipleAccounts / simulateTransaction's accounts."""
    if account is None or (account.lamports == 0 and not bytes(account.data)):
        return None
    data = bytes(account.data)
    return {"data": [base64.b64encode(data).decode(), "base64"], "executable": account.executable,
            "lamports": account.lamports, "owner": str(account.owner), "rentEpoch": 18446744073709551615,
            "space": len(data)}


def _ui_transaction(tx: VersionedTransaction, is_legacy: bool) -> dict[str, Any]:
    msg = tx.message
    header = msg.header
    message: dict[str, Any] = {
        "accountKeys": [str(key) for key in msg.account_keys],
        "header": {"numRequiredSignatures": header.num_required_signatures,
                   "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                   "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts},
        "recentBlockhash": str(msg.recent_blockhash),
        "instructions": [{"programIdIndex": ix.program_id_index, "accounts": list(bytes(ix.accounts)),
                          "data": base58.b58encode(bytes(ix.data)).decode(), "stackHeight": None}
                         for ix in msg.instructions],
    }
    if not is_legacy:
        message["addressTableLookups"] = [
            {"accountKey": str(lookup.account_key), "writableIndexes": list(bytes(lookup.writable_indexes)),
             "readonlyIndexes": list(bytes(lookup.readonly_indexes))}
            for lookup in (msg.address_table_lookups or [])]
    return {"signatures": [str(sig) for sig in tx.signatures], "message": message}
