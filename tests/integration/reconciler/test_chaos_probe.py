"""The chaos probe that runs the reconciler over an experiment's vault (xorj.chaos.probes.chain_reconciled):
clean on a vault with only recorded activity, and it counts a stolen-key transaction."""

from __future__ import annotations

import pytest

from tests.integration.executor.harness import admit
from tests.integration.reconciler.helpers import send, signed_transfer, vault_key, wait_finalized
from xorj.chaos.probes import chain_reconciled

pytestmark = [pytest.mark.chain, pytest.mark.postgres]


def test_chain_reconciled_probe(local_chain, ledger, ledger_dsn, fresh_scenario):
    admit(ledger, fresh_scenario, 1, 1_000_000)
    configuration = {"ledger_dsn": ledger_dsn, "chain_admin_url": local_chain.admin_url, "vault": fresh_scenario.vault}
    assert chain_reconciled(configuration) == {"open_findings": 0, "errors": 0, "classes": [], "walked": 0}
    stolen = send(local_chain.rpc_url, signed_transfer(local_chain.rpc_url, vault_key(local_chain,
                                                                                       fresh_scenario.vault)))
    wait_finalized(local_chain.rpc_url, [stolen])
    assert chain_reconciled(configuration) == {"open_findings": 1, "errors": 0,
                                               "classes": ["UNKNOWN_TRANSACTION"], "walked": 1}
