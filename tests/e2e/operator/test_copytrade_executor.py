"""CopyTrades to CONFIRMED and to FAILED with the real executor on the local chain.

kwok runs no containers, so the executor Deployment's pod is played by a local ``xorj executor``
process started with the environment the Deployment gives its container: the ConfigMap (envFrom),
the ledger DSN from the Secret (secretKeyRef), and the vault keypair file (the mounted Secret, here
its local path). Everything else is real: cluster, operator, Postgres ledger, LiteSVM chain.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.polling import wait_for
from xorj.controller.tradingstrategy.desired import VAULT_MOUNT_DIR

from .conftest import Kubectl
from .manifests import copytrade, secret, signature, strategy

STRANGER = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"  # a wallet no strategy here follows
# These tests run the executor container of the operator's Deployment as a local process, and nothing
# here runs a signer sidecar: the operator's opt-out to the executor's in-process keyring.
KEYRING_OPT_OUT = {"XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR": "false"}

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.chain]


def executor_env_from_deployment(kube: Kubectl, deployment: str, keypair_file: Path) -> dict[str, str]:
    """The container environment the Deployment defines, resolved the way a kubelet would."""
    dep = kube.get("deployment", deployment)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(kube.get("configmap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            sec = kube.get("secret", ref["secretKeyRef"]["name"])
            env[item["name"]] = base64.b64decode(sec["data"][ref["secretKeyRef"]["key"]]).decode()
        elif "fieldRef" in ref:
            env[item["name"]] = f"{deployment}-local-{os.getpid()}"
        else:
            env[item["name"]] = item["value"]
    # the Secret volume's mount path, mapped to where the file is on this machine
    assert env["XORJ_VAULT_KEYPAIR_FILE"].startswith(VAULT_MOUNT_DIR + "/")
    env["XORJ_VAULT_KEYPAIR_FILE"] = str(keypair_file)
    env["XORJ_HTTP_HOST"] = "127.0.0.1"
    env["XORJ_HTTP_PORT"] = "0"
    return env


def test_copytrades_confirmed_and_failed_with_the_real_executor(
    kube: Kubectl, operators, local_chain, ledger_dsn: str, tmp_path: Path
) -> None:
    vault = local_chain.take_vault()  # its own: other suites assert this session chain's fills per vault
    keypair_file = local_chain.vaults[vault]
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    kube.apply(secret("xorj-ledger", {"dsn": ledger_dsn}))
    kube.apply(secret("vault-keypair", {"keypair.json": keypair_file.read_text()}, bound_to=("live",)))
    operators(extra_env=KEYRING_OPT_OUT)
    kube.apply(strategy(
        "live",
        vault={"publicKey": vault, "secretName": "vault-keypair"},
        endpoints={"rpcUrl": local_chain.rpc_url, "swapApiUrl": local_chain.swap_api_url},
        risk={"maxTradeNotionalUsd": 100},
    ))
    wait_for(lambda: kube.get("deployment", "live-executor"), 60, "the executor Deployment")
    env = executor_env_from_deployment(kube, "live-executor", keypair_file)
    log_path = tmp_path / "executor.log"
    with open(log_path, "ab") as log:
        executor = subprocess.Popen([sys.executable, "-c", "from xorj.cli import main; main()", "executor"],
                                    env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            one_usdc = 10 ** local_chain.mint_decimals["USDC"]
            kube.apply(copytrade("buy", "live", signature("live-buy"), inputMint=usdc, outputMint=sol,
                                 amount=one_usdc, notionalUsd=1.0))
            # refused by the risk limits before any send: 200 USDC is worth 200 USD > maxTradeNotionalUsd
            # 100, whatever notional the CopyTrade states (the executor computes it from the chain)
            kube.apply(copytrade("too-big", "live", signature("live-too-big"), inputMint=usdc, outputMint=sol,
                                 amount=200 * one_usdc, notionalUsd=1.0))
            # a lead trader the strategy does not follow: refused at admission, never claimed
            kube.apply(copytrade("stranger", "live", signature("live-stranger"), inputMint=usdc, outputMint=sol,
                                 amount=one_usdc, leadTrader=STRANGER))

            def phase(name: str) -> str | None:
                obj = kube.get("copytrade", name)
                return (obj.get("status") or {}).get("phase") if obj else None

            wait_for(lambda: phase("buy") == "CONFIRMED", 120, "buy CONFIRMED")
            wait_for(lambda: phase("too-big") == "FAILED", 120, "too-big FAILED")
            wait_for(lambda: phase("stranger") == "FAILED", 120, "stranger FAILED")
        finally:
            executor.terminate()
            executor.wait(30)
    buy = kube.get("copytrade", "buy")["status"]
    assert buy["attemptCount"] >= 1
    assert buy["attempts"][-1]["outcome"] == "LANDED"
    assert buy["finalSignature"] == buy["attempts"][-1]["signature"]
    # the chain agrees: the final signature is a filled swap of this vault
    wait_for(lambda: buy["finalSignature"] in local_chain.swap_signatures(vault), 30, "the fill on chain")
    too_big = kube.get("copytrade", "too-big")["status"]
    assert too_big["errorReason"] == "RISK_LIMIT"
    assert too_big["errorMessage"].startswith("max_trade_notional: 200.00 USD > limit 100.00 USD")
    assert too_big["attemptCount"] == 0
    stranger = kube.get("copytrade", "stranger")["status"]
    assert stranger["errorReason"] == "LEADER_NOT_FOLLOWED" and stranger["attemptCount"] == 0
    assert "AdmissionRefused" in {e["reason"] for e in kube.events("stranger")}
    assert "Confirmed" in {e["reason"] for e in kube.events("buy")}
    assert "Failed" in {e["reason"] for e in kube.events("too-big")}
    wait_for(lambda: (kube.get("tradingstrategy", "live")["status"]["trades"]
                      == {"pending": 0, "submitted": 0, "confirmed": 1, "failed": 2}), 30, "strategy trade counts")
    assert local_chain.swap_signatures(vault) == [buy["finalSignature"]]  # one fill: only the followed, sized one


def test_the_operators_global_halt_stops_the_executor(
    kube: Kubectl, operators, local_chain, ledger_dsn: str, tmp_path: Path
) -> None:
    """XORJ_OPERATOR_GLOBAL_HALT (the chart's operator.globalHalt) reaches the executor through the
    ledger: a CopyTrade within every limit is refused (RISK_LIMIT kill_switch.global), nothing is sent."""
    from xorj.ledger import Ledger

    vault = local_chain.take_vault()
    keypair_file = local_chain.vaults[vault]
    usdc, sol = local_chain.mints["USDC"], local_chain.mints["SOL"]
    kube.apply(secret("xorj-ledger", {"dsn": ledger_dsn}))
    kube.apply(secret("vault-keypair", {"keypair.json": keypair_file.read_text()}, bound_to=("halted",)))
    operators(extra_env={**KEYRING_OPT_OUT,
                         "XORJ_OPERATOR_GLOBAL_HALT": "true", "XORJ_OPERATOR_GLOBAL_HALT_REASON": "e2e halt"})
    with Ledger.connect(ledger_dsn, apply_migrations=False) as ledger:
        wait_for(lambda: ledger.trading_halt().halted, 30, "the operator's halt in the ledger")
    kube.apply(strategy("halted", vault={"publicKey": vault, "secretName": "vault-keypair"},
                        endpoints={"rpcUrl": local_chain.rpc_url, "swapApiUrl": local_chain.swap_api_url}))
    wait_for(lambda: kube.get("deployment", "halted-executor"), 60, "the executor Deployment")
    env = executor_env_from_deployment(kube, "halted-executor", keypair_file)
    with open(tmp_path / "executor.log", "ab") as log:
        executor = subprocess.Popen([sys.executable, "-c", "from xorj.cli import main; main()", "executor"],
                                    env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            kube.apply(copytrade("held", "halted", signature("halted-held"), inputMint=usdc, outputMint=sol,
                                 amount=10 ** local_chain.mint_decimals["USDC"]))
            wait_for(lambda: ((kube.get("copytrade", "held") or {}).get("status") or {}).get("phase") == "FAILED",
                     120, "held FAILED")
        finally:
            executor.terminate()
            executor.wait(30)
    held = kube.get("copytrade", "held")["status"]
    assert held["errorReason"] == "RISK_LIMIT" and held["attemptCount"] == 0
    assert held["errorMessage"] == "kill_switch.global: all trading is halted (e2e halt)"
    assert local_chain.swap_signatures(vault) == []
