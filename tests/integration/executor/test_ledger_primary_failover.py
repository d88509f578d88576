"""The ledger's primary lost under load (issue 17 §1-§2, without the cluster): a real Patroni cluster of
three local Postgres servers with strict synchronous replication (xorj.devenv.patroni), two real
`xorj executor` processes and an admitting client all on one multi-host conninfo
(``target_session_attrs=read-write``), and the primary SIGKILLed while trades are admitted and filled:
- ``postgres``: the primary's postmaster and backends only (its Patroni lives on and restarts it, or
  hands over to the synchronous standby);
- ``member``: the primary's Patroni and Postgres at once (a lost pod): the standby is promoted once the
  leader key expires;
- ``switchover``: a planned primary change to the synchronous standby (Patroni's REST API, as
  ``patronictl switchover``), after which not one trade may have failed.

Judged from the chain and the ledger: every trade terminal; the vault's successful swaps on chain are
exactly the CONFIRMED trades' final signatures (0 duplicates, none missing); 0 orphans; every trade whose
admission returned before the kill is still there; the executors followed the new primary without a
restart. The time from the kill to the first admission that succeeds again is printed (not asserted:
it depends on the machine's load; Patroni's TTL of 20 s bounds the ``member`` case's election).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.integration.executor.harness import assert_chain_matches_ledger, executor_env, executors, wait_terminal
from xorj.chaos.probes import count_orphans
from xorj.devenv.patroni import PatroniCluster, wait_for_leader
from xorj.domain.trades import TradeState
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger, migrate
from xorj.ledger.records import TradeIntent
from xorj.ledger.roles import bootstrap_owner

pytestmark = [pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow]

DATABASE = "xorj"
OWNER = "xorj_ledger_owner"
TRADES = 80
AMOUNT = 2_000_000


@pytest.fixture
def ha_ledger() -> Iterator[tuple[PatroniCluster, str]]:
    """A three-member Patroni cluster with the ledger migrated by its owner; yields the cluster and the
    owner's multi-host conninfo (TLS verified, SCRAM), what the operator and the executors are given."""
    with PatroniCluster(3) as cluster:
        password = secrets.token_urlsafe(24)
        bootstrap_owner(cluster.conninfo("postgres"), DATABASE, OWNER, password)
        owner_dsn = cluster.conninfo(DATABASE, user=OWNER, password=password)
        migrate(owner_dsn)
        yield cluster, owner_dsn


class Admitter:
    """Admits ``TRADES`` trades one by one from a thread, as the operator would, retrying an admission
    the ledger could not take (same lead signature: the retry is idempotent). Records when each
    admission returned."""

    def __init__(self, ledger: Ledger, scenario) -> None:
        self.ledger = ledger
        self.scenario = scenario
        self.admitted: list[tuple[float, int]] = []  # (when it returned, trade id)
        self.failures: list[float] = []
        self.go = threading.Event()  # set once the executors are filling the first trade
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the admitter did not finish"

    def _run(self) -> None:
        for i in range(TRADES):
            intent = TradeIntent(
                strategy=self.scenario.strategy, vault=self.scenario.vault, lead_signature=f"lead-{uuid.uuid4().hex}",
                lead_trader="LeadTrader1111111111111111111111111111111111", input_mint=self.scenario.input_mint,
                output_mint=self.scenario.output_mint, amount=AMOUNT + 1_000 * i, notional_usd=Decimal(10))
            deadline = time.monotonic() + 180
            while True:
                try:
                    result = self.ledger.admit_trade(intent)
                    break
                except LedgerUnavailableError:
                    self.failures.append(time.monotonic())
                    assert time.monotonic() < deadline, "the ledger did not come back in 180 s"
                    time.sleep(0.1)
            self.admitted.append((time.monotonic(), result.trade_id))
            self.go.wait(120)
            time.sleep(0.1)  # a load, not a burst: admissions go on through the kill


