"""The signer boundary on the real node (issue 15 section 1: "keys never sit in executor pods"): `xorj dev
up` with the operator's defaults runs each executor pod with an `xorj signer` sidecar that alone mounts
the vault keys. The demo's one-vault trades confirm through it; then a Vault adds the chain's second
vault to the demo strategy (its key in a Secret of its own, bound to the strategy), the pods roll once
with both keys in the signer container only, and one CopyTrade fans out to both vaults: each vault gets
exactly one more successful swap on the chain.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from solders.signature import Signature

from tests.e2e.demo.conftest import DemoRun
from tests.integration.executor.harness import successful_fills, token_balance
from tests.polling import wait_for
from xorj.controller.guard import SECRET_BINDING_ANNOTATION
from xorj.controller.models import CopyTrade, Vault, VaultSpec
from xorj.controller.tradingstrategy.desired import (
    EXECUTOR_CONTAINER,
    SIGNER_CONTAINER,
    VAULT_MOUNT_DIR,
    names,
    selector_labels,
)
from xorj.devenv.cluster import LocalCluster
from xorj.devenv.demo import example_strategy, read_chain_info

pytestmark = [pytest.mark.cluster, pytest.mark.chain, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(3600)]

EXTRA_VAULT_SECRET = "demo-second-vault"
FANOUT_SECONDS = 300.0


def _executor_pods(run: DemoRun, strategy: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(strategy).items())
    out = run.cluster.kubectl("get", "pods", "-n", run.namespace, "-l", selector, "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def _ready_executor_pods(run: DemoRun, strategy: str) -> list[dict[str, Any]]:
    """The strategy's executor pods once both containers of every one are Ready on the real node (a
    readiness probe may be between answers just after `up` or a roll: waited for, not sampled once)."""
    def ready() -> list[dict[str, Any]]:
        pods = _executor_pods(run, strategy)
        statuses = [{c["name"]: c.get("ready") for c in p["status"].get("containerStatuses") or []} for p in pods]
        both = all(s.get(EXECUTOR_CONTAINER) and s.get(SIGNER_CONTAINER) for s in statuses)
        return pods if pods and both else []

    return wait_for(ready, 180, "both containers of every executor pod Ready", interval=2,
                    describe=lambda: json.dumps([p["status"].get("containerStatuses") for p in _executor_pods(run, strategy)])[-3000:])


def _assert_keys_only_in_the_signer(pod: dict[str, Any]) -> None:
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert set(containers) == {EXECUTOR_CONTAINER, SIGNER_CONTAINER}, pod["metadata"]["name"]
    executor_mounts = {m["name"]: m["mountPath"] for m in containers[EXECUTOR_CONTAINER]["volumeMounts"]}
    signer_mounts = {m["name"]: m["mountPath"] for m in containers[SIGNER_CONTAINER]["volumeMounts"]}
    assert "vault" not in executor_mounts and not any(p.startswith(VAULT_MOUNT_DIR) for p in executor_mounts.values())
    assert signer_mounts["vault"] == VAULT_MOUNT_DIR


def test_the_signer_sidecar_holds_every_vault_key_and_a_fanout_confirms_on_chain(no_cluster: LocalCluster,
                                                                                  demo_run: DemoRun) -> None:
    demo_run.env["XORJ_DEMO_LOOP"] = "0"  # no leaders or watcher: the only swaps are this test's
    up = demo_run.up()
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr[-6000:]}"
    assert demo_run.confirmed(up), up.stdout  # the one-vault strategy, signed by the sidecar
    demo_run.assert_executors_use_service_names(example_strategy()["metadata"]["name"])

    kubectl = demo_run.cluster.kubectl
    namespace = demo_run.namespace
    strategy = example_strategy()
    name = strategy["metadata"]["name"]
    pods = _ready_executor_pods(demo_run, name)
    assert pods and all(p["spec"].get("nodeName") for p in pods)
    for pod in pods:
        _assert_keys_only_in_the_signer(pod)
    # the sidecars signed the demo's trades (a "signed" line per signature; a restarted one forgets its log)
    signer_logs = "".join(kubectl("logs", "-n", namespace, p["metadata"]["name"], "-c", SIGNER_CONTAINER).stdout
                          for p in pods)
    assert "signer started" in signer_logs and signer_logs.count('"signed"') >= 1, signer_logs[-3000:]

    chain = read_chain_info(demo_run.state / "chain")
    assert chain is not None and chain.follower_vault_public_key and chain.follower_vault_keypair
    own, second = chain.vault_public_key, chain.follower_vault_public_key
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": EXTRA_VAULT_SECRET, "namespace": namespace,
                           "annotations": {SECRET_BINDING_ANNOTATION: name}},
              "data": {f"{second}.json": base64.b64encode(chain.follower_vault_keypair).decode()}}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    template_before = json.loads(kubectl("get", "deployment", names(name)["deployment"], "-n", namespace,
                                         "-o", "json").stdout)["spec"]["template"]
    vault = Vault(metadata={"name": "second", "namespace": namespace},
                  spec=VaultSpec.model_validate({"strategy": name, "publicKey": second,
                                                 "secretName": EXTRA_VAULT_SECRET, "secretKey": f"{second}.json"}))
    kubectl("apply", "-f", "-", input=json.dumps(vault.to_wire()))

    def vault_active() -> bool:
        obj = json.loads(kubectl("get", "vault", "second", "-n", namespace, "-o", "json").stdout)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))

    wait_for(vault_active, 120, "Vault second Ready", interval=2,
             describe=lambda: kubectl("get", "vault", "second", "-n", namespace, "-o", "yaml", check=False).stdout)
    # a Vault naming a new Secret rolls the pods once: the projected keys directory, in the signer only
    wait_for(lambda: json.loads(kubectl("get", "deployment", names(name)["deployment"], "-n", namespace,
                                        "-o", "json").stdout)["spec"]["template"] != template_before, 120,
             "the executor Deployment to project the second vault's Secret", interval=2)
    kubectl("rollout", "status", f"deployment/{names(name)['deployment']}", "-n", namespace, "--timeout=300s",
            timeout=330)
    pods = _ready_executor_pods(demo_run, name)
    for pod in pods:
        _assert_keys_only_in_the_signer(pod)
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "vault")
        assert {"secret": {"name": EXTRA_VAULT_SECRET}} in volume["projected"]["sources"]

    fills_before = {v: successful_fills(chain.rpc_url, v) for v in (own, second)}
    sol_before = {v: token_balance(chain.rpc_url, v, chain.output_mint) for v in (own, second)}
    lead = (strategy["spec"].get("traders") or [])[0]
    trade = {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
             "metadata": {"name": f"{name}-fanout", "namespace": namespace},
             "spec": {"strategy": name, "leadTrader": lead,
                      "leadSignature": str(Signature.from_bytes(secrets.token_bytes(64))),
                      "inputMint": chain.input_mint, "outputMint": chain.output_mint,
                      "amount": 1_000_000, "notionalUsd": 1.0}}
    CopyTrade.model_validate(trade)
    kubectl("create", "-f", "-", input=json.dumps(trade))

    def fanned_out() -> dict[str, Any] | None:
        status = json.loads(kubectl("get", "copytrade", f"{name}-fanout", "-n", namespace, "-o", "json")
                            .stdout).get("status") or {}
        return status if status.get("phase") in ("CONFIRMED", "FAILED") else None

    status = wait_for(fanned_out, FANOUT_SECONDS, "the fan-out CopyTrade terminal", interval=2,
                      describe=lambda: kubectl("get", "copytrade", f"{name}-fanout", "-n", namespace, "-o", "yaml").stdout)
    assert status["phase"] == "CONFIRMED", status
    assert status["vaults"]["total"] == 2 and status["vaults"]["confirmed"] == 2, status

    # judged from the chain: one more successful swap per vault, and each bought SOL
    def new_fills() -> dict[str, set[str]] | None:
        fills = {v: successful_fills(chain.rpc_url, v) - fills_before[v] for v in (own, second)}
        return fills if all(fills.values()) else None

    fills = wait_for(new_fills, 60, "both vaults' swaps visible at confirmed commitment", interval=2)
    assert {v: len(s) for v, s in fills.items()} == {own: 1, second: 1}
    for v in (own, second):
        assert token_balance(chain.rpc_url, v, chain.output_mint) > sol_before[v], v
    for pod in _ready_executor_pods(demo_run, name):
        _assert_keys_only_in_the_signer(pod)
