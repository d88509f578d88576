"""The chart's watcher: off by default; on, a Deployment running `xorj watcher` with the ledger DSN
and the webhook token from Secrets (never inline), a Role per watched namespace with exactly the
verbs it uses, the bundled ledger admitting it, and a clear refusal without an RPC or price API."""

from __future__ import annotations

import pytest

from tests.unit.chart.helm import named, of_kind, render, template
from xorj.watcher.settings import WatcherSettings

ON = ("watcher.enabled=true", "watcher.rpcUrl=https://rpc.example", "watcher.priceApiUrl=https://api.example/price/v3",
      "networkPolicy.rpc.cidrs={198.51.100.0/24}", "networkPolicy.swapApi.cidrs={203.0.113.0/24}",
      "watcher.webhook.tokenSecret.name=helius-token", "watchNamespaces={team-a,team-b}", "watcher.wsUrl=wss://rpc.example")


def test_off_by_default() -> None:
    assert not [d for d in render() if d["metadata"]["name"].endswith("-watcher")]


def test_the_watcher_deployment_and_its_settings() -> None:
    docs = render(*ON)
    deployment = named(docs, "Deployment", "xorj-watcher")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["watcher"]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["XORJ_LEDGER_DSN"]["valueFrom"]
    assert env["XORJ_WATCHER_WEBHOOK_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "helius-token", "key": "token"}
    assert env["XORJ_WATCHER_NAMESPACES"]["value"] == '["team-a","team-b"]'
    assert env["XORJ_WATCHER_WS_URL"]["value"] == "wss://rpc.example"
    # every setting the chart passes is one the watcher reads
    known = {f"XORJ_{name.upper()}" for name in WatcherSettings.model_fields}
    assert set(env) - known == set()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    for namespace in ("team-a", "team-b"):
        role = named(docs, "Role", "xorj-watcher", namespace)
        verbs = {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]}
        assert verbs == {(("tradingstrategies", "traderpools"), ("list", "watch")), (("copytrades",), ("create",)),
                         (("events",), ("create",))}
    assert not [c for c in of_kind(docs, "ClusterRole") if "watcher" in c["metadata"]["name"]]
    ledger = named(docs, "NetworkPolicy", "xorj-ledger")["spec"]["ingress"][0]["from"]
    assert any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "watcher"
               for p in ledger)


@pytest.mark.parametrize(("missing", "message"), [
    ("watcher.rpcUrl=", "watcher.rpcUrl or watcher.rpcUrlSecret.name is required"),
    ("watcher.priceApiUrl=", "watcher.priceApiUrl is required"),
])
def test_refused_without_its_endpoints(missing: str, message: str) -> None:
    result = template(*ON, missing)
    assert result.returncode != 0 and message in result.stderr
