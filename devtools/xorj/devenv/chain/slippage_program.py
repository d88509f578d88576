"""The on-chain slippage guard deployed at Jupiter's program id on the local chain.

Stands in for the Jupiter aggregator program (JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4) as far as
its slippage check goes: when the constant-product output at execution time falls below the
quote's ``otherAmountThreshold``, the instruction fails with custom program error 6001 (0x1771,
Jupiter's ``SlippageToleranceExceeded``), so the whole swap transaction fails on chain atomically.

Instruction accounts (exactly two, read-only, not duplicated):
  0. the pool's token account of the input mint (reserve_in)
  1. the pool's token account of the output mint (reserve_out)
Instruction data (little endian):
  [0..8)   discriminator ``ROUTE_DISCRIMINATOR`` (not checked on chain)
  [8..16)  amount_in after the pool fee (u64)
  [16..24) minimum output, the quote's otherAmountThreshold (u64)

The program fails with 6001 unless ``floor(reserve_out * a / (reserve_in + a)) >= min_out``, computed
exactly as ``reserve_out * a >= min_out * (reserve_in + a)`` with 128-bit products built from 32-bit
halves (sBPF v0 has no 64x64->128 multiply). Malformed input (not exactly two accounts, a duplicated account,
account data that is not a 165-byte token account, short instruction data, reserve_in + a
overflowing u64) fails with custom error 6099.

The input region layout read here is the runtime's aligned serialization (loader v2/v3):
  u64 n_accounts, then per account: u8 dup(0xff), u8 signer, u8 writable, u8 exec, u32 pad,
  32 key, 32 owner, u64 lamports, u64 data_len, data, 10240 realloc padding, align 8, u64 rent_epoch;
  then u64 instruction_data_len, instruction data, 32 program id.
"""

# One line per short instruction group reads like assembly listings do.
# ruff: noqa: E702

from __future__ import annotations

import hashlib

from solders.pubkey import Pubkey

from xorj.devenv.chain import sbpf
from xorj.devenv.chain.sbpf import (
    ADD64_IMM,
    ADD64_REG,
    AND64_IMM,
    EXIT,
    JGE_REG,
    JGT_REG,
    JLT_IMM,
    JLT_REG,
    JNE_IMM,
    LDXB,
    LDXDW,
    LSH64_IMM,
    MOV64_IMM,
    MOV64_REG,
    MUL64_REG,
    RSH64_IMM,
    STXDW,
    Assembler,
)

JUPITER_PROGRAM_ID = Pubkey.from_string("JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4")
SLIPPAGE_TOLERANCE_EXCEEDED = 6001
BAD_INPUT = 6099
# Anchor discriminator of Jupiter's "route" instruction (sha256("global:route")[:8])
ROUTE_DISCRIMINATOR = hashlib.sha256(b"global:route").digest()[:8]

TOKEN_ACCOUNT_LEN = 165
_ACCOUNT_HEADER = 8 + 32 + 32 + 8  # dup/flags/pad, key, owner, lamports -> data_len at +80
_DATA_OFFSET = _ACCOUNT_HEADER + 8  # account data starts 88 bytes into the account record
_AMOUNT_OFFSET = _DATA_OFFSET + 64  # SPL token account: mint(32) owner(32) amount(u64)
_REALLOC_PADDING = 10 * 1024
_U64 = (1 << 64) - 1


def passes(reserve_in: int, reserve_out: int, amount_in_after_fee: int, min_out: int) -> bool:
    """Reference model of the on-chain check (used by the market to quote and by tests)."""
    if reserve_in + amount_in_after_fee > _U64:
        return False
    return reserve_out * amount_in_after_fee >= min_out * (reserve_in + amount_in_after_fee)


def instruction_data(amount_in_after_fee: int, min_out: int) -> bytes:
    for name, value in (("amount_in_after_fee", amount_in_after_fee), ("min_out", min_out)):
        if not 0 <= value <= _U64:
            raise ValueError(f"{name} must fit in a u64, got {value}")
    return ROUTE_DISCRIMINATOR + amount_in_after_fee.to_bytes(8, "little") + min_out.to_bytes(8, "little")


