"""A local constant-product market of seeded SPL mints, quoted and swapped the way Jupiter does.

Stands in for Jupiter's hosted swap API v1 (GET /swap/v1/quote, POST /swap/v1/swap), its price API v3
(GET /price/v3?ids=...: USD prices derived from the pool, the quote mint being the USD-stable one) and
the AMM liquidity behind it. The quote/swap answers use Jupiter's JSON field names; the swap transaction is a
real VersionedTransaction that LiteSVM executes atomically:

  0. createAssociatedTokenAccountIdempotent for the user's output token account (payer: the user)
  1. the slippage guard at Jupiter's program id (see ``slippage_program``): fails with custom error
     6001 when, at execution time, the pool would give less than the quote's otherAmountThreshold
  2. SPL TransferChecked of inAmount: user's input token account -> pool's input reserve
  3. SPL TransferChecked of outAmount: pool's output reserve -> user's output token account

Hostile modes (``hostile`` on a call; the server sets it from a ``hostile`` fault, see ``faults``)
stand in for a compromised or impersonated swap API. Each one serves a transaction (or quote) that
a careless client would sign; see ``HOSTILE_MODES``.

Differences from the real service, on purpose:
- the fee payer is the user, as with Jupiter, but the pool authority must sign transfer 3, so the
  server returns the transaction PARTIALLY signed: the pool authority's signature is filled in and the
  user's slot (index 0, the fee payer) holds the default all-zero signature for the caller to fill.
  Real Jupiter returns a transaction whose only required signature is the user's, all slots empty.
- when the guard passes, the user receives the quoted outAmount (real Jupiter delivers whatever the
  route yields at execution, at least otherAmountThreshold).
- only ExactIn, a single pool per mint pair, no platform fees.
"""

from __future__ import annotations

import base64
import math
import struct
import time
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from solders.account import Account
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import AssignParams, TransferParams, assign
from solders.system_program import transfer as system_transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    AuthorityType,
    approve,
    create_idempotent_associated_token_account,
    get_associated_token_address,
    set_authority,
    transfer_checked,
)
from spl.token.models import ApproveParams, SetAuthorityParams, TransferCheckedParams

from xorj.chain.holdings import MintInfo
from xorj.devenv.chain import slippage_program
from xorj.devenv.chain.node import MAX_PROCESSING_AGE, SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID, LocalChainNode
from xorj.devenv.chain.slippage_program import JUPITER_PROGRAM_ID

BPS = 10_000
NATIVE_SOL_MINT = "So11111111111111111111111111111111111111112"
U64_MAX = 2**64 - 1

# What each hostile mode adds to (or changes in) the honest answer.
HOSTILE_MODES: dict[str, str] = {
    "drain": "a System transfer of 1 SOL from the vault to the attacker",
    "approve": "an SPL Approve(u64::MAX) of the vault's input account to the attacker",
    "authority": "an SPL SetAuthority handing the vault's input account to the attacker",
    "assign": "a System Assign of the vault's account to the attacker's program",
    "wrong_mint": "the vault pays from its account of the OUTPUT mint instead of the input mint",
    "wrong_amount": "the vault pays twice the quoted amount",
    "excess_priority_fee": "a compute budget of 1.4M units at 10^9 micro-lamports (1.4 SOL of priority fee)",
    "lowball_validity": "a lastValidBlockHeight 150 blocks lower than the blockhash's (expires at once)",
    "extra_signer": "an extra signer, pre-signed by the API, riding on the pool's leg",
    "nan_price_impact": "a quote whose priceImpactPct is NaN",
    "inf_price_impact": "a quote whose priceImpactPct is inf",
}


class SwapApiError(Exception):
    """A 4xx answer of the swap API: Jupiter answers {"error": ..., "errorCode": ...}."""

    def __init__(self, message: str, error_code: str = "INVALID_REQUEST", status: int = 400):
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "errorCode": self.error_code}


def _seeded_keypair(seed: str, name: str) -> Keypair:
    return Keypair.from_seed(sha256(f"xorj-local-chain/{seed}/{name}".encode()).digest())


def pack_mint(authority: Pubkey, supply: int, decimals: int) -> bytes:
    return (struct.pack("<I", 1) + bytes(authority) + struct.pack("<QBB", supply, decimals, 1)
            + struct.pack("<I", 0) + bytes(32))