@pytest.mark.parametrize("victim", ["postgres", "member", "switchover"])
def test_primary_killed_under_load_loses_and_duplicates_nothing(ha_ledger, victim, local_chain, scenario,
                                                                  chain_before, tmp_path):
    cluster, dsn = ha_ledger
    fills_before, balances_before = chain_before
    env = executor_env(dsn=dsn, scenario=scenario, rpc_url=local_chain.rpc_url,
                       swap_api_url=local_chain.swap_api_url, concurrency=4)
    with Ledger.connect(dsn, max_size=4) as ledger, executors(2, env, tmp_path) as procs:
        admitter = Admitter(ledger, scenario)
        admitter.start()
        # the load starts once the executors work (their start takes seconds on a busy machine), and the
        # kill comes while admissions go on and trades are in flight
        deadline = time.monotonic() + 120
        while not admitter.admitted or ledger.get_trade(admitter.admitted[0][1]).state is TradeState.PENDING:
            assert time.monotonic() < deadline, f"the executors never took a trade: {cluster.logs()}"
            time.sleep(0.05)
        admitter.go.set()
        while len(admitter.admitted) < TRADES // 4:
            time.sleep(0.02)
        old_leader = cluster.leader()
        assert old_leader is not None
        killed_at = time.monotonic()
        killed_pid = cluster.postmaster_pid(old_leader)
        if victim == "postgres":
            cluster.kill_postgres(old_leader)
        elif victim == "member":
            cluster.kill_member(old_leader)
        else:
            standby = cluster.sync_standby()
            assert standby is not None
            cluster.switchover(standby)
        before_kill = {i for t, i in admitter.admitted if t < killed_at}
        admitter.join(240)
        # the first admission that returned after one was refused (one in flight at the kill may
        # have returned just after it)
        refused = [t for t in admitter.failures if t > killed_at]
        # the kill came in the middle of the load: trades admitted before it and after it (a Postgres
        # that Patroni restarts in place within the pool's acquire timeout refuses no admission at all)
        after_kill = [i for t, i in admitter.admitted if t > killed_at]
        assert before_kill and after_kill, f"the kill did not come during the load: {len(before_kill)} before, " \
                                           f"{len(after_kill)} after"
        recovery = next(t for t, _ in admitter.admitted if t > (refused or [killed_at])[0]) - killed_at
        ids = [i for _, i in admitter.admitted]
        trades = wait_terminal(ledger, ids, 240)
        new_leader = wait_for_leader(cluster)
        still_running = [p.proc.poll() is None for p in procs]
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            orphans = count_orphans(conn.cursor(), 0.0)
            stored = {r["id"] for r in conn.execute("SELECT id FROM trades WHERE strategy = %s", (scenario.strategy,))}

    print(f"ledger primary {old_leader} lost ({victim}): writes back after {recovery:.1f}s "
          f"(new primary {new_leader}); {len(admitter.failures)} admissions refused meanwhile; "
          f"{sum(t.state.value == 'CONFIRMED' for t in trades)}/{len(trades)} confirmed")
    if victim == "postgres":
        assert cluster.postmaster_pid(new_leader) != killed_pid, "the primary's Postgres was never replaced"
    else:
        assert new_leader != old_leader, "the old member is still the leader: no failover happened"
    if victim == "switchover":  # a planned change fails no trade at all
        assert [t.trade_id for t in trades if t.state is not TradeState.CONFIRMED] == []
    assert before_kill <= stored, f"trades admitted before the kill are gone: {sorted(before_kill - stored)}"
    assert stored == set(ids), "the ledger holds other trades than the admitted ones"
    assert all(t.state.is_terminal for t in trades)
    assert orphans == []
    assert all(still_running), "an executor exited instead of following the new primary"
    assert_chain_matches_ledger(local_chain.rpc_url, scenario, trades, fills_before, balances_before)