def _mul128(a: Assembler) -> None:
    """r1 * r2 -> hi in r1, lo in r5 (clobbers r2, r3, r4, r6, r7)."""
    a.emit(MOV64_REG, 3, 1); a.emit(LSH64_IMM, 3, imm=32); a.emit(RSH64_IMM, 3, imm=32)  # a0
    a.emit(RSH64_IMM, 1, imm=32)  # a1
    a.emit(MOV64_REG, 4, 2); a.emit(LSH64_IMM, 4, imm=32); a.emit(RSH64_IMM, 4, imm=32)  # b0
    a.emit(RSH64_IMM, 2, imm=32)  # b1
    a.emit(MOV64_REG, 5, 3); a.emit(MUL64_REG, 5, 4)  # p00 = a0*b0
    a.emit(MUL64_REG, 3, 2)  # p01 = a0*b1
    a.emit(MUL64_REG, 4, 1)  # p10 = a1*b0
    a.emit(MUL64_REG, 1, 2)  # p11 = a1*b1
    # mid = (p00 >> 32) + lo32(p01) + lo32(p10): below 3 * 2^32, no overflow
    a.emit(MOV64_REG, 6, 5); a.emit(RSH64_IMM, 6, imm=32)
    a.emit(MOV64_REG, 7, 3); a.emit(LSH64_IMM, 7, imm=32); a.emit(RSH64_IMM, 7, imm=32)
    a.emit(ADD64_REG, 6, 7)
    a.emit(MOV64_REG, 7, 4); a.emit(LSH64_IMM, 7, imm=32); a.emit(RSH64_IMM, 7, imm=32)
    a.emit(ADD64_REG, 6, 7)
    # lo = lo32(p00) + (mid << 32)
    a.emit(LSH64_IMM, 5, imm=32); a.emit(RSH64_IMM, 5, imm=32)
    a.emit(MOV64_REG, 7, 6); a.emit(LSH64_IMM, 7, imm=32); a.emit(ADD64_REG, 5, 7)
    # hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32)
    a.emit(RSH64_IMM, 3, imm=32); a.emit(ADD64_REG, 1, 3)
    a.emit(RSH64_IMM, 4, imm=32); a.emit(ADD64_REG, 1, 4)
    a.emit(RSH64_IMM, 6, imm=32); a.emit(ADD64_REG, 1, 6)


def _skip_account(a: Assembler, reg: int, len_reg: int) -> None:
    """reg: start of an account record with data length in len_reg -> start of what follows it."""
    a.emit(ADD64_REG, reg, len_reg)
    a.emit(ADD64_IMM, reg, imm=_DATA_OFFSET + _REALLOC_PADDING + 7)
    a.emit(AND64_IMM, reg, imm=-8)  # align up to 8 (the input region itself is 8-aligned)
    a.emit(ADD64_IMM, reg, imm=8)  # rent_epoch


def program_text() -> bytes:
    a = Assembler()
    # r1 = input region. Two accounts at least.
    a.emit(LDXDW, 2, 1, 0)
    a.emit(JNE_IMM, 2, off="bad", imm=2)  # exactly the two pool accounts
    a.emit(MOV64_REG, 8, 1); a.emit(ADD64_IMM, 8, imm=8)  # r8 = account 0
    a.emit(LDXB, 2, 8, 0); a.emit(JNE_IMM, 2, off="bad", imm=0xFF)
    a.emit(LDXDW, 2, 8, _ACCOUNT_HEADER)  # data_len 0
    a.emit(JNE_IMM, 2, off="bad", imm=TOKEN_ACCOUNT_LEN)
    a.emit(LDXDW, 3, 8, _AMOUNT_OFFSET)  # reserve_in
    _skip_account(a, 8, 2)  # r8 = account 1
    a.emit(LDXB, 2, 8, 0); a.emit(JNE_IMM, 2, off="bad", imm=0xFF)
    a.emit(LDXDW, 2, 8, _ACCOUNT_HEADER)  # data_len 1
    a.emit(JNE_IMM, 2, off="bad", imm=TOKEN_ACCOUNT_LEN)
    a.emit(LDXDW, 6, 8, _AMOUNT_OFFSET)  # reserve_out
    _skip_account(a, 8, 2)  # r8 = instruction data length
    a.emit(LDXDW, 2, 8, 0); a.emit(JLT_IMM, 2, off="bad", imm=24)
    a.emit(LDXDW, 4, 8, 8 + 8)  # amount_in_after_fee
    a.emit(LDXDW, 9, 8, 8 + 16)  # min_out
    # s = reserve_in + a, rejecting overflow
    a.emit(MOV64_REG, 7, 3); a.emit(ADD64_REG, 7, 4)
    a.emit(JLT_REG, 7, 3, off="bad")
    a.emit(STXDW, 10, 7, -8)  # s
    a.emit(STXDW, 10, 9, -16)  # min_out
    # x = reserve_out * a
    a.emit(MOV64_REG, 1, 6); a.emit(MOV64_REG, 2, 4)
    _mul128(a)
    a.emit(STXDW, 10, 1, -24)  # x.hi
    a.emit(STXDW, 10, 5, -32)  # x.lo
    # y = min_out * s
    a.emit(LDXDW, 1, 10, -16); a.emit(LDXDW, 2, 10, -8)
    _mul128(a)
    a.emit(LDXDW, 8, 10, -24); a.emit(LDXDW, 9, 10, -32)
    a.emit(JGT_REG, 8, 1, off="ok")
    a.emit(JLT_REG, 8, 1, off="slippage")
    a.emit(JGE_REG, 9, 5, off="ok")
    a.label("slippage")
    a.emit(MOV64_IMM, 0, imm=SLIPPAGE_TOLERANCE_EXCEEDED)
    a.emit(EXIT)
    a.label("bad")
    a.emit(MOV64_IMM, 0, imm=BAD_INPUT)
    a.emit(EXIT)
    a.label("ok")
    a.emit(MOV64_IMM, 0, imm=0)
    a.emit(EXIT)
    return a.assemble()


def program_elf() -> bytes:
    return sbpf.build_elf(program_text())
