"""What :class:`xorj.controller.kube.Kube` puts on the wire, read off lightkube's injectable transport
(httpx2's MockTransport, standing in for the Kubernetes API server; the e2e tests in tests/e2e/operator
run the same calls against a real one): server-side apply with our field manager, a merge-patched
status, a uid-guarded delete, Secrets asked for as metadata only, and the shutting-down rule."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx2
import kopf
import pytest
from lightkube import KubeConfig
from lightkube.config.models import Cluster, User

from xorj.controller import metrics
from xorj.controller.freshness import WatchFreshness
from xorj.controller.kube import API_ERRORS, FIELD_MANAGER, METADATA_ONLY, Kube, error_text, status_code

SERVER = "https://api.test"


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}


class FakeApiServer:
    """Records each request and answers with ``answer(request)`` (a status code and a JSON body)."""

    def __init__(self, answer: Callable[[httpx2.Request], tuple[int, dict[str, Any]]]):
        self.answer = answer
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        code, body = self.answer(request)
        return httpx2.Response(code, json=body)


def kube_for(server: FakeApiServer, freshness: WatchFreshness | None = None) -> Kube:
    config = KubeConfig.from_one(cluster=Cluster(server=SERVER), user=User(token="t0ken")).get()
    return Kube(config, freshness or WatchFreshness(stale_after=60), transport=httpx2.MockTransport(server))


def run(kube: Kube, call: Callable[[Kube], Any]) -> Any:
    async def once() -> Any:
        try:
            return await call(kube)
        finally:
            await kube.close()
    return asyncio.run(once())


def test_secrets_are_asked_for_as_metadata_only() -> None:
    """The API server answers a PartialObjectMetadata Accept with the Secret's metadata alone: the
    operator never asks for (so never receives) key material."""
    server = FakeApiServer(lambda _: (200, {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                            "metadata": {"name": "vault", "annotations": {"a": "b"}}}))
    annotations = run(kube_for(server), lambda k: k.secret_annotations("ns1", "vault"))
    assert annotations == {"a": "b"}
    (request,) = server.requests
    assert (request.method, request.url.path) == ("GET", "/api/v1/namespaces/ns1/secrets/vault")
    assert request.headers["accept"] == METADATA_ONLY
    assert request.headers["authorization"] == "Bearer t0ken"


def test_a_missing_secret_is_none_and_another_refusal_raises() -> None:
    answers = iter([(404, status_body(404, "NotFound", 'secrets "vault" not found')),
                    (403, status_body(403, "Forbidden", "secrets is forbidden"))])
    server = FakeApiServer(lambda _: next(answers))

    async def both(kube: Kube) -> tuple[Any, BaseException]:
        missing = await kube.secret_annotations("ns1", "vault")
        with pytest.raises(API_ERRORS) as refused:
            await kube.secret_annotations("ns1", "vault")
        return missing, refused.value

    missing, refused = run(kube_for(server), both)
    assert missing is None
    assert status_code(refused) == 403
    assert error_text(refused) == "403 Forbidden: secrets is forbidden"


def test_children_are_server_side_applied_with_our_field_manager_and_force() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "alpha-executor", "namespace": "ns1", "labels": {"x": "y"}},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"x": "y"}},
                           "template": {"metadata": {"labels": {"x": "y"}},
                                        "spec": {"containers": [{"name": "executor", "image": "xorj:1"}]}}}}
    server = FakeApiServer(lambda r: (200, {**json.loads(r.content), "status": {"readyReplicas": 2}}))
    applied = run(kube_for(server), lambda k: k.apply(deployment))
    (request,) = server.requests
    assert (request.method, request.url.path) == ("PATCH", "/apis/apps/v1/namespaces/ns1/deployments/alpha-executor")
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert dict(request.url.params) == {"fieldManager": FIELD_MANAGER, "force": "true"}
    assert json.loads(request.content) == deployment
    assert applied["status"] == {"readyReplicas": 2} and applied["metadata"]["labels"] == {"x": "y"}


def test_status_is_one_merge_patch_and_the_write_is_reported_to_freshness() -> None:
    freshness = WatchFreshness(stale_after=0.0)
    server = FakeApiServer(lambda r: (200, {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "CopyTrade",
                                            "metadata": {"name": "ct1", "uid": "u-1", "resourceVersion": "42"},
                                            **json.loads(r.content)}))
    before = metrics.STATUS_PATCHES.labels("copytrades")._value.get()
    result = run(kube_for(server, freshness), lambda k: k.patch_status("ns1", "copytrades", "ct1", {"phase": "Done"}))
    (request,) = server.requests
    assert (request.method, request.url.path) == (
        "PATCH", "/apis/trading.xorj.io/v1alpha1/namespaces/ns1/copytrades/ct1/status")
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(request.content) == {"status": {"phase": "Done"}}
    assert result["status"] == {"phase": "Done"}
    assert metrics.STATUS_PATCHES.labels("copytrades")._value.get() == before + 1
    assert freshness.stale(float("inf")) == ["u-1"], "the write was not reported to the watch tracker"


def test_delete_carries_the_uid_precondition_and_a_conflict_or_absence_is_false() -> None:
    answers = iter([(200, {"kind": "Status", "status": "Success"}),
                    (409, status_body(409, "Conflict", "Precondition failed: UID in precondition: u-1")),
                    (404, status_body(404, "NotFound", "gone"))])
    server = FakeApiServer(lambda _: next(answers))

    async def three(kube: Kube) -> list[bool]:
        return [await kube.delete_cr("ns1", "copytrades", "ct1", uid="u-1") for _ in range(3)]

    assert run(kube_for(server), three) == [True, False, False]
    first = server.requests[0]
    assert (first.method, first.url.path) == ("DELETE", "/apis/trading.xorj.io/v1alpha1/namespaces/ns1/copytrades/ct1")
    assert json.loads(first.content) == {"preconditions": {"uid": "u-1"}}


def test_configmaps_are_listed_by_label_selector() -> None:
    server = FakeApiServer(lambda _: (200, {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {},
                                            "items": [{"metadata": {"name": "w1"}, "data": {"wallets": "A"}}]}))
    items = run(kube_for(server), lambda k: k.list_configmaps("ns1", {"z": "1", "a": "2"}))
    assert [(i["metadata"]["name"], i["data"]) for i in items] == [("w1", {"wallets": "A"})]
    (request,) = server.requests
    assert request.url.path == "/api/v1/namespaces/ns1/configmaps"
    assert request.url.params["labelSelector"] == "a=2,z=1"


def test_after_close_a_call_is_a_retry_and_sends_nothing() -> None:
    server = FakeApiServer(lambda _: (200, {}))
    kube = kube_for(server)
    before = metrics.KUBE_REQUESTS.labels("get", "tradingstrategies")._value.get()

    async def late_timer() -> None:
        await kube.close()
        with pytest.raises(kopf.TemporaryError, match="shutting down"):
            await kube.get_cr("ns1", "tradingstrategies", "alpha")

    asyncio.run(late_timer())
    assert server.requests == []
    assert metrics.KUBE_REQUESTS.labels("get", "tradingstrategies")._value.get() == before


def test_kopf_logs_in_with_the_kubeconfig_our_client_reads(tmp_path, monkeypatch) -> None:
    """kopf's watches and our calls use one configuration: KUBECONFIG read at login, its relative
    file paths taken from the kubeconfig's folder."""
    from xorj.controller.handlers import connection_info

    (tmp_path / "ca.crt").write_text("not read here")
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"token": "t0ken\n", "client-certificate-data": "Q0VSVA=="}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
    }
    (tmp_path / "config").write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    info = connection_info(kopf.OperatorSettings())
    assert info.server == "https://127.0.0.1:6443"
    assert info.ca_path == str(tmp_path / "ca.crt")
    assert (info.token, info.certificate_data, info.insecure) == ("t0ken", "Q0VSVA==", False)


