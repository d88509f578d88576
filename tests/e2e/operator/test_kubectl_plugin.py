"""`kubectl xorj` end to end: the real kubectl finds the plugin on PATH and runs it as a subprocess
against the real local API server, with the real operator mirroring a real Postgres ledger, and a
read-only ledger login (migration 0011) for scores and the halt."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.postgres import LEDGER_OWNER_PASSWORD
from tests.polling import wait_for
from tests.unit.controller.factories import PUBKEY_A, VAULT
from xorj.domain.trades import ReasonCode
from xorj.ledger import Ledger
from xorj.ledger.reader_roles import ensure_reader_login
from xorj.ledger.records import StoredTraderScore

from .conftest import Kubectl
from .ledger_driver import LedgerDriver
from .manifests import copytrade, signature, strategy

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

READER_PASSWORD = "reader-" + uuid.uuid4().hex


class Plugin:
    """`kubectl xorj ...` through the cluster's own kubectl, with the console script setuptools would
    install (``kubectl-xorj`` calling ``xorj.kubectl.cli:main``) first on PATH."""

    def __init__(self, kube: Kubectl, bin_dir: Path, reader_dsn: str):
        self.kube = kube
        self.reader_dsn = reader_dsn
        self.env = dict(os.environ)
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
        self.kubectl = str(kube.cluster.bin_dir / "kubectl")

    def run(self, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.kubectl, "xorj", *args], capture_output=True, text=True, timeout=120,
                                env={**self.env, **(env or {})}, check=False)
        assert "Traceback" not in result.stderr, result.stderr
        for secret in (self.reader_dsn, READER_PASSWORD, LEDGER_OWNER_PASSWORD):
            assert secret not in result.stdout + result.stderr, "a secret was printed"
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl xorj {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-n", self.kube.namespace, "-o", "json").stdout)


@pytest.fixture
def plugin(kube: Kubectl, tmp_path: Path, ledger_owner_dsn: str) -> Plugin:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl-xorj"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom xorj.kubectl.cli import main\nsys.exit(main())\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    reader_dsn = ensure_reader_login(ledger_owner_dsn, f"oncall_{uuid.uuid4().hex[:10]}", READER_PASSWORD)
    return Plugin(kube, bin_dir, reader_dsn)


def _phase(kube: Kubectl, name: str, phase: str):
    def check():
        obj = kube.get("copytrade", name)
        return obj if obj and (obj.get("status") or {}).get("phase") == phase else None
    return check


def test_trades_explain_status_and_scores(kube: Kubectl, operators, ledger: Ledger, plugin: Plugin) -> None:
    operators()
    kube.apply(strategy("alpha"))
    kube.apply(copytrade("ct-ok", "alpha", signature("lead-ok")))
    kube.apply(copytrade("ct-bad", "alpha", signature("lead-bad")))
    ok = wait_for(_phase(kube, "ct-ok", "PENDING"), 60, "ct-ok admitted")
    bad = wait_for(_phase(kube, "ct-bad", "PENDING"), 60, "ct-bad admitted")
    ok_id, bad_id = int(ok["status"]["tradeId"]), int(bad["status"]["tradeId"])

    # an executor's writes: ct-ok fails on slippage, is retried and confirms; ct-bad is refused by risk
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")
    driver.claim_all()
    first = driver.submit(ok_id, slippage_bps=100)
    driver.slippage_failure(first)
    second = driver.submit(ok_id, slippage_bps=150)
    driver.confirm(ok_id, second)
    driver.fail(bad_id, ReasonCode.RISK_LIMIT, "daily volume over maxDailyVolumeUsd")
    wait_for(_phase(kube, "ct-ok", "CONFIRMED"), 60, "ct-ok CONFIRMED")
    wait_for(_phase(kube, "ct-bad", "FAILED"), 60, "ct-bad FAILED")
    ledger.upsert_trader_scores([StoredTraderScore(PUBKEY_A, 47.3, "ELIGIBLE", rank=1, normalization="fixed"),
                                 StoredTraderScore(VAULT, 12.0, "ELIGIBLE", rank=2, normalization="fixed")])

    # trades: both, then filtered; the table too
    items = plugin.json("trades")["items"]
    assert {(t["name"], t["state"], t["tradeId"]) for t in items} == {
        ("ct-ok", "CONFIRMED", str(ok_id)), ("ct-bad", "FAILED", str(bad_id))}
    assert [t["name"] for t in plugin.json("trades", "--state", "FAILED")["items"]] == ["ct-bad"]
    assert plugin.json("trades", "--strategy", "other")["items"] == []
    assert len(plugin.json("trades", "--since", "10m")["items"]) == 2
    table = plugin.run("trades", "-n", kube.namespace).stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "STRATEGY", "TRADE", "STATE", "ATTEMPTS"]
    assert any(line.split()[:5] == ["ct-bad", "alpha", str(bad_id), "FAILED", "0"] for line in table[1:])

    # explain, by CopyTrade name and by the ledger's trade id
    story = plugin.json("explain", "ct-ok")
    assert [(a["number"], a["signature"], a["outcome"], a["reason"], a["slippageBps"])
            for a in story["attemptsDetail"]] == [(1, first, "FAILED_ON_CHAIN", "SLIPPAGE_EXCEEDED", 100),
                                                  (2, second, "LANDED", None, 150)]
    assert story["attemptsDetail"][1]["explorer"] == f"https://explorer.solana.com/tx/{second}"
    assert story["finalSignature"] == second
    by_id = plugin.run("explain", str(bad_id), "-n", kube.namespace, "--cluster", "devnet").stdout
    assert "RISK_LIMIT" in by_id and "daily volume over maxDailyVolumeUsd" in by_id and "nothing was signed" in by_id

    # status: leaders with the ledger's fresh scores, vault, today's counts, halt, executors, failures
    view = plugin.json("status", "alpha", "--ledger-dsn", plugin.reader_dsn)
    assert view["strategy"] == f"{kube.namespace}/alpha"
    assert view["leaders"] == [{"wallet": PUBKEY_A, "trustScore": 47.3, "status": "ELIGIBLE", "rank": 1,
                                "scoreFrom": "ledger"}]
    assert view["vault"] == {"publicKey": VAULT, "secretName": "vault-keypair"}
    assert view["today"]["sent"] == 1 and view["today"]["admitted"] == 2 and view["today"]["maxDailyTrades"] == 100
    assert view["trades"]["confirmed"] == 1 and view["trades"]["failed"] == 1
    assert view["halt"]["ledger"]["halted"] is False and view["halt"]["ledgerError"] is None
    assert view["executors"]["deployment"] == "alpha-executor" and view["executors"]["desired"] == 1
    assert [(f["name"], f["reason"]) for f in view["lastFailures"]] == [("ct-bad", "RISK_LIMIT")]
    text = plugin.run("status", "alpha", "-n", kube.namespace, env={"XORJ_LEDGER_READER_DSN": plugin.reader_dsn}).stdout
    assert "47.3" in text and "Halt:       off (ledger)" in text and "RISK_LIMIT" in text

    # scores: the strategy's pool (its explicit traders), and every scored trader
    pool = plugin.json("scores", "alpha", "--ledger-dsn", plugin.reader_dsn)
    assert [(s["wallet"], s["score"], s["followed"]) for s in pool["scores"]] == [(PUBKEY_A, 47.3, True)]
    everyone = plugin.json("scores", "--ledger-dsn", plugin.reader_dsn)
    assert [s["wallet"] for s in everyone["scores"]] == [PUBKEY_A, VAULT]


def test_pause_and_resume_drive_the_strategy(kube: Kubectl, operators, plugin: Plugin) -> None:
    operators()
    kube.apply(strategy("alpha"))
    wait_for(lambda: kube.get("deployment", "alpha-executor"), 60, "the executor Deployment")

    assert plugin.json("pause", "alpha") == {"strategy": f"{kube.namespace}/alpha", "paused": True}
    assert kube.get("tradingstrategy", "alpha")["spec"]["paused"] is True
    wait_for(lambda: (kube.get("deployment", "alpha-executor") or {}).get("spec", {}).get("replicas") == 0, 60,
             "executors scaled to zero")
    paused = plugin.json("status", "alpha")
    assert paused["paused"] is True

    out = plugin.run("resume", "alpha", "-n", kube.namespace).stdout
    assert "resumed" in out
    wait_for(lambda: (kube.get("deployment", "alpha-executor") or {}).get("spec", {}).get("replicas") == 1, 60,
             "executors back")


def test_errors_are_one_line_with_a_hint(kube: Kubectl, plugin: Plugin) -> None:
    missing = plugin.run("status", "nope", "-n", kube.namespace, check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1
    assert f"tradingstrategy {kube.namespace}/nope not found" in missing.stderr and "(hint: " in missing.stderr

    no_trade = plugin.run("explain", "ghost", "-n", kube.namespace, check=False)
    assert no_trade.returncode == 1 and "no CopyTrade 'ghost'" in no_trade.stderr

    # the API server's CEL refusal comes back as one line naming the rule
    kube.apply(strategy("alpha", executor={"replicas": 0}, paused=True))
    refused = plugin.run("resume", "alpha", "-n", kube.namespace, check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "spec.executor.replicas may be 0 only with spec.paused: true" in refused.stderr

    bad_dsn = plugin.reader_dsn.replace(f"password={READER_PASSWORD}", "password=not-it")
    assert bad_dsn != plugin.reader_dsn
    denied = plugin.run("scores", "--ledger-dsn", bad_dsn, check=False)
    assert denied.returncode == 1 and denied.stderr.count("\n") == 1
    assert "cannot connect to the ledger" in denied.stderr and "not-it" not in denied.stderr


def _operator_deployment(namespace: str) -> dict[str, Any]:
    """The operator Deployment as the chart renders it (labels, container name, halt env)."""
    labels = {"app.kubernetes.io/name": "xorj-operator", "app.kubernetes.io/instance": "xorj",
              "app.kubernetes.io/component": "operator", "app.kubernetes.io/part-of": "xorj-operator"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "xorj-operator", "namespace": namespace, "labels": labels},
            "spec": {"replicas": 0, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": {k: labels[k] for k in list(labels)[:3]}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                         "name": "operator", "image": "xorj-operator:test", "args": ["operator"],
                         "env": [{"name": "XORJ_LEDGER_DSN", "valueFrom": {"secretKeyRef": {"name": "xorj-ledger",
                                                                                            "key": "dsn"}}},
                                 {"name": "XORJ_OPERATOR_GLOBAL_HALT", "value": "false"}]}]}}}}


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_halt_sets_the_operators_setting_which_the_operator_enforces(kube: Kubectl, operators, ledger: Ledger,
                                                                     plugin: Plugin) -> None:
    kube.apply(_operator_deployment(kube.namespace))
    refused = plugin.run("halt", "--operator-namespace", kube.namespace, check=False)
    assert refused.returncode == 1 and "needs --all" in refused.stderr
    assert _env(kube.get("deployment", "xorj-operator"))["XORJ_OPERATOR_GLOBAL_HALT"] == "false"

    done = json.loads(plugin.run("halt", "--all", "--reason", "incident 42", "--operator-namespace", kube.namespace,
                                 "-o", "json").stdout)
    assert done == {"halted": True, "operators": [{"deployment": f"{kube.namespace}/xorj-operator", "halted": True,
                                                   "reason": "incident 42"}]}
    env = _env(kube.get("deployment", "xorj-operator"))
    assert env["XORJ_OPERATOR_GLOBAL_HALT"] == "true" and env["XORJ_OPERATOR_GLOBAL_HALT_REASON"] == "incident 42"
    container = kube.get("deployment", "xorj-operator")["spec"]["template"]["spec"]["containers"][0]
    assert "XORJ_LEDGER_DSN" in [e["name"] for e in container["env"]]  # the patch merged, it did not replace

    # the operator started with that Deployment's setting enforces it in the ledger; status shows both
    operators(extra_env={k: v for k, v in env.items() if k.startswith("XORJ_OPERATOR_GLOBAL_HALT")})
    wait_for(lambda: ledger.trading_halt().halted, 60, "the operator to enforce the halt")
    kube.apply(strategy("alpha"))
    view = plugin.json("status", "alpha", "--ledger-dsn", plugin.reader_dsn)
    assert view["halt"]["ledger"]["halted"] is True and view["halt"]["ledger"]["reason"] == "incident 42"
    assert {"deployment": f"{kube.namespace}/xorj-operator", "halted": True, "reason": "incident 42"} in \
        view["halt"]["operators"]

    lifted = plugin.run("unhalt", "--operator-namespace", kube.namespace).stdout
    assert "lifted" in lifted and "operator.globalHalt=false" in lifted
    env = _env(kube.get("deployment", "xorj-operator"))
    assert env["XORJ_OPERATOR_GLOBAL_HALT"] == "false" and "XORJ_OPERATOR_GLOBAL_HALT_REASON" not in env


@pytest.mark.chain
def test_explain_asks_the_chain_for_each_attempts_slot(kube: Kubectl, operators, ledger: Ledger, plugin: Plugin,
                                                       local_chain) -> None:
    """--rpc-url: the slot of an attempt that landed on the (local, LiteSVM) chain, and "not found" for
    one the chain never saw."""
    import base64

    from solders.hash import Hash
    from solders.keypair import Keypair
    from solders.message import MessageV0
    from solders.system_program import TransferParams, transfer
    from solders.transaction import VersionedTransaction

    from tests.integration.executor.harness import rpc

    operators()
    kube.apply(strategy("alpha"))
    kube.apply(copytrade("landed", "alpha", signature("lead-landed")))
    kube.apply(copytrade("unseen", "alpha", signature("lead-unseen")))
    landed_id = int(wait_for(_phase(kube, "landed", "PENDING"), 60, "admitted")["status"]["tradeId"])
    unseen_id = int(wait_for(_phase(kube, "unseen", "PENDING"), 60, "admitted")["status"]["tradeId"])
    driver = LedgerDriver(ledger, f"{kube.namespace}/alpha")
    driver.claim_all()

    vault = Keypair.from_bytes(local_chain.vault_keypair_bytes(local_chain.take_vault()))
    blockhash = rpc(local_chain.rpc_url, "getLatestBlockhash", [{"commitment": "confirmed"}])["value"]["blockhash"]
    pay = transfer(TransferParams(from_pubkey=vault.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1_000_000))
    message = MessageV0.try_compile(vault.pubkey(), [pay], [], Hash.from_string(blockhash))
    tx = VersionedTransaction(message, [vault])
    sig = str(tx.signatures[0])
    ledger.record_attempt(landed_id, driver.owner, sig, bytes(tx), 1000, 100, fencing_token=driver.tokens[landed_id])
    rpc(local_chain.rpc_url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
    on_chain = wait_for(lambda: rpc(local_chain.rpc_url, "getSignatureStatuses",
                                    [[sig], {"searchTransactionHistory": True}])["value"][0],
                        30, "the transfer to land")
    unseen_sig = driver.submit(unseen_id)
    wait_for(lambda: (kube.get("copytrade", "landed") or {}).get("status", {}).get("attemptCount") == 1, 60,
             "the attempt mirrored")
    wait_for(lambda: (kube.get("copytrade", "unseen") or {}).get("status", {}).get("attemptCount") == 1, 60,
             "the attempt mirrored")

    story = plugin.json("explain", "landed", "--rpc-url", local_chain.rpc_url, "--cluster", "custom")
    [attempt] = story["attemptsDetail"]
    assert attempt["signature"] == sig and attempt["slot"] == on_chain["slot"] and attempt["slot"] > 0
    assert attempt["confirmation"] in ("processed", "confirmed", "finalized") and attempt["chainError"] is None
    assert attempt["explorer"].startswith(f"https://explorer.solana.com/tx/{sig}?cluster=custom&customUrl=http")
    text = plugin.run("explain", "unseen", "-n", kube.namespace, "--rpc-url", local_chain.rpc_url).stdout
    assert unseen_sig in text and "not found" in text


TENANT_RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: tenant}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: xorj-viewer}
rules:
  - apiGroups: [trading.xorj.io]
    resources: [copytrades, tradingstrategies]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-views-xorj}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: xorj-viewer}
subjects:
  - {kind: ServiceAccount, name: tenant}
"""


