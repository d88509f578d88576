"""What a swap transaction may do to the vault, decided before the vault signs it. Pure: no I/O.

The swap API (Jupiter, or anything answering on its URL) builds the transaction; the vault's key
signs it. Whoever controls that API (or the network path to it) would otherwise choose what the
vault signs. Three checks stand between the answer and the signature:

1. :func:`check_quote` -- the quote is usable: finite numbers, and a minimum out
   (``otherAmountThreshold``) no lower than our own slippage setting allows.
2. :func:`check_swap_message` -- every top-level instruction is decoded and must be one of:
   ComputeBudget SetComputeUnitLimit / SetComputeUnitPrice (capped), idempotent ATA creation for the
   vault, the native-SOL wrap (System transfer of at most the amount into the vault's own WSOL
   account + SyncNative) and unwrap (CloseAccount of that account back to the vault), exactly one
   route instruction of the aggregator whose amounts match the quote and the trade and whose user
   accounts are the vault's, the single input leg (an SPL transfer signed by the vault, from its
   account of the input mint, of exactly the trade's amount) and transfers INTO the vault's
   account of the output mint signed by someone else. Every signer besides the vault must be the
   authority of such an inbound transfer (a pool that pre-signed its leg). Address lookup tables
   are refused (they would hide accounts from this check).
3. :func:`check_simulation` -- the transaction simulated against the current chain state, with the
   vault's accounts before and after: only the input may fall, by at most the trade's amount (plus
   the fee budget in SOL), the output must rise by at least the minimum out, and no vault account
   changes owner, delegate, close authority or program.

A refusal raises :class:`~xorj.chain.errors.SwapRejectedError` (or ``QuoteRejectedError``) whose
``rule`` names the check.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from solders.instruction import CompiledInstruction
from solders.message import Message, MessageV0, MessageV1
from solders.pubkey import Pubkey

from xorj.chain.classify import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    COMPUTE_BUDGET_PROGRAM_ID,
    JUPITER_PROGRAM_ID,
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
)
from xorj.chain.errors import QuoteRejectedError, SwapRejectedError

BPS = 10_000
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
U64_MAX = 2**64 - 1

_SYSTEM = Pubkey.from_string(SYSTEM_PROGRAM_ID)
_TOKEN = Pubkey.from_string(TOKEN_PROGRAM_ID)
_TOKEN_2022 = Pubkey.from_string(TOKEN_2022_PROGRAM_ID)
_TOKEN_PROGRAMS = frozenset({_TOKEN, _TOKEN_2022})
_ATA = Pubkey.from_string(ASSOCIATED_TOKEN_PROGRAM_ID)
_COMPUTE_BUDGET = Pubkey.from_string(COMPUTE_BUDGET_PROGRAM_ID)

# SPL Token instruction tags (the same in Token-2022)
_TOKEN_TRANSFER = 3
_TOKEN_CLOSE_ACCOUNT = 9
_TOKEN_TRANSFER_CHECKED = 12
_TOKEN_SYNC_NATIVE = 17
_TOKEN_NAMES = {0: "InitializeMint", 1: "InitializeAccount", 2: "InitializeMultisig", 3: "Transfer", 4: "Approve",
                5: "Revoke", 6: "SetAuthority", 7: "MintTo", 8: "Burn", 9: "CloseAccount", 10: "FreezeAccount",
                11: "ThawAccount", 12: "TransferChecked", 13: "ApproveChecked", 14: "MintToChecked",
                15: "BurnChecked", 16: "InitializeAccount2", 17: "SyncNative", 18: "InitializeAccount3"}
# System program instruction tags (u32 little endian)
_SYSTEM_TRANSFER = 2
_SYSTEM_NAMES = {0: "CreateAccount", 1: "Assign", 2: "Transfer", 3: "CreateAccountWithSeed", 8: "Allocate",
                 9: "AllocateWithSeed", 10: "AssignWithSeed", 11: "TransferWithSeed"}
# ComputeBudget instruction tags
_CB_SET_LIMIT = 2
_CB_SET_PRICE = 3
# Associated Token Account program: CreateIdempotent
_ATA_CREATE_IDEMPOTENT = 1

# Jupiter v6 route instructions: Anchor discriminators. Their arguments END with
# in_amount u64, quoted_out_amount u64, slippage_bps u16, platform_fee_bps u8 (19 bytes), after a
# variable-length route plan, so they are read from the end.
ROUTE_DISCRIMINATOR = hashlib.sha256(b"global:route").digest()[:8]
SHARED_ACCOUNTS_ROUTE_DISCRIMINATOR = hashlib.sha256(b"global:shared_accounts_route").digest()[:8]
_JUPITER_TAIL = 19
# The local chain's slippage guard at Jupiter's id (xorj.devenv.chain.slippage_program): the route
# discriminator, then amount_in after the pool fee (u64) and the minimum out (u64): 24 bytes exactly.
# A real Jupiter route is never 24 bytes long (8 + 4-byte route-plan length + 19 at least).
_GUARD_ROUTE_LEN = 24


@dataclass(frozen=True)
class SwapLimits:
    """Caps on what a swap transaction may cost beyond the trade itself (settings with defaults)."""

    max_compute_unit_limit: int = 1_400_000  # the runtime's own per-transaction maximum
    max_compute_unit_price_micro_lamports: int = 1_000_000  # 1 lamport per compute unit
    max_priority_fee_lamports: int = 5_000_000  # 0.005 SOL: limit x price must stay below
    base_fee_lamports_per_signature: int = 5_000
    token_account_rent_lamports: int = 2_039_280  # rent-exempt minimum of a 165-byte token account
    max_ata_creations: int = 2  # the output account (and the WSOL account when wrapping)

    def validate(self) -> None:
        for name in ("max_compute_unit_limit", "max_compute_unit_price_micro_lamports", "max_priority_fee_lamports",
                     "base_fee_lamports_per_signature", "token_account_rent_lamports", "max_ata_creations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"swap limits: {name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class SwapIntent:
    """What the trade and its quote allow the transaction to do."""

    vault: Pubkey
    input_mint: Pubkey
    output_mint: Pubkey
    amount: int  # exactly this much of the input leaves the vault
    quoted_out: int  # the quote's outAmount
    min_out: int  # the quote's otherAmountThreshold: at least this much of the output arrives
    slippage_bps: int
    input_fee: int = 0  # route fees charged in the input mint (the quote's routePlan feeAmount)
    aggregator: Pubkey = Pubkey.from_string(JUPITER_PROGRAM_ID)


@dataclass(frozen=True)
class MessageFacts:
    """What :func:`check_swap_message` established; :func:`check_simulation` builds on it."""

    compute_unit_limit: int | None
    compute_unit_price: int  # micro-lamports per compute unit
    priority_fee_lamports: int
    signatures: int
    ata_creations: int
    wrap_lamports: int
    unwraps: bool
    cosigners: tuple[Pubkey, ...]
    fee_budget_lamports: int  # base fee + priority fee + rent of created accounts
    writable: tuple[Pubkey, ...]  # every writable account of the message (watched in the simulation)


@dataclass(frozen=True)
class AccountState:
    """One account as getMultipleAccounts / simulateTransaction return it."""

    lamports: int
    owner: Pubkey  # the program owning the account
    data: bytes = b""


@dataclass(frozen=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    close_authority: Pubkey | None


@dataclass(frozen=True)
class Simulation:
    """A successful simulation: the watched accounts before (read right before) and after."""

    before: Mapping[Pubkey, AccountState | None]
    after: Mapping[Pubkey, AccountState | None]
    units_consumed: int | None = None
    logs: Sequence[str] = field(default_factory=tuple)


# ---- 1. the quote ---------------------------------------------------------------------------------

def check_quote(*, out_amount: int, other_amount_threshold: int, price_impact_pct: float, slippage_bps: int,
                numbers: Mapping[str, float | None] | None = None) -> None:
    """Refuse a quote with a non-finite number, or whose minimum out is lower than ``slippage_bps``
    (our setting for this attempt) allows. ``numbers`` are further decimal fields to check."""
    for name, value in {"priceImpactPct": price_impact_pct, **(numbers or {})}.items():
        if value is not None and not math.isfinite(value):
            raise QuoteRejectedError("non-finite", f"quote field {name} is {value!r}")
    if not -1.0 <= price_impact_pct <= 1.0:
        raise QuoteRejectedError("price-impact-range", f"priceImpactPct {price_impact_pct!r} is not a fraction in [-1, 1]")
    if out_amount <= 0:
        raise QuoteRejectedError("out-amount", f"outAmount {out_amount} must be positive")
    if other_amount_threshold > out_amount:
        raise QuoteRejectedError("min-out", f"otherAmountThreshold {other_amount_threshold} exceeds outAmount {out_amount}")
    floor = out_amount * (BPS - slippage_bps) // BPS
    if other_amount_threshold < max(1, floor):
        raise QuoteRejectedError(
            "min-out", f"otherAmountThreshold {other_amount_threshold} is below outAmount {out_amount} less our "
            f"slippage of {slippage_bps} bps ({floor})")


# ---- 2. the message ---------------------------------------------------------------------------------

def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey = _TOKEN) -> Pubkey:
    """The associated token account of ``owner`` for ``mint`` under ``token_program`` (the ATA program's PDA)."""
    return Pubkey.find_program_address([bytes(owner), bytes(token_program), bytes(mint)], _ATA)[0]


def _vault_atas(vault: Pubkey, mint: Pubkey) -> frozenset[Pubkey]:
    return frozenset(associated_token_address(vault, mint, program) for program in _TOKEN_PROGRAMS)


def _u64(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<Q", data, offset)[0]  # unpack_from is typed tuple[Any, ...]
    return value


class _Decoder:
    """Walks the message's instructions once, refusing anything outside the allowed patterns."""

    def __init__(self, message: Message | MessageV0 | MessageV1, intent: SwapIntent, limits: SwapLimits) -> None:
        self.message = message
        self.intent = intent
        self.limits = limits
        self.keys = list(message.account_keys)
        header = message.header
        self.n_signers = header.num_required_signatures
        self.signers = self.keys[: self.n_signers]
        self.vault = intent.vault
        self.input_atas = _vault_atas(intent.vault, intent.input_mint)
        self.output_atas = _vault_atas(intent.vault, intent.output_mint)
        self.wsol_atas = _vault_atas(intent.vault, NATIVE_MINT)
        self.cu_limit: int | None = None
        self.cu_price: int | None = None
        self.ata_creations = 0
        self.wrap_lamports = 0
        self.synced: set[Pubkey] = set()
        self.unwraps = False
        self.routes = 0
        self.input_legs = 0
        self.inbound_authorities: set[Pubkey] = set()

    # account i of instruction ix (all static: lookups were refused)
    def _accounts(self, ix: CompiledInstruction, index: int) -> list[Pubkey]:
        accounts = []
        for position in bytes(ix.accounts):
            if position >= len(self.keys):
                raise SwapRejectedError("account-index", f"instruction {index} names account #{position}, "
                                        f"beyond the message's {len(self.keys)} keys")
            accounts.append(self.keys[position])
        return accounts

    def run(self) -> MessageFacts:
        for index, ix in enumerate(self.message.instructions):
            if ix.program_id_index >= len(self.keys):
                raise SwapRejectedError("program-index", f"instruction {index}: program is not a static account key")
            program = self.keys[ix.program_id_index]
            data = bytes(ix.data)
            accounts = self._accounts(ix, index)
            if program == _COMPUTE_BUDGET:
                self._compute_budget(index, data)
            elif program == _ATA:
                self._ata(index, data, accounts)
            elif program == _SYSTEM:
                self._system(index, data, accounts)
            elif program in _TOKEN_PROGRAMS:
                self._token(index, program, data, accounts)
            elif program == self.intent.aggregator:
                self._route(index, data, accounts)
            else:
                raise SwapRejectedError("program", f"instruction {index}: program {program} is not allowed")
        return self._finish()

    # ---- ComputeBudget
    def _compute_budget(self, index: int, data: bytes) -> None:
        tag = data[:1]
        if tag == bytes([_CB_SET_LIMIT]) and len(data) == 5:
            if self.cu_limit is not None:
                raise SwapRejectedError("compute-budget", f"instruction {index}: a second SetComputeUnitLimit")
            self.cu_limit = struct.unpack_from("<I", data, 1)[0]
            if self.cu_limit > self.limits.max_compute_unit_limit:
                raise SwapRejectedError("compute-unit-limit", f"{self.cu_limit} compute units > cap "
                                        f"{self.limits.max_compute_unit_limit}")
        elif tag == bytes([_CB_SET_PRICE]) and len(data) == 9:
            if self.cu_price is not None:
                raise SwapRejectedError("compute-budget", f"instruction {index}: a second SetComputeUnitPrice")
            self.cu_price = _u64(data, 1)
            if self.cu_price > self.limits.max_compute_unit_price_micro_lamports:
                raise SwapRejectedError("priority-fee", f"compute unit price {self.cu_price} micro-lamports > cap "
                                        f"{self.limits.max_compute_unit_price_micro_lamports}")
        else:
            raise SwapRejectedError("compute-budget", f"instruction {index}: only SetComputeUnitLimit and "
                                    "SetComputeUnitPrice are allowed")

    # ---- Associated Token Account: CreateIdempotent, paid by and owned by the vault
    def _ata(self, index: int, data: bytes, accounts: list[Pubkey]) -> None:
        if data != bytes([_ATA_CREATE_IDEMPOTENT]) or len(accounts) != 6:
            raise SwapRejectedError("ata", f"instruction {index}: only CreateIdempotent is allowed")
        payer, ata, wallet, mint, system, token_program = accounts
        if payer != self.vault or wallet != self.vault:
            raise SwapRejectedError("ata", f"instruction {index}: creates an account for {wallet} paid by {payer}; "
                                    "only the vault's own accounts, paid by the vault")
        if mint not in (self.intent.input_mint, self.intent.output_mint, NATIVE_MINT) or system != _SYSTEM \
                or token_program not in _TOKEN_PROGRAMS:
            raise SwapRejectedError("ata", f"instruction {index}: account of mint {mint} is not the trade's")
        if ata != associated_token_address(self.vault, mint, token_program):
            raise SwapRejectedError("ata", f"instruction {index}: {ata} is not the vault's associated account")
        self.ata_creations += 1
        if self.ata_creations > self.limits.max_ata_creations:
            raise SwapRejectedError("ata", f"more than {self.limits.max_ata_creations} account creations")

    # ---- System: only the wrap transfer into the vault's own WSOL account
    def _system(self, index: int, data: bytes, accounts: list[Pubkey]) -> None:
        tag = struct.unpack_from("<I", data, 0)[0] if len(data) >= 4 else -1
        name = _SYSTEM_NAMES.get(tag, f"instruction {tag}")
        if tag != _SYSTEM_TRANSFER or len(data) != 12 or len(accounts) != 2:
            touches = " of the vault" if self.vault in accounts else ""
            raise SwapRejectedError("system", f"instruction {index}: System {name}{touches} is not allowed")
        source, destination = accounts
        lamports = _u64(data, 4)
        if source != self.vault or destination not in self.wsol_atas or self.intent.input_mint != NATIVE_MINT:
            raise SwapRejectedError("vault-transfer", f"instruction {index}: System Transfer of {lamports} lamports "
                                    f"from {source} to {destination} is not the native-SOL wrap of this trade")
        self.wrap_lamports += lamports
        if self.wrap_lamports > self.intent.amount:
            raise SwapRejectedError("wrap-amount", f"wraps {self.wrap_lamports} lamports, more than the trade's "
                                    f"{self.intent.amount}")

    # ---- SPL Token / Token-2022
    def _token(self, index: int, program: Pubkey, data: bytes, accounts: list[Pubkey]) -> None:
        tag = data[0] if data else -1
        name = _TOKEN_NAMES.get(tag, f"instruction {tag}")
        if tag == _TOKEN_TRANSFER_CHECKED and len(data) == 10 and len(accounts) >= 4:
            source, mint, destination, authority = accounts[:4]
            self._transfer(index, program, source, destination, authority, _u64(data, 1), mint, accounts[4:])
        elif tag == _TOKEN_TRANSFER and len(data) == 9 and len(accounts) >= 3:
            source, destination, authority = accounts[:3]
            self._transfer(index, program, source, destination, authority, _u64(data, 1), None, accounts[3:])
        elif tag == _TOKEN_SYNC_NATIVE and len(accounts) == 1:
            if accounts[0] not in self.wsol_atas or self.wrap_lamports == 0:
                raise SwapRejectedError("wrap", f"instruction {index}: SyncNative of {accounts[0]} is not the "
                                        "vault's wrap")
            self.synced.add(accounts[0])
        elif tag == _TOKEN_CLOSE_ACCOUNT and len(accounts) == 3:
            account, destination, owner = accounts
            if account not in self.wsol_atas or destination != self.vault or owner != self.vault:
                raise SwapRejectedError("close-account", f"instruction {index}: CloseAccount of {account} to "
                                        f"{destination} is not the unwrap of the vault's WSOL account")
            if NATIVE_MINT not in (self.intent.input_mint, self.intent.output_mint):
                raise SwapRejectedError("close-account", f"instruction {index}: unwrap in a trade without native SOL")
            self.unwraps = True
        else:
            touches = " on a vault account" if self.vault in accounts or set(accounts) & (
                self.input_atas | self.output_atas | self.wsol_atas) else ""
            raise SwapRejectedError(f"token-{name.lower()}", f"instruction {index}: SPL {name}{touches} is not allowed")

    def _transfer(self, index: int, program: Pubkey, source: Pubkey, destination: Pubkey, authority: Pubkey,
                  amount: int, mint: Pubkey | None, extra: list[Pubkey]) -> None:
        if extra:
            riders = [key for key in extra if key in self.signers]
            if riders:
                raise SwapRejectedError("extra-signer", f"instruction {index}: signer {riders[0]} rides on a "
                                        "transfer as an extra account")
            raise SwapRejectedError("transfer-signers", f"instruction {index}: multisig signer accounts on a transfer")
        vault_sources = self.input_atas | self.output_atas | self.wsol_atas
        if authority == self.vault:
            # the single input leg
            input_accounts = {associated_token_address(self.vault, self.intent.input_mint, program)}
            if source not in input_accounts or (mint is not None and mint != self.intent.input_mint):
                raise SwapRejectedError("wrong-mint", f"instruction {index}: the vault pays from {source}"
                                        f"{f' in mint {mint}' if mint else ''}, not its account of the input mint "
                                        f"{self.intent.input_mint}")
            if amount != self.intent.amount:
                raise SwapRejectedError("wrong-amount", f"instruction {index}: the vault pays {amount}, the trade's "
                                        f"amount is {self.intent.amount}")
            if destination in vault_sources or destination == self.vault:
                raise SwapRejectedError("input-leg", f"instruction {index}: the input leg pays the vault itself")
            self.input_legs += 1
            if self.input_legs > 1:
                raise SwapRejectedError("input-leg", f"instruction {index}: a second transfer signed by the vault")
            return
        if source in vault_sources:
            raise SwapRejectedError("vault-transfer", f"instruction {index}: a transfer out of the vault's account "
                                    f"{source} signed by {authority}")
        if destination not in self.output_atas or (mint is not None and mint != self.intent.output_mint):
            raise SwapRejectedError("foreign-transfer", f"instruction {index}: a transfer signed by {authority} that "
                                    "does not pay the vault's account of the output mint")
        self.inbound_authorities.add(authority)

    # ---- the aggregator's route
    def _route(self, index: int, data: bytes, accounts: list[Pubkey]) -> None:
        self.routes += 1
        if self.routes > 1:
            raise SwapRejectedError("route", f"instruction {index}: a second route instruction")
        intent = self.intent
        if data[:8] == ROUTE_DISCRIMINATOR and len(data) == _GUARD_ROUTE_LEN:
            self._guard_route(index, data, accounts)
            return
        if data[:8] not in (ROUTE_DISCRIMINATOR, SHARED_ACCOUNTS_ROUTE_DISCRIMINATOR) or len(data) < 8 + 4 + _JUPITER_TAIL:
            raise SwapRejectedError("route", f"instruction {index}: not a route/shared_accounts_route instruction")
        in_amount, quoted_out = _u64(data, len(data) - 19), _u64(data, len(data) - 11)
        slippage_bps = struct.unpack_from("<H", data, len(data) - 3)[0]
        platform_fee_bps = data[-1]
        if in_amount != intent.amount:
            raise SwapRejectedError("wrong-amount", f"route in_amount {in_amount} is not the trade's {intent.amount}")
        if quoted_out != intent.quoted_out or slippage_bps != intent.slippage_bps or platform_fee_bps != 0:
            raise SwapRejectedError("route-min-out", f"route quotes {quoted_out} with {slippage_bps} bps and a "
                                    f"{platform_fee_bps} bps platform fee; the quote: {intent.quoted_out}, "
                                    f"{intent.slippage_bps} bps, no fee")
        if quoted_out * (BPS - slippage_bps) // BPS < intent.min_out:
            raise SwapRejectedError("route-min-out", "route minimum out is below the quote's otherAmountThreshold")
        if data[:8] == ROUTE_DISCRIMINATOR:
            roles = {"user_transfer_authority": 1, "user_source_token_account": 2,
                     "user_destination_token_account": 3, "destination_mint": 5}
        else:
            roles = {"user_transfer_authority": 2, "user_source_token_account": 3,
                     "user_destination_token_account": 6, "source_mint": 7, "destination_mint": 8}
        if len(accounts) <= max(roles.values()):
            raise SwapRejectedError("route-accounts", f"instruction {index}: too few route accounts")
        expected = {"user_transfer_authority": {self.vault}, "user_source_token_account": self.input_atas,
                    "user_destination_token_account": self.output_atas, "source_mint": {intent.input_mint},
                    "destination_mint": {intent.output_mint}}
        for role, position in roles.items():
            if accounts[position] not in expected[role]:
                raise SwapRejectedError("route-accounts", f"instruction {index}: route {role} is {accounts[position]}, "
                                        "not the vault's")

    def _guard_route(self, index: int, data: bytes, accounts: list[Pubkey]) -> None:
        """The local chain's slippage guard: no user accounts, amount after the route fee, minimum out."""
        amount_after_fee, min_out = _u64(data, 8), _u64(data, 16)
        if amount_after_fee != self.intent.amount - self.intent.input_fee:
            raise SwapRejectedError("wrong-amount", f"route amount {amount_after_fee} is not the trade's "
                                    f"{self.intent.amount} less the quoted fee {self.intent.input_fee}")
        if min_out != self.intent.min_out:
            raise SwapRejectedError("route-min-out", f"route minimum out {min_out} is not the quote's "
                                    f"otherAmountThreshold {self.intent.min_out}")
        vault_accounts = {self.vault} | self.input_atas | self.output_atas | self.wsol_atas
        if set(accounts) & vault_accounts:
            raise SwapRejectedError("route-accounts", f"instruction {index}: the guard route names a vault account")

    def _finish(self) -> MessageFacts:
        if self.routes != 1:
            raise SwapRejectedError("route", f"{self.routes} route instructions of {self.intent.aggregator}; exactly "
                                    "one is required")
        if self.input_legs > 1:
            raise SwapRejectedError("input-leg", "more than one transfer signed by the vault")
        if self.wrap_lamports and not self.synced:
            raise SwapRejectedError("wrap", "a wrap transfer without SyncNative")
        # every signer but the vault must have a role: the authority of a transfer into the vault
        cosigners = tuple(s for s in self.signers if s != self.vault)
        for signer in cosigners:
            if signer not in self.inbound_authorities:
                raise SwapRejectedError("extra-signer", f"signer {signer} has no role but paying the vault; "
                                        "only pools that pre-signed their inbound leg may co-sign")
        price = self.cu_price or 0
        # without SetComputeUnitLimit the runtime allows 200k per instruction (capped at 1.4M)
        units = self.cu_limit if self.cu_limit is not None else min(1_400_000, 200_000 * len(self.message.instructions))
        priority = -(-units * price // 1_000_000)
        if priority > self.limits.max_priority_fee_lamports:
            raise SwapRejectedError("priority-fee", f"priority fee {priority} lamports > cap "
                                    f"{self.limits.max_priority_fee_lamports}")
        base = self.limits.base_fee_lamports_per_signature * self.n_signers
        budget = base + priority + self.ata_creations * self.limits.token_account_rent_lamports
        header = self.message.header
        writable = tuple(
            key for i, key in enumerate(self.keys)
            if (i < self.n_signers and i < self.n_signers - header.num_readonly_signed_accounts)
            or (i >= self.n_signers and i < len(self.keys) - header.num_readonly_unsigned_accounts))
        return MessageFacts(compute_unit_limit=self.cu_limit, compute_unit_price=price, priority_fee_lamports=priority,
                            signatures=self.n_signers, ata_creations=self.ata_creations,
                            wrap_lamports=self.wrap_lamports, unwraps=self.unwraps, cosigners=cosigners,
                            fee_budget_lamports=budget, writable=writable)


# MessageV1 is in the union because solders types VersionedTransaction.message so; it has the same
# account keys, header and instructions this walk checks.
def check_swap_message(message: Message | MessageV0 | MessageV1, intent: SwapIntent, limits: SwapLimits = SwapLimits()
                       ) -> MessageFacts:
    """Decode every instruction of the swap API's message and refuse anything outside the allowed
    patterns (module docstring). Returns what was found, for the simulation check."""
    keys = list(message.account_keys)
    if not keys or keys[0] != intent.vault:
        raise SwapRejectedError("fee-payer", f"fee payer is {keys[0] if keys else 'missing'}, not the vault")
    if isinstance(message, MessageV0) and list(message.address_table_lookups):
        raise SwapRejectedError("lookup-table", "the message loads accounts from address lookup tables, which this "
                                "check cannot see; refused")
    if not message.instructions:
        raise SwapRejectedError("route", "the transaction has no instructions")
    return _Decoder(message, intent, limits).run()


# ---- 3. the simulation --------------------------------------------------------------------------------

def parse_token_account(state: AccountState | None) -> TokenAccount | None:
    """An SPL Token / Token-2022 account (its first 165 bytes), or None when it is not one."""
    if state is None or state.owner not in _TOKEN_PROGRAMS or len(state.data) < 165:
        return None
    data = state.data
    if data[108] == 0:  # state: Uninitialized
        return None

    def option_key(offset: int) -> Pubkey | None:
        tag = struct.unpack_from("<I", data, offset)[0]
        return Pubkey.from_bytes(data[offset + 4: offset + 36]) if tag else None

    return TokenAccount(mint=Pubkey.from_bytes(data[0:32]), owner=Pubkey.from_bytes(data[32:64]),
                        amount=_u64(data, 64), delegate=option_key(72), close_authority=option_key(129))


def check_simulation(facts: MessageFacts, intent: SwapIntent, simulation: Simulation) -> None:
    """Compare the watched accounts before and after the simulated transaction."""
    vault = intent.vault
    before, after = simulation.before, simulation.after
    vault_before, vault_after = before.get(vault), after.get(vault)
    if vault_before is None or vault_after is None:
        raise SwapRejectedError("simulation-vault", "the vault's own account is missing from the simulation")
    if vault_after.owner != vault_before.owner or vault_after.data != vault_before.data:
        raise SwapRejectedError("vault-owner", f"the vault's account would change owner ({vault_before.owner} -> "
                                f"{vault_after.owner}) or data")
    deltas: dict[Pubkey, int] = {}
    for key in set(before) | set(after):
        if key == vault:
            continue
        old, new = parse_token_account(before.get(key)), parse_token_account(after.get(key))
        was_vaults = old is not None and old.owner == vault
        if new is not None and new.owner == vault and not was_vaults:
            if before.get(key) is not None:  # an existing account handed to the vault: not ours to judge, but odd
                raise SwapRejectedError("authority", f"account {key} would become the vault's")
            old_amount = 0  # created by the transaction (ATA creation)
        elif was_vaults:
            assert old is not None
            if new is None:
                # closed: only the vault's WSOL account, by the unwrap (its lamports go to the vault)
                if not (facts.unwraps and old.mint == NATIVE_MINT and after.get(key) is None):
                    raise SwapRejectedError("close-account", f"the vault's account {key} would be closed or "
                                            "change program")
                deltas[NATIVE_MINT] = deltas.get(NATIVE_MINT, 0) - old.amount
                continue
            if new.owner != vault:
                raise SwapRejectedError("authority", f"the vault's account {key} would change owner to {new.owner}")
            if new.delegate != old.delegate or new.close_authority != old.close_authority:
                raise SwapRejectedError("authority", f"the vault's account {key} would get delegate {new.delegate} / "
                                        f"close authority {new.close_authority}")
            if after.get(key) is not None and before.get(key) is not None and \
                    after[key].owner != before[key].owner:  # type: ignore[union-attr]
                raise SwapRejectedError("authority", f"the vault's account {key} would change program")
            old_amount = old.amount
        else:
            continue
        if not was_vaults and (new.delegate is not None or new.close_authority is not None):
            raise SwapRejectedError("authority", f"the vault's new account {key} would have a delegate or "
                                    "close authority")
        deltas[new.mint] = deltas.get(new.mint, 0) + new.amount - old_amount
    budget = facts.fee_budget_lamports
    lamports_delta = vault_after.lamports - vault_before.lamports
    native = lamports_delta + deltas.pop(NATIVE_MINT, 0)  # SOL and WSOL are one asset
    for mint, delta in deltas.items():
        if mint == intent.input_mint:
            if delta < -intent.amount:
                raise SwapRejectedError("input-spent", f"the vault would lose {-delta} of the input mint, more than "
                                        f"the trade's {intent.amount}")
        elif mint == intent.output_mint:
            continue
        elif delta < 0:
            raise SwapRejectedError("other-mint", f"the vault would lose {-delta} of mint {mint}, not the input")
    if intent.input_mint == NATIVE_MINT:
        if native < -(intent.amount + budget):
            raise SwapRejectedError("sol-spent", f"the vault would lose {-native} lamports, more than the trade's "
                                    f"{intent.amount} plus the fee budget {budget}")
    elif intent.output_mint != NATIVE_MINT and native < -budget:
        raise SwapRejectedError("sol-spent", f"the vault would lose {-native} lamports, more than the fee budget "
                                f"{budget} (base fee, capped priority fee, account rent)")
    received = native + budget if intent.output_mint == NATIVE_MINT else deltas.get(intent.output_mint, 0)
    if received < intent.min_out:
        raise SwapRejectedError("output-short", f"the vault would receive {received} of the output mint, less than "
                                f"the quote's minimum {intent.min_out}")