def test_kopf_logs_in_with_a_bounded_connection_pool(tmp_path, monkeypatch) -> None:
    """kopf's session (not its own, which opens a connection per request in flight): the same
    server and credentials, at most the watch streams plus KOPF_REQUEST_CONNECTIONS connections."""
    from xorj.controller.handlers import KOPF_REQUEST_CONNECTIONS, KOPF_WATCHES_PER_NAMESPACE, login

    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken\n"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
    }
    (tmp_path / "config").write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    async def log_in(namespaces: list[str]) -> tuple[str, int, str | None]:
        info = await login(settings=kopf.OperatorSettings(), memo=kopf.Memo(namespaces=namespaces))
        try:
            assert isinstance(info, kopf.AiohttpSession)
            return info.server, info.aiohttp_session.connector.limit, info.aiohttp_session.headers.get("Authorization")
        finally:
            await info.aiohttp_session.close()

    assert asyncio.run(log_in(["ns1", "ns2"])) == (
        "https://127.0.0.1:6443", 2 * KOPF_WATCHES_PER_NAMESPACE + KOPF_REQUEST_CONNECTIONS, "Bearer t0ken")
    assert asyncio.run(log_in([]))[1] == KOPF_WATCHES_PER_NAMESPACE + KOPF_REQUEST_CONNECTIONS  # cluster-wide


def test_a_call_on_a_connection_the_server_had_closed_is_tried_once_more() -> None:
    """A pooled keep-alive connection the API server closed fails the read: the call goes again once
    (on a fresh connection); a second failure is the caller's."""
    drops = iter([True, False, True, True])

    def answer(request: httpx2.Request) -> tuple[int, dict[str, Any]]:
        if next(drops):
            raise httpx2.ReadError("connection closed by peer", request=request)
        return 200, {"apiVersion": "trading.xorj.io/v1alpha1", "kind": "TradingStrategy", "metadata": {"name": "a"}}

    server = FakeApiServer(answer)

    async def twice(kube: Kube) -> tuple[Any, BaseException]:
        found = await kube.get_cr("ns1", "tradingstrategies", "a")
        with pytest.raises(httpx2.ReadError) as dropped:
            await kube.get_cr("ns1", "tradingstrategies", "a")
        return found, dropped.value

    found, dropped = run(kube_for(server), twice)
    assert found["metadata"]["name"] == "a" and len(server.requests) == 4
    assert isinstance(dropped, API_ERRORS)


def test_a_connection_dropped_by_the_operators_own_shutdown_is_not_tried_again() -> None:
    """The cleanup handler closed the client under a handler's call in flight: the handler is told to
    retry (kopf logs one line), instead of a second call crashing on the closed client."""
    kube_box: list[Kube] = []

    def answer(request: httpx2.Request) -> tuple[int, dict[str, Any]]:
        kube_box[0]._closed = True  # the close lands while this request is on the wire
        raise httpx2.ReadError("connection closed", request=request)

    server = FakeApiServer(answer)
    kube = kube_for(server)
    kube_box.append(kube)

    async def in_flight() -> None:
        with pytest.raises(kopf.TemporaryError, match="shutting down"):
            await kube.get_cr("ns1", "tradingstrategies", "a")

    asyncio.run(in_flight())
    assert len(server.requests) == 1
