"""``xorj dev leaders`` on a local chain of its own (the backdated clock must not stamp other tests'
blocks): the three leaders trade a backdated 92-day history and a short live phase as real swaps signed
by their own keys; then, from the chain alone (getSignaturesForAddress/getTransaction of their public
keys, valued with the local price API), the backfill builds their trade history and the Trust Score
ranks the steady one first."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest
from solders.keypair import Keypair

from tests.fixtures.chain import start_local_chain, stop_local_chain
from xorj.chain.prices import JupiterPriceClient, price_api_url_for
from xorj.chain.rpc import SolanaRpc
from xorj.domain.scoring import MIN_HISTORY_DAYS, SECONDS_PER_DAY, EligibilityStatus, score_history
from xorj.domain.trader_history import SwapKind
from xorj.scoring_io import read_scoring_csv
from xorj.traders.backfill import history_csv, realized, stored_entries
from xorj.traders.history import ChainHistory

pytestmark = [pytest.mark.chain]


@pytest.fixture(scope="module")
def own_chain(tmp_path_factory):
    handle = start_local_chain(tmp_path_factory.mktemp("leaders-chain"), slot_ms=50, vaults=0)
    try:
        yield handle
    finally:
        stop_local_chain(handle)


def _xorj(*args: str, state_dir) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XORJ_LEADERS_STATE_DIR": str(state_dir)}
    return subprocess.run([sys.executable, "-c", "from xorj.cli import main; main()", "dev", "leaders", *args],
                          env=env, capture_output=True, text=True, timeout=600)


async def _history_from_chain(chain, wallets: list[str]):
    usdc = chain.mints["USDC"]
    prices = JupiterPriceClient(price_api_url_for(chain.swap_api_url))
    rows, swaps = [], {}
    try:
        async with SolanaRpc(chain.rpc_url) as rpc:
            history = ChainHistory(rpc)
            for wallet in wallets:
                entries = await stored_entries(await history.history(wallet, None), prices,
                                               cash_mints=frozenset({usdc}))
                swaps[wallet] = [e for e in entries if e.swap.kind is SwapKind.SWAP]
                rows.extend(realized(entries, cash_mints=frozenset({usdc})))
    finally:
        await prices.close()
    return rows, swaps


def test_steady_leader_ranks_first_from_its_chain_history(own_chain, tmp_path) -> None:
    state_dir = tmp_path / "leaders-state"
    ran = _xorj("run", "--rpc-url", own_chain.rpc_url, "--history-days", "92", "--history-ticks", "200",
                "--rate", "120", "--duration", "2", "--seed", "1", state_dir=state_dir)
    assert ran.returncode == 0, ran.stderr
    assert "history 200/200" in ran.stderr and "leader swaps sent" in ran.stderr

    listed = _xorj("list", "--output", "json", state_dir=state_dir)
    assert listed.returncode == 0, listed.stderr
    leaders = {row["style"]: row["wallet"] for row in json.loads(listed.stdout)}
    assert set(leaders) == {"steady", "careful", "reckless"} and len(set(leaders.values())) == 3

    # keys: under the state dir, owner-only, and never in what the commands printed
    for style, wallet in leaders.items():
        key_file = state_dir / "leaders" / f"{style}.json"
        assert key_file.stat().st_mode & 0o777 == 0o600
        keypair = Keypair.from_bytes(bytes(json.loads(key_file.read_text())))
        assert str(keypair.pubkey()) == wallet
        for secret in (key_file.read_text(), str(keypair), bytes(keypair).hex()):
            for printed in (ran.stdout, ran.stderr, listed.stdout, listed.stderr):
                assert secret not in printed

    rows, swaps = asyncio.run(_history_from_chain(own_chain, list(leaders.values())))
    # every swap is the leader's own signed transaction, found on chain
    for wallet, found in swaps.items():
        assert found and all(s.swap.wallet == wallet for s in found)
    # the history phase is backdated: the steady one's chain history spans the 90-day window
    steady_times = sorted(s.swap.block_time for s in swaps[leaders["steady"]])
    assert steady_times[-1] - steady_times[0] >= MIN_HISTORY_DAYS * SECONDS_PER_DAY
    assert len(swaps[leaders["careful"]]) < len(swaps[leaders["steady"]])  # few trades

    history = read_scoring_csv(history_csv(rows).splitlines(), "chain")
    ranked = score_history(history, "fixed").ranked()
    by_wallet = {t.wallet: t for t in ranked}
    steady = by_wallet[leaders["steady"]]
    reckless = by_wallet[leaders["reckless"]]
    assert ranked[0].wallet == leaders["steady"], [(t.wallet, t.score, t.status) for t in ranked]
    assert steady.status is EligibilityStatus.ELIGIBLE and steady.score > 0
    # the reckless one is ranked on its merits, not excluded: eligible, and below on risk
    assert reckless.status is EligibilityStatus.ELIGIBLE and reckless.score < steady.score
    assert reckless.max_drawdown_pct > steady.max_drawdown_pct
    assert by_wallet[leaders["careful"]].status is not EligibilityStatus.ELIGIBLE or \
        by_wallet[leaders["careful"]].score < steady.score


def test_a_second_run_reuses_the_keys_and_does_not_refund(own_chain, tmp_path) -> None:
    state_dir = tmp_path / "leaders-state"
    before = _xorj("list", state_dir=state_dir)
    assert before.returncode == 0 and before.stdout == "" and "xorj dev leaders run" in before.stderr
    assert not (state_dir / "leaders").exists()  # listing makes no keys
    first = _xorj("run", "--rpc-url", own_chain.rpc_url, "--history-days", "0", "--rate", "600",
                  "--duration", "0.5", state_dir=state_dir)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("(funded)") == 3
    again = _xorj("run", "--rpc-url", own_chain.rpc_url, "--history-days", "0", "--rate", "600",
                  "--duration", "0.5", state_dir=state_dir)
    assert again.returncode == 0 and "(funded)" not in again.stderr
    assert _xorj("list", state_dir=state_dir).stdout == _xorj("list", state_dir=state_dir).stdout


def test_the_clock_and_faucet_admin_calls_check_their_input(own_chain) -> None:
    admin = own_chain.admin_url
    pinned = httpx.post(admin + "/clock", json={"blockTime": 1_600_000_000}).json()
    assert pinned["blockTime"] == 1_600_000_000
    released = httpx.post(admin + "/clock", json={"blockTime": None}).json()
    assert released["pinned"] is False and released["blockTime"] > 1_700_000_000
    for bad, field in [({"blockTime": "yesterday"}, "clock.blockTime"), ({}, "clock.blockTime"),
                       ({"blockTime": -5}, "clock.blockTime")]:
        answer = httpx.post(admin + "/clock", json=bad)
        assert answer.status_code == 400 and field in answer.json()["error"]
    for bad, field in [({"pubkey": "nope", "lamports": 1}, "fund.pubkey"),
                       ({"pubkey": str(Keypair().pubkey()), "lamports": -1}, "fund.lamports"),
                       ({"pubkey": str(Keypair().pubkey()), "lamports": 1, "tokens": {"DOGE": 1}}, "fund.tokens")]:
        answer = httpx.post(admin + "/fund", json=bad)
        assert answer.status_code == 400 and field in answer.json()["error"]


def test_run_against_no_chain_fails_with_one_clear_line(tmp_path) -> None:
    failed = _xorj("run", "--rpc-url", "http://127.0.0.1:9/", "--history-days", "0", "--duration", "1",
                   state_dir=tmp_path / "state")
    assert failed.returncode == 1 and "--rpc-url http://127.0.0.1:9/" in failed.stderr
    assert "Traceback" not in failed.stderr