def pack_token_account(mint: Pubkey, owner: Pubkey, amount: int) -> bytes:
    data = (bytes(mint) + bytes(owner) + struct.pack("<Q", amount)
            + struct.pack("<I", 0) + bytes(32)  # delegate: None
            + bytes([1])  # state: Initialized
            + struct.pack("<I", 0) + struct.pack("<Q", 0)  # is_native: None
            + struct.pack("<Q", 0)  # delegated_amount
            + struct.pack("<I", 0) + bytes(32))  # close_authority: None
    assert len(data) == 165
    return data


def token_amount(node: LocalChainNode, account: Pubkey) -> int:
    acc = node.svm.get_account(account)
    if acc is None:
        return 0
    return struct.unpack_from("<Q", bytes(acc.data), 64)[0]


@dataclass
class Market:
    """One constant-product pool between two seeded mints, plus the funded vaults that trade on it."""

    node: LocalChainNode
    seed: str = "default"
    fee_bps: int = 25
    mints: dict[str, MintInfo] = field(default_factory=dict)
    vaults: dict[str, Keypair] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mint_authority = _seeded_keypair(self.seed, "mint-authority")
        self.pool_authority = _seeded_keypair(self.seed, "pool-authority")
        self.amm_key = _seeded_keypair(self.seed, "amm").pubkey()
        self.attacker = _seeded_keypair(self.seed, "attacker")
        self.extra_signer = _seeded_keypair(self.seed, "extra-signer")
        self.hostile: str | None = None  # the hostile mode of the call being served (set by the server)
        self.node.svm.add_program(JUPITER_PROGRAM_ID, slippage_program.program_elf())
        self.node.svm.set_account(self.pool_authority.pubkey(),
                                  Account(10**12, b"", SYSTEM_PROGRAM_ID, False))

    # ---- seeding --------------------------------------------------------------------------------
    def _rent(self, size: int) -> int:
        return self.node.svm.minimum_balance_for_rent_exemption(size)

    def add_mint(self, symbol: str, decimals: int) -> MintInfo:
        address = _seeded_keypair(self.seed, f"mint/{symbol}").pubkey()
        self.node.svm.set_account(address, Account(self._rent(82), pack_mint(self.mint_authority.pubkey(), 0, decimals),
                                                   TOKEN_PROGRAM_ID, False))
        info = MintInfo(str(address), decimals, str(TOKEN_PROGRAM_ID), symbol=symbol)
        self.mints[symbol] = info
        return info

    def set_token_balance(self, owner: Pubkey, mint: MintInfo, amount: int) -> Pubkey:
        """Create or overwrite owner's associated token account of mint (seeding and price faults)."""
        ata = get_associated_token_address(owner, mint.address)
        self.node.svm.set_account(ata, Account(self._rent(165), pack_token_account(mint.address, owner, amount),
                                               TOKEN_PROGRAM_ID, False))
        return ata

    def seed_pool(self, base: str, quote: str, base_reserve: int, quote_reserve: int) -> None:
        self.base_mint, self.quote_mint = self.mints[base], self.mints[quote]
        self.set_token_balance(self.pool_authority.pubkey(), self.base_mint, base_reserve)
        self.set_token_balance(self.pool_authority.pubkey(), self.quote_mint, quote_reserve)

    def add_vault(self, lamports: int, balances: dict[str, int], keypair: Keypair | None = None) -> Keypair:
        vault = keypair or Keypair()
        self.node.svm.set_account(vault.pubkey(), Account(lamports, b"", SYSTEM_PROGRAM_ID, False))
        for symbol, mint in self.mints.items():
            self.set_token_balance(vault.pubkey(), mint, balances.get(symbol, 0))
        self.vaults[str(vault.pubkey())] = vault
        return vault

    def fund_wallet(self, owner: Pubkey, lamports: int, balances: dict[str, int]) -> None:
        """A dev faucet for any wallet (e.g. a simulated lead trader's own key): native SOL and its
        associated token accounts of the listed mints, set to these amounts."""
        unknown = sorted(set(balances) - set(self.mints))
        if unknown:
            raise ValueError(f"unknown mint symbol(s) {unknown}; known: {sorted(self.mints)}")
        self.node.svm.set_account(owner, Account(lamports, b"", SYSTEM_PROGRAM_ID, False))
        for symbol, amount in balances.items():
            self.set_token_balance(owner, self.mints[symbol], amount)

    # ---- pool -------------------------------------------------------------------------------------
    def reserve_account(self, mint: Pubkey) -> Pubkey:
        return get_associated_token_address(self.pool_authority.pubkey(), mint)

    def reserves(self, input_mint: Pubkey, output_mint: Pubkey) -> tuple[int, int]:
        return (token_amount(self.node, self.reserve_account(input_mint)),
                token_amount(self.node, self.reserve_account(output_mint)))

    def price(self) -> float:
        """Price of one base token in quote tokens, from the on-chain reserves."""
        base_reserve, quote_reserve = self.reserves(self.base_mint.address, self.quote_mint.address)
        return (quote_reserve / 10**self.quote_mint.decimals) / (base_reserve / 10**self.base_mint.decimals)

    def move_price(self, bps: int) -> float:
        """Move the base token's price by ``bps`` (other traders): reserves scale by sqrt, k is kept."""
        if bps <= -BPS:
            raise ValueError("bps must be greater than -10000")
        factor = math.sqrt((BPS + bps) / BPS)
        base_reserve, quote_reserve = self.reserves(self.base_mint.address, self.quote_mint.address)
        self.set_token_balance(self.pool_authority.pubkey(), self.base_mint, max(1, int(base_reserve / factor)))
        self.set_token_balance(self.pool_authority.pubkey(), self.quote_mint, max(1, int(quote_reserve * factor)))
        return self.price()

    # ---- Jupiter price API v3 ----------------------------------------------------------------------
    def usd_prices(self, ids: Any) -> dict[str, Any]:
        """Jupiter price API v3's answer for the comma-separated mints ``ids``: an object keyed by mint
        with ``usdPrice`` (USD per whole token) and ``decimals``; mints it cannot price are left out,
        as Jupiter does. The pool's quote mint (USDC) is the USD-stable one (1 USD); the base mint is
        priced from the pool's reserves; native SOL's mint (So111...112, as price APIs quote it) is
        priced as the base mint, which stands in for SOL here."""
        if not isinstance(ids, str) or not ids.strip():
            raise SwapApiError("Query parameter ids is required")
        wanted = [m for m in (part.strip() for part in ids.split(",")) if m]
        if len(wanted) > 50:
            raise SwapApiError("Query parameter ids accepts at most 50 mints")
        base_price = self.price()
        known = {str(self.quote_mint.address): (1.0, self.quote_mint.decimals),
                 str(self.base_mint.address): (base_price, self.base_mint.decimals),
                 NATIVE_SOL_MINT: (base_price, 9)}
        answer: dict[str, Any] = {}
        for mint in wanted:
            if mint in known:
                price, decimals = known[mint]
                answer[mint] = {"createdAt": "2024-06-05T08:55:25.527Z", "liquidity": 0.0,
                                "usdPrice": price, "blockId": self.node.slot, "decimals": decimals,
                                "priceChange24h": 0.0}
        return answer

    def _mint_by_address(self, field_name: str, text: Any) -> MintInfo:
        if not isinstance(text, str) or not text:
            raise SwapApiError(f"Query parameter {field_name} is required")
        for info in self.mints.values():
            if str(info.address) == text:
                return info
        try:
            Pubkey.from_string(text)
        except Exception:
            raise SwapApiError(f"Query parameter {field_name} cannot be parsed: invalid pubkey {text!r}") from None
        raise SwapApiError(f"The token {text} is not tradable", "TOKEN_NOT_TRADABLE")

    # ---- Jupiter API ------------------------------------------------------------------------------
    def quote(self, params: dict[str, str]) -> dict[str, Any]:
        started = time.perf_counter()
        input_mint = self._mint_by_address("inputMint", params.get("inputMint"))
        output_mint = self._mint_by_address("outputMint", params.get("outputMint"))
        if input_mint == output_mint:
            raise SwapApiError("inputMint cannot be the same as outputMint", "CIRCULAR_ARBITRAGE_IS_DISABLED")
        amount = _parse_uint("amount", params.get("amount"))
        if amount == 0:
            raise SwapApiError("Query parameter amount must be greater than 0")
        slippage_bps = _parse_uint("slippageBps", params.get("slippageBps", "50"))
        if slippage_bps > BPS:
            raise SwapApiError("Query parameter slippageBps must be at most 10000")
        swap_mode = params.get("swapMode", "ExactIn")
        if swap_mode != "ExactIn":
            raise SwapApiError("Only swapMode=ExactIn is supported by the local market")
        reserve_in, reserve_out = self.reserves(input_mint.address, output_mint.address)
        amount_after_fee = amount * (BPS - self.fee_bps) // BPS
        out_amount = reserve_out * amount_after_fee // (reserve_in + amount_after_fee)
        if out_amount == 0:
            raise SwapApiError("No routes found for the input and output mints", "COULD_NOT_FIND_ANY_ROUTE")
        threshold = out_amount * (BPS - slippage_bps) // BPS
        spot_out = amount * reserve_out / reserve_in
        price_impact = max(0.0, 1 - out_amount / spot_out) if spot_out else 0.0
        fee_amount = amount - amount_after_fee
        return {
            "inputMint": str(input_mint.address),
            "inAmount": str(amount),
            "outputMint": str(output_mint.address),
            "outAmount": str(out_amount),
            "otherAmountThreshold": str(threshold),
            "swapMode": "ExactIn",
            "slippageBps": slippage_bps,
            "platformFee": None,
            "priceImpactPct": {"nan_price_impact": "NaN", "inf_price_impact": "inf"}.get(
                self.hostile or "", f"{price_impact:.10f}"),
            "routePlan": [{
                "swapInfo": {
                    "ammKey": str(self.amm_key),
                    "label": "xorj-local-cpmm",
                    "inputMint": str(input_mint.address),
                    "outputMint": str(output_mint.address),
                    "inAmount": str(amount),
                    "outAmount": str(out_amount),
                    "feeAmount": str(fee_amount),
                    "feeMint": str(input_mint.address),
                },
                "percent": 100,
                "bps": 10000,
            }],
            "contextSlot": self.node.slot,
            "timeTaken": time.perf_counter() - started,
        }

    def swap(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise SwapApiError("Request body must be a JSON object")
        quote = body.get("quoteResponse")
        if not isinstance(quote, dict):
            raise SwapApiError("Field quoteResponse is required and must be the object returned by /quote")
        user_text = body.get("userPublicKey")
        try:
            user = Pubkey.from_string(user_text) if isinstance(user_text, str) else None
        except Exception:
            user = None
        if user is None:
            raise SwapApiError("Field userPublicKey must be a base-58 public key")
        input_mint = self._mint_by_address("quoteResponse.inputMint", quote.get("inputMint"))
        output_mint = self._mint_by_address("quoteResponse.outputMint", quote.get("outputMint"))
        in_amount = _parse_uint("quoteResponse.inAmount", quote.get("inAmount"))
        out_amount = _parse_uint("quoteResponse.outAmount", quote.get("outAmount"))
        threshold = _parse_uint("quoteResponse.otherAmountThreshold", quote.get("otherAmountThreshold"))
        if threshold > out_amount:
            raise SwapApiError("quoteResponse.otherAmountThreshold must not exceed outAmount")

        pool = self.pool_authority.pubkey()
        user_in = get_associated_token_address(user, input_mint.address)
        user_out = get_associated_token_address(user, output_mint.address)
        reserve_in = self.reserve_account(input_mint.address)
        reserve_out = self.reserve_account(output_mint.address)
        amount_after_fee = in_amount * (BPS - self.fee_bps) // BPS
        hostile = self.hostile
        pay_from, pay_mint, paid = user_in, input_mint, in_amount
        if hostile == "wrong_mint":
            pay_from, pay_mint = user_out, output_mint
        elif hostile == "wrong_amount":
            paid = in_amount * 2
        pool_leg = transfer_checked(TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID, source=reserve_out, mint=output_mint.address, dest=user_out,
            owner=pool, amount=out_amount, decimals=output_mint.decimals))
        if hostile == "extra_signer":  # SPL Token ignores extra accounts of a non-multisig owner
            pool_leg = Instruction(pool_leg.program_id, pool_leg.data,
                                   [*pool_leg.accounts, AccountMeta(self.extra_signer.pubkey(), True, False)])
        instructions = [
            create_idempotent_associated_token_account(user, user, output_mint.address),
            Instruction(JUPITER_PROGRAM_ID, slippage_program.instruction_data(amount_after_fee, threshold),
                        [AccountMeta(reserve_in, False, False), AccountMeta(reserve_out, False, False)]),
            transfer_checked(TransferCheckedParams(
                program_id=TOKEN_PROGRAM_ID, source=pay_from, mint=pay_mint.address, dest=reserve_in,
                owner=user, amount=paid, decimals=pay_mint.decimals)),
            pool_leg,
        ]
        instructions = self._hostile_instructions(hostile, user, user_in) + instructions
        block = self.node.block_at("confirmed")
        message = MessageV0.try_compile(user, instructions, [], Hash.from_string(block.blockhash))
        signers = list(message.account_keys[: message.header.num_required_signatures])
        signatures = [Signature.default()] * len(signers)
        for cosigner in (self.pool_authority, self.extra_signer):
            if cosigner.pubkey() in signers:
                signatures[signers.index(cosigner.pubkey())] = cosigner.sign_message(to_bytes_versioned(message))
        tx = VersionedTransaction.populate(message, signatures)
        last_valid = block.last_valid_block_height
        if hostile == "lowball_validity":
            last_valid = max(1, block.height - MAX_PROCESSING_AGE)
        return {
            "swapTransaction": base64.b64encode(bytes(tx)).decode(),
            "lastValidBlockHeight": last_valid,
            "prioritizationFeeLamports": 0,
            "computeUnitLimit": 200_000,
            "prioritizationType": {"computeBudget": {"microLamports": 0, "estimatedMicroLamports": 0}},
            "dynamicSlippageReport": None,
            "simulationError": None,
        }

    def _hostile_instructions(self, hostile: str | None, user: Pubkey, user_in: Pubkey) -> list[Instruction]:
        """Instructions a hostile API slips in front of the swap."""
        attacker = self.attacker.pubkey()
        if hostile == "drain":
            return [system_transfer(TransferParams(from_pubkey=user, to_pubkey=attacker, lamports=10**9))]
        if hostile == "approve":
            return [approve(ApproveParams(program_id=TOKEN_PROGRAM_ID, source=user_in, delegate=attacker, owner=user,
                                          amount=U64_MAX))]
        if hostile == "authority":
            return [set_authority(SetAuthorityParams(program_id=TOKEN_PROGRAM_ID, account=user_in,
                                                     authority=AuthorityType.ACCOUNT_OWNER, current_authority=user,
                                                     new_authority=attacker))]
        if hostile == "assign":
            return [assign(AssignParams(pubkey=user, owner=attacker))]
        if hostile == "excess_priority_fee":
            return [set_compute_unit_limit(1_400_000), set_compute_unit_price(10**9)]
        return []

    # ---- accounting for tests -------------------------------------------------------------------
    def swaps_of(self, vault: str) -> list[dict[str, Any]]:
        """Every landed swap transaction paid by ``vault``, oldest first, with its on-chain effect."""
        out = []
        for signature in self.node.by_address.get(vault, []):
            record = self.node.records[signature]
            keys = record.transaction.message.account_keys
            if str(keys[0]) != vault or JUPITER_PROGRAM_ID not in keys:
                continue
            deltas: dict[str, int] = {}
            pre = {b["accountIndex"]: b for b in record.pre_token_balances}
            for post in record.post_token_balances:
                if post["owner"] != vault:
                    continue
                before = int(pre[post["accountIndex"]]["uiTokenAmount"]["amount"]) if post["accountIndex"] in pre else 0
                deltas[post["mint"]] = int(post["uiTokenAmount"]["amount"]) - before
            out.append({"signature": signature, "slot": record.slot, "err": record.err, "fee": record.fee,
                        "filled": record.err is None, "tokenDeltas": deltas})
        return out

    def vault_state(self, vault: str) -> dict[str, Any]:
        """What a hostile transaction could change of ``vault``: its lamports and account owner, and for
        each market mint (by address) its token account's amount, owner and delegate; plus every transaction it
        paid for (any program), with the fee each cost."""
        key = Pubkey.from_string(vault)
        account = self.node.svm.get_account(key)
        tokens: dict[str, Any] = {}
        for mint in self.mints.values():
            ata = self.node.svm.get_account(get_associated_token_address(key, mint.address))
            if ata is None or len(bytes(ata.data)) < 165:
                tokens[str(mint.address)] = None
                continue
            data = bytes(ata.data)
            delegate = Pubkey.from_bytes(data[76:108]) if struct.unpack_from("<I", data, 72)[0] else None
            tokens[str(mint.address)] = {"amount": struct.unpack_from("<Q", data, 64)[0],
                                         "owner": str(Pubkey.from_bytes(data[32:64])),
                                         "delegate": str(delegate) if delegate else None, "program": str(ata.owner)}
        paid = [{"signature": sig, "fee": self.node.records[sig].fee, "err": self.node.records[sig].err}
                for sig in self.node.by_address.get(vault, [])
                if str(self.node.records[sig].transaction.message.account_keys[0]) == vault]
        return {"vault": vault, "lamports": account.lamports if account else 0,
                "owner": str(account.owner) if account else None, "tokens": tokens, "transactions": paid}


def _parse_uint(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        raise SwapApiError(f"Query parameter {name} cannot be parsed: expected an unsigned integer, got {value!r}")
    if number >= 1 << 64:
        raise SwapApiError(f"Query parameter {name} must fit in a u64")
    return number
