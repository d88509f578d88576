"""The hand-assembled sBPF slippage guard, executed by LiteSVM's real SBF loader and VM."""

from __future__ import annotations

import random
import struct

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from spl.token.constants import TOKEN_PROGRAM_ID

from xorj.devenv.chain import sbpf
from xorj.devenv.chain.slippage_program import (
    BAD_INPUT,
    JUPITER_PROGRAM_ID,
    SLIPPAGE_TOLERANCE_EXCEEDED,
    instruction_data,
    passes,
    program_elf,
)

pytestmark = pytest.mark.chain
U64 = (1 << 64) - 1


class Harness:
    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.svm.add_program(JUPITER_PROGRAM_ID, program_elf())
        self.payer = Keypair()
        self.svm.airdrop(self.payer.pubkey(), 10**12)
        self.reserve_in = Keypair().pubkey()
        self.reserve_out = Keypair().pubkey()

    def token_account(self, address: Pubkey, amount: int, size: int = 165) -> None:
        data = bytes(32) + bytes(32) + struct.pack("<Q", amount) + bytes(size - 72)
        self.svm.set_account(address, Account(10**7, data, TOKEN_PROGRAM_ID, False))

    def run(self, accounts: list[Pubkey], data: bytes) -> int | None:
        """Returns None on success, else the custom error code."""
        ix = Instruction(JUPITER_PROGRAM_ID, data, [AccountMeta(a, False, False) for a in accounts])
        self.svm.expire_blockhash()  # a fresh blockhash per run: identical transactions would be deduplicated
        message = MessageV0.try_compile(self.payer.pubkey(), [ix], [], self.svm.latest_blockhash())
        result = self.svm.send_transaction(VersionedTransaction(message, [self.payer]))
        if not isinstance(result, FailedTransactionMetadata):
            return None
        text = str(result.err())
        assert "InstructionErrorCustom" in text, text
        return int(text.split("InstructionErrorCustom(")[1].split(")")[0])

    def check(self, reserve_in: int, reserve_out: int, amount: int, min_out: int) -> int | None:
        self.token_account(self.reserve_in, reserve_in)
        self.token_account(self.reserve_out, reserve_out)
        return self.run([self.reserve_in, self.reserve_out], instruction_data(amount, min_out))


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness()


def test_boundary_is_exact(harness: Harness) -> None:
    # 1000 * 10 / (1000 + 10) = 9.90...: a bound of 9 passes, 10 fails
    assert harness.check(1000, 1000, 10, 9) is None
    assert harness.check(1000, 1000, 10, 10) == SLIPPAGE_TOLERANCE_EXCEEDED


def test_matches_reference_model_on_random_64_bit_inputs(harness: Harness) -> None:
    rng = random.Random(20261128)
    for _ in range(200):
        reserve_in = rng.randrange(1, 1 << rng.choice([8, 32, 40, 63, 64]))
        reserve_out = rng.randrange(0, 1 << rng.choice([8, 32, 40, 63, 64]))
        amount = rng.randrange(0, 1 << rng.choice([8, 32, 63, 64]))
        exact = reserve_out * amount // (reserve_in + amount)
        min_out = max(0, min(U64, exact + rng.choice([-1, 0, 0, 1])))
        got = harness.check(reserve_in, reserve_out, amount, min_out)
        if reserve_in + amount > U64:
            expected = BAD_INPUT
        else:
            expected = None if passes(reserve_in, reserve_out, amount, min_out) else SLIPPAGE_TOLERANCE_EXCEEDED
        assert got == expected, (reserve_in, reserve_out, amount, min_out)


def test_rejects_malformed_input(harness: Harness) -> None:
    harness.token_account(harness.reserve_in, 10**9)
    harness.token_account(harness.reserve_out, 10**9)
    good = instruction_data(10, 1)
    assert harness.run([harness.reserve_in, harness.reserve_out], good) is None
    assert harness.run([harness.reserve_in], good) == BAD_INPUT  # one account
    assert harness.run([harness.reserve_in, harness.reserve_out, harness.payer.pubkey()], good) == BAD_INPUT
    assert harness.run([harness.reserve_in, harness.reserve_out], good[:20]) == BAD_INPUT  # short data
    odd = Keypair().pubkey()
    harness.token_account(odd, 10**9, size=100)  # not a token account's size
    assert harness.run([harness.reserve_in, odd], good) == BAD_INPUT


def test_elf_is_minimal_and_well_formed() -> None:
    elf = program_elf()
    assert elf[:4] == b"\x7fELF"
    e_type, e_machine = struct.unpack_from("<HH", elf, 16)
    assert (e_type, e_machine) == (3, 247)
    assert struct.unpack_from("<I", elf, 48)[0] == 0  # e_flags: SBPF v0
    with pytest.raises(ValueError):
        sbpf.build_elf(b"\x95" * 7)  # not whole instructions