def test_what_a_tenant_sees_is_what_its_rbac_grants(kube: Kubectl, plugin: Plugin, tmp_path: Path) -> None:
    """Trades come through the API server, so a tenant allowed to read its own namespace lists its
    trades there, and is refused (one line) another namespace's, every namespace, and the levers."""
    cluster = kube.cluster
    other = f"{kube.namespace[:50]}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.apply(TENANT_RBAC, namespace=kube.namespace)
        kube.apply(copytrade("mine", "alpha", signature("lead-mine")))
        cluster.apply(json.dumps(copytrade("theirs", "alpha", signature("lead-theirs"))), namespace=other)
        token = cluster.kubectl("create", "token", "tenant", "-n", kube.namespace, "--duration=10m").stdout.strip()
        config = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
        config["users"] = [{"name": "tenant", "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = "tenant"
        config["contexts"][0]["context"]["namespace"] = kube.namespace
        path = tmp_path / "tenant.kubeconfig"
        path.write_text(json.dumps(config))
        as_tenant = {"KUBECONFIG": str(path)}

        # the context's namespace is the default, as for kubectl
        listed = json.loads(plugin.run("trades", "-o", "json", env=as_tenant).stdout)["items"]
        assert [(t["namespace"], t["name"], t["state"]) for t in listed] == [(kube.namespace, "mine", "UNADMITTED")]
        for args in (["trades", "-n", other], ["trades", "-A"], ["pause", "alpha"], ["explain", "theirs", "-n", other]):
            refused = plugin.run(*args, check=False, env=as_tenant)
            assert refused.returncode == 1, (args, refused.stdout)
            assert refused.stderr.count("\n") == 1 and "refused access" in refused.stderr, refused.stderr
            assert "theirs" not in refused.stdout
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", "--ignore-not-found", check=False)
