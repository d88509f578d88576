"""The swap-transaction checks on crafted transactions: the honest local-market shape and a Jupiter v6
route pass; every way of reaching the vault's funds or authority beyond the trade is refused, with the
rule that refused it; the simulation check judges the vault's accounts before and after."""

from __future__ import annotations

import struct

import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import AllocateParams, AssignParams, TransferParams, allocate, assign, transfer
from spl.token.instructions import (
    AuthorityType,
    approve,
    close_account,
    create_idempotent_associated_token_account,
    set_authority,
    sync_native,
    transfer_checked,
)
from spl.token.models import (
    ApproveParams,
    CloseAccountParams,
    SetAuthorityParams,
    SyncNativeParams,
    TransferCheckedParams,
)

from xorj.chain.classify import JUPITER_PROGRAM_ID, MEMO_PROGRAM_ID, TOKEN_PROGRAM_ID
from xorj.chain.errors import SwapRejectedError
from xorj.chain.swap_check import (
    NATIVE_MINT,
    ROUTE_DISCRIMINATOR,
    AccountState,
    Simulation,
    SwapIntent,
    SwapLimits,
    associated_token_address,
    check_simulation,
    check_swap_message,
)
from xorj.domain.trades import ReasonCode

TOKEN = Pubkey.from_string(TOKEN_PROGRAM_ID)
JUPITER = Pubkey.from_string(JUPITER_PROGRAM_ID)
SYSTEM = Pubkey.from_string("11111111111111111111111111111111")
VAULT = Keypair().pubkey()
POOL = Keypair().pubkey()
ATTACKER = Keypair().pubkey()
USDC = Keypair().pubkey()
SOL_TOKEN = Keypair().pubkey()
AMOUNT, FEE, QUOTED_OUT, MIN_OUT = 2_000_000, 5_000, 19_900_000, 19_800_000
VAULT_IN = associated_token_address(VAULT, USDC)
VAULT_OUT = associated_token_address(VAULT, SOL_TOKEN)
RESERVE_IN = associated_token_address(POOL, USDC)
RESERVE_OUT = associated_token_address(POOL, SOL_TOKEN)
INTENT = SwapIntent(vault=VAULT, input_mint=USDC, output_mint=SOL_TOKEN, amount=AMOUNT, quoted_out=QUOTED_OUT,
                    min_out=MIN_OUT, slippage_bps=50, input_fee=FEE)


def _guard_route(amount_after_fee: int = AMOUNT - FEE, min_out: int = MIN_OUT) -> Instruction:
    data = ROUTE_DISCRIMINATOR + amount_after_fee.to_bytes(8, "little") + min_out.to_bytes(8, "little")
    return Instruction(JUPITER, data, [AccountMeta(RESERVE_IN, False, False), AccountMeta(RESERVE_OUT, False, False)])


