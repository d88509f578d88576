"""The chaos probes fail when the system misbehaves: each invariant violation is planted in a scratch
ledger (a real Postgres database of its own) and the probe must return the failing value; a real
experiment run against it must exit 1. A clean ledger passes the same probes and the same run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from xorj.chaos import probes
from xorj.ledger.records import TradeIntent

REPO = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture
def target(ledger_dsn, local_chain, tmp_path):
    """An env.json naming the scratch ledger and an untouched vault of the session chain."""
    vault = local_chain.take_vault()
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"target": {
        "ledger_dsn": ledger_dsn, "chain_admin_url": local_chain.admin_url, "strategy": "probe-test",
        "vault": vault, "input_mint": local_chain.mints["USDC"], "output_mint": local_chain.mints["SOL"]}}))
    return {"xorj_env": str(env), "run_id": f"probe-{uuid.uuid4().hex[:8]}"}


def _confirmed_trade(ledger, vault: str, run_id: str) -> int:
    trade_id = ledger.admit_trade(TradeIntent("probe-test", vault, f"chaos-{run_id}-{uuid.uuid4().hex}", "lead",
                                              "in", "out", 10, notional_usd=Decimal(1))).trade_id
    [claim] = ledger.claim_trades("probe-test", "probe-owner", limit=1)
    signature = f"sig-{uuid.uuid4().hex}"
    ledger.record_attempt(trade_id, "probe-owner", signature, b"raw", 100, 50, fencing_token=claim.fencing_token)
    ledger.confirm_trade(trade_id, "probe-owner", signature, fencing_token=claim.fencing_token)
    return trade_id


def _vault(configuration) -> str:
    return json.loads(Path(configuration["xorj_env"]).read_text())["target"]["vault"]


def test_clean_ledger_passes_every_probe(ledger, target):
    _confirmed_trade(ledger, _vault(target), target["run_id"])
    assert probes.no_duplicate_trades(configuration=target) == 0
    assert probes.no_orphans(grace_seconds=20, configuration=target) == 0
    terminal = probes.all_trades_terminal_within(seconds=1, configuration=target)
    assert terminal["ok"] is True and terminal["trades"] == 1 and terminal["confirmed"] == 1


def test_a_loaded_trade_that_never_reaches_the_ledger_is_lost(ledger, target):
    from xorj.chaos import marks
    from xorj.chaos.target import resolve

    _confirmed_trade(ledger, _vault(target), target["run_id"])
    run = resolve(target)
    marks.write(run, "load")
    marks.add(run, "loaded", 2)  # the run submitted two; only one was ever admitted
    lost = probes.all_trades_terminal_within(seconds=2, configuration=target)
    assert lost["ok"] is False and lost["open"] == 0 and (lost["trades"], lost["expected"]) == (1, 2)
    assert lost["waited_s"] >= 2, "it waits for late admissions (an operator coming back) before judging"
    _confirmed_trade(ledger, _vault(target), target["run_id"])  # the late one arrives and finishes
    assert probes.all_trades_terminal_within(seconds=2, configuration=target)["ok"] is True


def test_final_probe_records_the_runs_timeline_from_the_ledger(ledger, target):
    """Once the run has a load, the terminal probe's output carries what the report's timeline is
    drawn from: the run's marks, each trade of the run with the ledger's own timestamps, and the
    outbox alerts raised since the run began (not those before it, not other runs' trades)."""
    from xorj.chaos import marks
    from xorj.chaos.target import resolve
    from xorj.domain.trades import ReasonCode

    vault = _vault(target)
    ledger.raise_alert("BEFORE_THE_RUN", "warning", "raised before the run began")
    _confirmed_trade(ledger, vault, "another-run")  # not this run's
    run = resolve(target)
    assert "timeline" not in probes.all_trades_terminal_within(seconds=0.1, configuration=target), \
        "before the method (no load yet) there is nothing to draw"
    time.sleep(1.1)  # the probe takes alerts from 1 s before the run began
    marks.write(run, "begin")
    marks.fault(run, "RPC_FAILURE")
    marks.write(run, "load")
    marks.add(run, "loaded", 2)
    _confirmed_trade(ledger, vault, target["run_id"])
    ledger.admit_refused(TradeIntent("probe-test", vault, f"chaos-{target['run_id']}-refused", "lead",
                                               "in", "out", 10), ReasonCode.RISK_LIMIT, "kill switch")
    ledger.raise_alert("RPC_FAILURE", "critical", "RPC failing", strategy="probe-test")
    marks.write(run, "cleared")

    verdict = probes.all_trades_terminal_within(seconds=2, configuration=target)
    timeline = verdict["timeline"]
    assert verdict["ok"] is True
    assert set(timeline["marks"]) >= {"begin", "fault:RPC_FAILURE", "load", "cleared"}
    by_state = {row[3]: row for row in timeline["trades"]}
    assert len(timeline["trades"]) == 2 and set(by_state) == {"CONFIRMED", "FAILED"}
    created, submitted, finished, _ = by_state["CONFIRMED"]
    assert timeline["marks"]["begin"] - 1 <= created <= submitted <= finished
    created, submitted, finished, _ = by_state["FAILED"]
    assert submitted is None and created <= finished, "refused at admission: never sent"
    assert [kind for kind, _ in timeline["alerts"]] == ["RPC_FAILURE"]


def test_planted_second_landed_attempt_is_a_duplicate(ledger, ledger_dsn, target):
    trade_id = _confirmed_trade(ledger, _vault(target), target["run_id"])
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        conn.execute("""INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                              slippage_bps, outcome, resolved_at)
                        VALUES (%s, 2, %s, 'raw2', 100, 50, 'LANDED', now())""", (trade_id, f"dup-{uuid.uuid4().hex}"))
    assert probes.no_duplicate_trades(configuration=target) == 1


def test_planted_duplicate_idempotency_key_is_a_duplicate(ledger, ledger_dsn, target):
    vault = _vault(target)
    lead = f"chaos-{target['run_id']}-same"
    ledger.admit_trade(TradeIntent("probe-test", vault, lead, "lead", "in", "out", 10))
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        # only a broken writer (or a lost constraint) could do this: the scratch ledger loses it on purpose
        conn.execute("ALTER TABLE trades DROP CONSTRAINT trades_idempotency_key")
        conn.execute("""INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount)
                        VALUES ('probe-test', %s, %s, 'lead', 'in', 'out', 10)""", (vault, lead))
    assert probes.no_duplicate_trades(configuration=target) == 1


def test_planted_stale_lease_is_an_orphan(ledger, ledger_dsn, target):
    trade_id = ledger.admit_trade(TradeIntent("probe-test", _vault(target), f"chaos-{target['run_id']}-x", "lead",
                                              "in", "out", 10)).trade_id
    ledger.claim_trades("probe-test", "dead-executor", limit=1)
    assert probes.no_orphans(grace_seconds=20, configuration=target) == 0  # held by a live lease
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        conn.execute("UPDATE trades SET lease_expires_at = now() - interval '5 minutes' WHERE id = %s", (trade_id,))
    assert probes.no_orphans(grace_seconds=20, configuration=target) == 1
    terminal = probes.all_trades_terminal_within(seconds=1, configuration=target)
    assert terminal["ok"] is False and terminal["open"] == 1


def test_fills_are_compared_with_the_ledger(ledger, ledger_dsn, target):
    """Two fills of one trade, a fill nobody explains, a fill of a FAILED trade, a confirmed trade
    with no fill: each is a violation the on-chain probe counts."""
    vault = _vault(target)
    confirmed = _confirmed_trade(ledger, vault, target["run_id"])
    final = ledger.get_trade(confirmed).final_signature
    with psycopg.connect(ledger_dsn, autocommit=True) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        assert probes.compare_chain_with_ledger(cur, vault, [final])["violations"] == 0
        assert probes.compare_chain_with_ledger(cur, vault, [])["confirmed_not_on_chain"] == [confirmed]
        assert probes.compare_chain_with_ledger(cur, vault, [final, "stranger"])["unexplained_fills"] == ["stranger"]
        second = f"second-{uuid.uuid4().hex}"
        conn.execute("""INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                              slippage_bps, outcome, reason, resolved_at)
                        VALUES (%s, 2, %s, 'raw2', 100, 50, 'EXPIRED', 'BLOCKHASH_EXPIRED', now())""", (confirmed, second))
        result = probes.compare_chain_with_ledger(cur, vault, [final, second])
        assert result["duplicate_fills"] == 1 and result["violations"] == 2  # a second fill, not the final one


def test_onchain_probe_reads_the_real_chain(ledger, target):
    """The vault taken for this test has no swaps on the session chain: nothing to explain."""
    result = probes.no_duplicate_onchain_transactions(configuration=target)
    assert result == {**result, "violations": 0, "fills": 0, "confirmed_trades": 0}
    _confirmed_trade(ledger, _vault(target), target["run_id"])
    # a CONFIRMED trade whose final signature never landed on chain: the ledger claims a fill that is not there
    assert probes.no_duplicate_onchain_transactions(configuration=target)["confirmed_not_on_chain"]


def test_onchain_probe_checks_every_vault_of_the_strategy(ledger, local_chain, target):
    """A fan-out's trades go to the strategy's other vaults too: a CONFIRMED trade of a second vault
    whose fill is not on chain is a violation, though the target's own vault is clean."""
    assert probes.no_duplicate_onchain_transactions(configuration=target)["violations"] == 0
    second = local_chain.take_vault()
    _confirmed_trade(ledger, second, target["run_id"])
    result = probes.no_duplicate_onchain_transactions(configuration=target)
    assert result["vaults"] == 2 and result["violations"] == 1 and len(result["confirmed_not_on_chain"]) == 1


def test_a_copytrade_load_expects_one_trade_per_active_vault(ledger, local_chain, target):
    """A CopyTrade fans out to every active Vault of the strategy: the run must wait for all of
    those trades, not for one per CopyTrade (which the first third of a 3-vault fan-out would meet)."""
    from xorj.chaos.actions import fanout_width
    from xorj.chaos.target import resolve
    from xorj.domain.risk import VaultLimits
    from xorj.ledger import vaults

    assert fanout_width(resolve(target)) == 1
    keys = [local_chain.take_vault() for _ in range(3)]
    for n, key in enumerate(keys):
        ledger.run(vaults.register_vault("probe-test", key, vault_object=f"ns/v{n}", limits=VaultLimits()))
    ledger.run(vaults.remove_vault("probe-test", keys[2], vault_object="ns/v2", detail="gone"))
    assert fanout_width(resolve(target)) == 3


def _pythonpath() -> str:
    """The repository (for tests.*) before whatever path the run was given (a checkout's own xorj)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def _chaos_run(configuration, experiment: Path, tmp_path: Path) -> tuple[int, dict]:
    journal = tmp_path / f"journal-{uuid.uuid4().hex[:6]}.json"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": _pythonpath(),
           "XORJ_CHAOS_ENV": configuration["xorj_env"], "XORJ_CHAOS_RUN_ID": configuration["run_id"]}
    code = subprocess.run([shutil.which("chaos"), "--no-version-check", "run", str(experiment), "--journal-path",
                           str(journal), "--rollback-strategy=always"], env=env, capture_output=True, timeout=300,
                          check=False).returncode
    return code, json.loads(journal.read_text())


def _experiment(tmp_path: Path, plant: str | None) -> Path:
    """A real experiment of the suite, its method replaced by the planting of one misbehaviour (no
    executors run here: the hypothesis after the method must catch what was planted)."""
    doc = json.loads((REPO / "experiments" / "lead-trade-delivered-twice.json").read_text())
    doc["method"] = [m for m in doc["method"] if m["name"] == "begin-run"]
    if plant:
        doc["method"].append({"type": "action", "name": f"plant-{plant}", "provider": {
            "type": "python", "module": "tests.integration.chaos.plant", "func": plant}})
    path = tmp_path / f"{plant or 'clean'}.json"
    path.write_text(json.dumps(doc))
    return path


def _failing_after(journal: dict) -> list[str]:
    return [p["activity"]["name"] for p in journal["steady_states"]["after"]["probes"] if not p["tolerance_met"]]


def test_chaos_run_passes_on_a_clean_system(ledger, target, tmp_path):
    code, journal = _chaos_run(target, _experiment(tmp_path, None), tmp_path)
    assert code == 0, json.dumps(journal["steady_states"], indent=1)[:3000]
    assert journal["steady_states"]["after"]["steady_state_met"] is True


@pytest.mark.parametrize(("plant", "probe"), [("orphan", "no-orphans"),
                                              ("second_landed_attempt", "no-duplicate-trades")])
def test_chaos_run_exits_1_when_the_method_leaves_a_violation(ledger, target, tmp_path, plant, probe):
    code, journal = _chaos_run(target, _experiment(tmp_path, plant), tmp_path)
    assert code == 1
    assert journal["deviated"] is True
    assert _failing_after(journal) == [probe]


def test_xorj_chaos_run_fails_when_the_system_is_broken_before_the_method(ledger, target, tmp_path):
    """chaostoolkit exits 0 when the hypothesis is not met BEFORE the method (status "completed", not
    deviated); `xorj chaos run` reads the journal and fails."""
    _confirmed_trade(ledger, _vault(target), target["run_id"])  # CONFIRMED, but no such fill on chain
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    shutil.copy(_experiment(tmp_path, None), experiments / "broken-before.json")
    code, journal = _chaos_run(target, experiments / "broken-before.json", tmp_path)
    assert code == 0 and journal["steady_states"]["before"]["steady_state_met"] is False  # the upstream behaviour
    result = subprocess.run(["xorj", "chaos", "run", "broken-before", "--experiments", str(experiments),
                             "--env", target["xorj_env"], "--out", str(tmp_path / "out")],
                            env={**os.environ, "PYTHONPATH": _pythonpath()}, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "| broken-before | NOT STEADY BEFORE |" in result.stdout


def test_vault_funds_probe_sees_a_transaction_the_ledger_never_committed(local_chain, target):
    """A transfer the vault signed outside the ledger (what a hostile swap answer signed would be):
    the vault's funds are no longer explained by its trades."""
    import base64

    from solders.hash import Hash
    from solders.keypair import Keypair
    from solders.message import MessageV0
    from solders.system_program import TransferParams, transfer
    from solders.transaction import VersionedTransaction

    from tests.integration.executor.harness import rpc
    from xorj.chaos import actions

    actions.snapshot_vault(configuration=target)
    clean = probes.vault_funds_accounted(configuration=target)
    assert clean["violations"] == 0 and clean["snapshot"] is True
    vault = Keypair.from_bytes(local_chain.vault_keypair_bytes(_vault(target)))
    blockhash = rpc(local_chain.rpc_url, "getLatestBlockhash", [{"commitment": "confirmed"}])["value"]["blockhash"]
    message = MessageV0.try_compile(vault.pubkey(), [transfer(TransferParams(
        from_pubkey=vault.pubkey(), to_pubkey=Keypair().pubkey(), lamports=10**9))], [], Hash.from_string(blockhash))
    tx = VersionedTransaction(message, [vault])
    rpc(local_chain.rpc_url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
    drained = probes.vault_funds_accounted(configuration=target)
    assert drained["violations"] >= 2, drained  # an unexplained transaction, and lamports beyond its fee
    assert any("no committed attempt" in p for p in drained["problems"])
    assert any("lamports fell" in p for p in drained["problems"])


def test_a_refused_swap_with_an_attempt_fails_the_refusal_probe(ledger, ledger_dsn, target):
    from xorj.chaos import marks
    from xorj.chaos.target import resolve
    from xorj.domain.trades import ReasonCode

    vault = _vault(target)
    assert probes.hostile_swaps_refused(configuration=target)["ok"] is True  # nothing injected, nothing refused
    marks.fault(resolve(target), "SWAP_REJECTED")
    assert probes.hostile_swaps_refused(configuration=target)["ok"] is False  # injected, yet nothing refused
    trade_id = ledger.admit_trade(TradeIntent("probe-test", vault, f"chaos-{target['run_id']}-{uuid.uuid4().hex}",
                                              "lead", "in", "out", 10, notional_usd=Decimal(1))).trade_id
    [claim] = ledger.claim_trades("probe-test", "probe-owner", limit=1)
    ledger.fail_trade(trade_id, "probe-owner", ReasonCode.SWAP_REJECTED, "vault-transfer: planted",
                      fencing_token=claim.fencing_token)
    refused = probes.hostile_swaps_refused(configuration=target)
    assert refused["ok"] is True and refused["refused"] == 1
    # an attack the run armed but that never refused a trade is a hole in the proof
    partial = probes.hostile_swaps_refused(expect_rules=["vault-transfer", "token-approve"], configuration=target)
    assert partial["ok"] is False and partial["rules_missing"] == ["token-approve"], partial
    assert probes.hostile_swaps_refused(expect_rules=["vault-transfer"], configuration=target)["ok"] is True
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:  # a signed attempt behind a refusal
        conn.execute("""INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                              slippage_bps, outcome, resolved_at)
                        VALUES (%s, 1, %s, 'raw', 100, 50, 'EXPIRED', now())""", (trade_id, f"p-{uuid.uuid4().hex}"))
    signed = probes.hostile_swaps_refused(configuration=target)
    assert signed["ok"] is False and signed["signed_for_refused"] == 1


def test_the_probes_try_a_failed_connect_again_and_a_ledger_that_stays_down_still_raises(ledger_dsn, monkeypatch):
    """A connect the observer's path drops is tried again (the probe then measures); a ledger that
    stays unreachable raises after CONNECT_TRIES, which fails the hypothesis."""
    monkeypatch.setattr(probes, "CONNECT_RETRY_SECONDS", 0.05)
    real_connect = psycopg.connect
    calls: list[str] = []

    def first_connect_dropped(dsn, **kwargs):
        calls.append(dsn)
        if len(calls) == 1:
            raise psycopg.OperationalError("connection dropped on the way")
        return real_connect(dsn, **kwargs)

    monkeypatch.setattr(psycopg, "connect", first_connect_dropped)
    with probes.connect_ledger(ledger_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert len(calls) == 2

    monkeypatch.setattr(psycopg, "connect", real_connect)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            probes.connect_ledger(f"postgresql://postgres@127.0.0.1:{port}/xorj")
    assert time.monotonic() - started >= (probes.CONNECT_TRIES - 1) * 0.05
