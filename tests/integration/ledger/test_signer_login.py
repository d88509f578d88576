"""The signer boundary's ledger login (migration 0014): it reads its namespace's trades and their
attempts, which is all ``xorj signer`` needs, sees no other namespace's, and can write nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.integration.executor.harness import Scenario, admit
from xorj.ledger import transactions as tx
from xorj.ledger.repository import Ledger
from xorj.ledger.roles import ensure_signer_login

pytestmark = [pytest.mark.postgres]


def _scenario(namespace: str) -> Scenario:
    return Scenario(strategy=f"{namespace}/copy", vault="Vau1t1111111111111111111111111111111111111",
                    keypair_file="-", input_mint="In11111111111111111111111111111111111111111",
                    output_mint="Out1111111111111111111111111111111111111111")


def test_signer_login_reads_its_namespace_only_and_writes_nothing(ledger, ledger_owner_dsn):
    mine, theirs = f"ns-{uuid.uuid4().hex[:8]}", f"ns-{uuid.uuid4().hex[:8]}"
    [own] = admit(ledger, _scenario(mine), 1, 1_000)
    [other] = admit(ledger, _scenario(theirs), 1, 1_000)
    login = ensure_signer_login(ledger_owner_dsn, mine, f"pw-{uuid.uuid4().hex}")
    assert login.login.endswith(f"_sig_{mine}") and "pw-" not in repr(login)

    with Ledger.connect(login.dsn, max_size=1, apply_migrations=False) as signer:
        assert signer.run(tx.find_trade(own)).trade_id == own
        assert signer.run(tx.find_trade(other)) is None  # another namespace's trade does not exist for it
    with psycopg.connect(login.dsn, autocommit=True) as conn:
        for statement in ("UPDATE trades SET state = 'FAILED' WHERE id = %s",
                          "DELETE FROM attempts WHERE trade_id = %s",
                          "INSERT INTO alerts (kind, severity, strategy, trade_id, message) "
                          "VALUES ('X', 'critical', 'x/y', %s, 'm')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, (own,))