def _leg(source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    return transfer_checked(TransferCheckedParams(program_id=TOKEN, source=source, mint=mint, dest=dest, owner=owner,
                                                  amount=amount, decimals=6))


def _honest(*, before: list[Instruction] = (), after: list[Instruction] = (), input_leg: Instruction | None = None,
            pool_leg: Instruction | None = None) -> list[Instruction]:
    return [*before,
            create_idempotent_associated_token_account(VAULT, VAULT, SOL_TOKEN),
            _guard_route(),
            input_leg or _leg(VAULT_IN, USDC, RESERVE_IN, VAULT, AMOUNT),
            pool_leg or _leg(RESERVE_OUT, SOL_TOKEN, VAULT_OUT, POOL, QUOTED_OUT),
            *after]


def _message(instructions: list[Instruction], payer: Pubkey = VAULT) -> MessageV0:
    return MessageV0.try_compile(payer, instructions, [], Hash.new_unique())


def _refused(instructions: list[Instruction], rule: str, intent: SwapIntent = INTENT,
             limits: SwapLimits = SwapLimits()) -> SwapRejectedError:
    with pytest.raises(SwapRejectedError) as caught:
        check_swap_message(_message(instructions), intent, limits)
    assert caught.value.rule == rule, str(caught.value)
    assert caught.value.reason is ReasonCode.SWAP_REJECTED
    return caught.value


def test_the_local_markets_honest_swap_passes():
    facts = check_swap_message(_message(_honest()), INTENT)
    assert facts.cosigners == (POOL,)
    assert facts.ata_creations == 1 and facts.priority_fee_lamports == 0
    assert facts.fee_budget_lamports == 2 * 5_000 + 2_039_280
    assert VAULT in facts.writable and VAULT_IN in facts.writable and VAULT_OUT in facts.writable


def test_a_capped_compute_budget_passes_and_its_fee_counts_in_the_budget():
    facts = check_swap_message(_message(_honest(before=[set_compute_unit_limit(300_000),
                                                        set_compute_unit_price(10_000)])), INTENT)
    assert facts.priority_fee_lamports == 3_000  # 300k units x 10k micro-lamports
    assert facts.fee_budget_lamports == 2 * 5_000 + 3_000 + 2_039_280


@pytest.mark.parametrize("name, instructions, rule", [
    ("drain", _honest(before=[transfer(TransferParams(from_pubkey=VAULT, to_pubkey=ATTACKER, lamports=10**9))]),
     "vault-transfer"),
    ("approve", _honest(before=[approve(ApproveParams(program_id=TOKEN, source=VAULT_IN, delegate=ATTACKER,
                                                      owner=VAULT, amount=2**64 - 1))]), "token-approve"),
    ("authority", _honest(before=[set_authority(SetAuthorityParams(
        program_id=TOKEN, account=VAULT_IN, authority=AuthorityType.ACCOUNT_OWNER, current_authority=VAULT,
        new_authority=ATTACKER))]), "token-setauthority"),
    ("assign", _honest(before=[assign(AssignParams(pubkey=VAULT, owner=ATTACKER))]), "system"),
    ("allocate", _honest(before=[allocate(AllocateParams(pubkey=VAULT, space=10))]), "system"),
    ("close-other-account", _honest(after=[close_account(CloseAccountParams(
        program_id=TOKEN, account=VAULT_IN, dest=ATTACKER, owner=VAULT))]), "close-account"),
    ("wrong-mint", _honest(input_leg=_leg(VAULT_OUT, SOL_TOKEN, RESERVE_IN, VAULT, AMOUNT)), "wrong-mint"),
    ("wrong-amount", _honest(input_leg=_leg(VAULT_IN, USDC, RESERVE_IN, VAULT, 2 * AMOUNT)), "wrong-amount"),
    ("second-input-leg", _honest(after=[_leg(VAULT_IN, USDC, ATTACKER, VAULT, AMOUNT)]), "input-leg"),
    ("excess-unit-price", _honest(before=[set_compute_unit_limit(1_400_000), set_compute_unit_price(10**9)]),
     "priority-fee"),
    ("excess-units", _honest(before=[set_compute_unit_limit(1_400_001)]), "compute-unit-limit"),
    ("memo", _honest(after=[Instruction(Pubkey.from_string(MEMO_PROGRAM_ID), b"hi", [])]), "program"),
    ("unknown-program", _honest(after=[Instruction(ATTACKER, b"", [AccountMeta(VAULT, True, True)])]), "program"),
    ("no-route", [_leg(VAULT_IN, USDC, RESERVE_IN, VAULT, AMOUNT)], "route"),
    ("two-routes", _honest(after=[_guard_route()]), "route"),
    ("route-min-out", [create_idempotent_associated_token_account(VAULT, VAULT, SOL_TOKEN), _guard_route(min_out=1),
                       _leg(VAULT_IN, USDC, RESERVE_IN, VAULT, AMOUNT)], "route-min-out"),
    ("route-amount", [_guard_route(amount_after_fee=AMOUNT), _leg(VAULT_IN, USDC, RESERVE_IN, VAULT, AMOUNT)],
     "wrong-amount"),
    ("ata-for-attacker", _honest(before=[create_idempotent_associated_token_account(VAULT, ATTACKER, SOL_TOKEN)]),
     "ata"),
    ("pool-pays-elsewhere", _honest(pool_leg=_leg(RESERVE_OUT, SOL_TOKEN, ATTACKER, POOL, QUOTED_OUT)),
     "foreign-transfer"),
    ("pool-takes-from-vault", _honest(after=[_leg(VAULT_IN, USDC, ATTACKER, POOL, 1)]), "vault-transfer"),
])
def test_hostile_instructions_are_refused_with_their_rule(name, instructions, rule):
    _refused(instructions, rule)


def test_an_extra_signer_is_refused_whether_riding_on_a_leg_or_standalone():
    rider = Keypair().pubkey()
    pool_leg = _leg(RESERVE_OUT, SOL_TOKEN, VAULT_OUT, POOL, QUOTED_OUT)
    riding = Instruction(pool_leg.program_id, pool_leg.data, [*pool_leg.accounts, AccountMeta(rider, True, False)])
    _refused(_honest(pool_leg=riding), "extra-signer")
    # a signer whose only role is an (allowed) inbound transfer of nothing to... another account: no role
    _refused(_honest(after=[_leg(associated_token_address(rider, SOL_TOKEN), SOL_TOKEN, ATTACKER, rider, 1)]),
             "foreign-transfer")


def test_the_fee_payer_must_be_the_vault_and_lookup_tables_are_refused():
    with pytest.raises(SwapRejectedError, match="fee-payer"):
        check_swap_message(_message(_honest(), payer=POOL), INTENT)
    honest = _message(_honest())
    from solders.message import MessageAddressTableLookup
    hidden = MessageV0(honest.header, list(honest.account_keys), honest.recent_blockhash, list(honest.instructions),
                       [MessageAddressTableLookup(Keypair().pubkey(), bytes([0]), b"")])
    with pytest.raises(SwapRejectedError, match="lookup-table"):
        check_swap_message(hidden, INTENT)


def test_native_sol_wrap_and_unwrap_pattern():
    wsol = associated_token_address(VAULT, NATIVE_MINT)
    intent = SwapIntent(vault=VAULT, input_mint=NATIVE_MINT, output_mint=SOL_TOKEN, amount=AMOUNT,
                        quoted_out=QUOTED_OUT, min_out=MIN_OUT, slippage_bps=50, input_fee=FEE)
    wrap = [create_idempotent_associated_token_account(VAULT, VAULT, NATIVE_MINT),
            transfer(TransferParams(from_pubkey=VAULT, to_pubkey=wsol, lamports=AMOUNT)),
            sync_native(SyncNativeParams(program_id=TOKEN, account=wsol))]
    unwrap = [close_account(CloseAccountParams(program_id=TOKEN, account=wsol, dest=VAULT, owner=VAULT))]
    swap = [create_idempotent_associated_token_account(VAULT, VAULT, SOL_TOKEN), _guard_route(),
            _leg(wsol, NATIVE_MINT, RESERVE_IN, VAULT, AMOUNT), _leg(RESERVE_OUT, SOL_TOKEN, VAULT_OUT, POOL, QUOTED_OUT)]
    facts = check_swap_message(_message(wrap + swap + unwrap), intent)
    assert facts.wrap_lamports == AMOUNT and facts.unwraps and facts.ata_creations == 2
    over = [wrap[0], transfer(TransferParams(from_pubkey=VAULT, to_pubkey=wsol, lamports=AMOUNT + 1)), wrap[2]]
    _refused(over + swap, "wrap-amount", intent)
    no_sync = wrap[:2]
    _refused(no_sync + swap, "wrap", intent)
    elsewhere = [close_account(CloseAccountParams(program_id=TOKEN, account=wsol, dest=ATTACKER, owner=VAULT))]
    _refused(wrap + swap + elsewhere, "close-account", intent)
    # a wrap in a trade whose input is not native SOL is a plain transfer of the vault's lamports
    _refused(wrap + _honest(), "vault-transfer")


def _jupiter_route(in_amount: int = AMOUNT, quoted_out: int = QUOTED_OUT, slippage_bps: int = 50,
                   platform_fee_bps: int = 0, authority: Pubkey = VAULT, destination: Pubkey = VAULT_OUT) -> Instruction:
    route_plan = struct.pack("<I", 1) + bytes([7]) + bytes([100, 0, 1])  # one step; the step's bytes are opaque here
    data = ROUTE_DISCRIMINATOR + route_plan + struct.pack("<QQHB", in_amount, quoted_out, slippage_bps,
                                                          platform_fee_bps)
    accounts = [TOKEN, authority, VAULT_IN, destination, JUPITER, SOL_TOKEN, JUPITER, Keypair().pubkey(), JUPITER]
    metas = [AccountMeta(a, a == authority and i == 1, i in (2, 3)) for i, a in enumerate(accounts)]
    return Instruction(JUPITER, data, metas)


def test_a_jupiter_v6_route_is_decoded_from_its_tail_and_its_user_accounts_checked():
    budget = [set_compute_unit_limit(400_000), set_compute_unit_price(1_000)]
    ata = create_idempotent_associated_token_account(VAULT, VAULT, SOL_TOKEN)
    intent = SwapIntent(vault=VAULT, input_mint=USDC, output_mint=SOL_TOKEN, amount=AMOUNT, quoted_out=QUOTED_OUT,
                        min_out=QUOTED_OUT * 9950 // 10_000, slippage_bps=50)
    facts = check_swap_message(_message([*budget, ata, _jupiter_route()]), intent)
    assert facts.cosigners == () and facts.priority_fee_lamports == 400
    _refused([ata, _jupiter_route(in_amount=AMOUNT + 1)], "wrong-amount", intent)
    _refused([ata, _jupiter_route(slippage_bps=5_000)], "route-min-out", intent)
    _refused([ata, _jupiter_route(platform_fee_bps=100)], "route-min-out", intent)
    _refused([ata, _jupiter_route(destination=associated_token_address(ATTACKER, SOL_TOKEN))], "route-accounts", intent)


# ---- the simulation ---------------------------------------------------------------------------------

def _token(mint: Pubkey, owner: Pubkey, amount: int, delegate: Pubkey | None = None,
           close_authority: Pubkey | None = None) -> AccountState:
    data = (bytes(mint) + bytes(owner) + struct.pack("<Q", amount)
            + (struct.pack("<I", 1) + bytes(delegate) if delegate else struct.pack("<I", 0) + bytes(32))
            + bytes([1]) + struct.pack("<I", 0) + struct.pack("<Q", 0) + struct.pack("<Q", 0)
            + (struct.pack("<I", 1) + bytes(close_authority) if close_authority else struct.pack("<I", 0) + bytes(32)))
    assert len(data) == 165
    return AccountState(2_039_280, TOKEN, data)


FACTS = check_swap_message(_message(_honest()), INTENT)
BEFORE = {VAULT: AccountState(10**10, SYSTEM), VAULT_IN: _token(USDC, VAULT, 50_000_000),
          VAULT_OUT: _token(SOL_TOKEN, VAULT, 0), RESERVE_IN: _token(USDC, POOL, 10**12)}
HONEST_AFTER = {VAULT: AccountState(10**10 - 10_000, SYSTEM), VAULT_IN: _token(USDC, VAULT, 50_000_000 - AMOUNT),
                VAULT_OUT: _token(SOL_TOKEN, VAULT, QUOTED_OUT), RESERVE_IN: _token(USDC, POOL, 10**12 + AMOUNT)}


def _judge(after_changes: dict) -> None:
    check_simulation(FACTS, INTENT, Simulation(before=BEFORE, after={**HONEST_AFTER, **after_changes}))


def test_the_honest_simulation_passes():
    _judge({})


@pytest.mark.parametrize("name, changes, rule", [
    ("input-overspent", {VAULT_IN: _token(USDC, VAULT, 50_000_000 - AMOUNT - 1)}, "input-spent"),
    ("output-short", {VAULT_OUT: _token(SOL_TOKEN, VAULT, MIN_OUT - 1)}, "output-short"),
    ("lamports-drained", {VAULT: AccountState(10**10 - 10**9, SYSTEM)}, "sol-spent"),
    ("vault-assigned", {VAULT: AccountState(10**10 - 10_000, ATTACKER)}, "vault-owner"),
    ("delegate-set", {VAULT_IN: _token(USDC, VAULT, 50_000_000 - AMOUNT, delegate=ATTACKER)}, "authority"),
    ("owner-changed", {VAULT_IN: _token(USDC, ATTACKER, 50_000_000 - AMOUNT)}, "authority"),
    ("close-authority-set", {VAULT_OUT: _token(SOL_TOKEN, VAULT, QUOTED_OUT, close_authority=ATTACKER)}, "authority"),
    ("account-closed", {VAULT_IN: None}, "close-account"),
])
def test_simulated_effects_beyond_the_trade_are_refused(name, changes, rule):
    with pytest.raises(SwapRejectedError) as caught:
        _judge(changes)
    assert caught.value.rule == rule, str(caught.value)


def test_another_vault_token_account_may_not_fall():
    other_mint = Keypair().pubkey()
    other = associated_token_address(VAULT, other_mint)
    before = {**BEFORE, other: _token(other_mint, VAULT, 100)}
    after = {**HONEST_AFTER, other: _token(other_mint, VAULT, 0)}
    with pytest.raises(SwapRejectedError, match="other-mint"):
        check_simulation(FACTS, INTENT, Simulation(before=before, after=after))
