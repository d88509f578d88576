"""What a vault holds, read from the chain: native lamports and the balances of its associated token
accounts of given mints, with each mint's decimals from the mint account itself (never from a price
or swap API). An account that exists but is not what its address says it is (wrong owner program,
wrong mint or owner inside, too short) fails the read with MALFORMED_RESPONSE.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from xorj.chain.account_batch import MAX_ACCOUNTS_PER_CALL, AccountSource
from xorj.chain.errors import MalformedAnswerError
from xorj.chain.rpc import AccountInfo, SolanaRpc

TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM_ID = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID})
NATIVE_SOL_MINT = "So11111111111111111111111111111111111111112"  # the mint price APIs quote SOL under

_MINT_SIZE = 82
_MINT_DECIMALS_OFFSET = 44
_MINT_INITIALIZED_OFFSET = 45
_TOKEN_ACCOUNT_SIZE = 165


@dataclass(frozen=True, slots=True)
class MintInfo:
    """An SPL mint: its address, decimals and owning token program (read from chain by
    :func:`read_mint`; the local chain's market seeds its own under a ``symbol``)."""

    mint: str
    decimals: int
    token_program: str
    symbol: str | None = None  # a display name where one is known (the local market's "USDC", ...)

    @property
    def address(self) -> Pubkey:
        return Pubkey.from_string(self.mint)


@dataclass(frozen=True, slots=True)
class VaultHoldings:
    lamports: int
    balances: dict[str, int]  # mint -> base units in the vault's associated token account (0: none)


async def read_mint(rpc: SolanaRpc, mint: str) -> MintInfo:
    account = await rpc.account(Pubkey.from_string(mint))
    if account is None:
        raise MalformedAnswerError(f"mint {mint} does not exist on chain", method="getAccountInfo")
    if account.owner not in TOKEN_PROGRAMS or len(account.data) < _MINT_SIZE \
            or account.data[_MINT_INITIALIZED_OFFSET] != 1:
        raise MalformedAnswerError(f"account {mint} is not an initialised SPL mint (owner {account.owner})",
                                   method="getAccountInfo")
    return MintInfo(mint, account.data[_MINT_DECIMALS_OFFSET], account.owner)


async def read_mints(rpc: SolanaRpc, mints: Iterable[str]) -> dict[str, MintInfo]:
    unique = sorted(set(mints))
    infos = await asyncio.gather(*(read_mint(rpc, m) for m in unique))
    return {info.mint: info for info in infos}


def _token_amount(address: Pubkey, account: AccountInfo | None, vault: Pubkey, mint: MintInfo) -> int:
    if account is None:
        return 0
    data = account.data
    if str(account.owner) != mint.token_program or len(data) < _TOKEN_ACCOUNT_SIZE \
            or data[0:32] != bytes(Pubkey.from_string(mint.mint)) or data[32:64] != bytes(vault):
        raise MalformedAnswerError(f"{address} is not the vault's token account of {mint.mint}",
                                   method="getMultipleAccounts")
    amount: int = struct.unpack_from("<Q", data, 64)[0]  # unpack_from is typed tuple[Any, ...]
    return amount


async def read_balances(rpc: AccountSource, vaults: Sequence[str], mints: Sequence[str], *,
                        commitment: str = "confirmed") -> dict[str, dict[str, int]]:
    """Each vault's balance of each of ``mints`` (SPL Token program mints; the native SOL mint is the
    vault account's lamports), batched: the vault accounts and their associated token accounts go
    in getMultipleAccounts calls of up to :data:`MAX_ACCOUNTS_PER_CALL` accounts, run together, so
    1,000 vaults and one mint are 10 calls, not 1,000. The answer is checked as :func:`read_vault`'s:
    a token account that is not the vault's of that mint fails the whole read with
    MALFORMED_RESPONSE (so no vault is sized from a lie)."""
    wanted: list[tuple[str, str, Pubkey]] = []  # (vault, mint or "", address); "" is the vault account
    for vault in vaults:
        owner = Pubkey.from_string(vault)
        if NATIVE_SOL_MINT in mints:
            wanted.append((vault, "", owner))
        wanted += [(vault, m, get_associated_token_address(owner, Pubkey.from_string(m)))
                   for m in mints if m != NATIVE_SOL_MINT]
    chunks = [wanted[i:i + MAX_ACCOUNTS_PER_CALL] for i in range(0, len(wanted), MAX_ACCOUNTS_PER_CALL)]
    answers = await asyncio.gather(*(rpc.accounts([address for _, _, address in chunk], commitment)
                                     for chunk in chunks))
    balances: dict[str, dict[str, int]] = {vault: {} for vault in vaults}
    for chunk, accounts in zip(chunks, answers, strict=True):
        if len(accounts) != len(chunk):
            raise MalformedAnswerError(f"getMultipleAccounts: {len(accounts)} accounts for {len(chunk)} keys",
                                       method="getMultipleAccounts")
        for (vault, mint, address), account in zip(chunk, accounts, strict=True):
            if not mint:
                balances[vault][NATIVE_SOL_MINT] = 0 if account is None else account.lamports
            else:
                balances[vault][mint] = _token_amount(address, account, Pubkey.from_string(vault),
                                                      MintInfo(mint, 0, TOKEN_PROGRAM_ID))
    return balances


async def read_vault(rpc: AccountSource, vault: str, mints: Iterable[MintInfo]) -> VaultHoldings:
    """The vault's lamports and token balances from ONE getMultipleAccounts (the vault account and
    its associated token account of each mint), so all of them are as of the same slot."""
    owner = Pubkey.from_string(vault)
    mint_list = list(mints)
    addresses = [get_associated_token_address(owner, Pubkey.from_string(m.mint), Pubkey.from_string(m.token_program))
                 for m in mint_list]
    vault_account, *token_accounts = await rpc.accounts([owner, *addresses], "confirmed")
    lamports = 0 if vault_account is None else vault_account.lamports  # getBalance's answer for a missing account
    return VaultHoldings(lamports, {m.mint: _token_amount(address, account, owner, m)
                                    for m, address, account in zip(mint_list, addresses, token_accounts)})


__all__ = [
    "MAX_ACCOUNTS_PER_CALL",
    "NATIVE_SOL_MINT",
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_PROGRAMS",
    "TOKEN_PROGRAM_ID",
    "MintInfo",
    "VaultHoldings",
    "read_balances",
    "read_mint",
    "read_mints",
    "read_vault",
]
