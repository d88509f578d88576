"""The operator's Kubernetes client (xorj.controller.kube over lightkube) against the real local API
server: a Secret's data never reaches the operator (the server is asked for, and sends, metadata
only), children are server-side applied under our field manager, and a delete is guarded by uid."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from lightkube.config.client_adapter import verify_cluster

from xorj.controller.freshness import WatchFreshness
from xorj.controller.kube import FIELD_MANAGER, Kube, load_config

from .conftest import Kubectl
from .manifests import copytrade, secret, signature, strategy

pytestmark = pytest.mark.cluster

KEY_MATERIAL = "never-for-the-operator-4f2a"


class RecordingTransport(httpx2.AsyncBaseTransport):
    """The real connection to the API server (TLS and client certificate as lightkube sets them up),
    keeping each response's body to look at."""

    def __init__(self) -> None:
        config = load_config()
        assert config.user is not None
        self._inner = httpx2.AsyncHTTPTransport(verify=verify_cluster(config.cluster, config.user, config.abs_file))
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        self.bodies.append(body)
        return httpx2.Response(response.status_code, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def with_kube(call: Callable[[Kube], Any], transport: httpx2.AsyncBaseTransport | None = None) -> Any:
    async def once() -> Any:
        kube = Kube(load_config(), WatchFreshness(stale_after=60), transport=transport)
        try:
            return await call(kube)
        finally:
            await kube.close()
    return asyncio.run(once())


def test_a_secret_is_read_as_metadata_only(kube: Kubectl) -> None:
    kube.create(secret("held-key", {"keypair.json": KEY_MATERIAL}, bound_to=("alpha",)))
    assert KEY_MATERIAL in base64.b64decode(kube.get("secret", "held-key")["data"]["keypair.json"]).decode()
    recording = RecordingTransport()
    annotations = with_kube(lambda k: k.secret_annotations(kube.namespace, "held-key"), recording)
    assert annotations == {"trading.xorj.io/strategies": "alpha"}
    (body,) = recording.bodies
    answer = json.loads(body)
    assert answer["kind"] == "PartialObjectMetadata" and "data" not in answer
    encoded = base64.b64encode(KEY_MATERIAL.encode())
    assert KEY_MATERIAL.encode() not in body and encoded not in body, "the Secret's data reached the operator"
    assert with_kube(lambda k: k.secret_annotations(kube.namespace, "no-such-secret")) is None


def test_kubectls_last_applied_copy_of_a_secret_goes_no_further_than_the_client(kube: Kubectl) -> None:
    """`kubectl apply` keeps the whole Secret, data included, in an annotation: the API server sends
    it with the metadata, and the client drops it before any caller (log, status, Event) sees it."""
    kube.apply(secret("applied-key", {"keypair.json": KEY_MATERIAL}, bound_to=("alpha",)))
    annotations = with_kube(lambda k: k.secret_annotations(kube.namespace, "applied-key"))
    assert annotations == {"trading.xorj.io/strategies": "alpha"}
    assert base64.b64encode(KEY_MATERIAL.encode()).decode() not in json.dumps(annotations)


def test_children_are_server_side_applied_under_our_field_manager(kube: Kubectl) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "applied", "namespace": kube.namespace}, "data": {"a": "1"}}
    first = with_kube(lambda k: k.apply(config_map))
    again = with_kube(lambda k: k.apply(config_map))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], "a no-op apply wrote"
    shown = json.loads(kube.run("get", "configmap", "applied", "-o", "json", "--show-managed-fields").stdout)
    managers = {(m["manager"], m["operation"]) for m in shown["metadata"]["managedFields"]}
    assert managers == {(FIELD_MANAGER, "Apply")}
    kube.run("patch", "configmap", "applied", "--type=merge", "-p", '{"data": {"a": "by-hand"}}')
    with_kube(lambda k: k.apply(config_map))  # force: our field is ours again
    assert kube.get("configmap", "applied")["data"] == {"a": "1"}


def test_a_delete_is_guarded_by_uid(kube: Kubectl) -> None:
    kube.apply(strategy("alpha"))
    kube.apply(copytrade("guarded", "alpha", signature("guarded")))
    uid = kube.get("copytrade", "guarded")["metadata"]["uid"]
    assert not with_kube(lambda k: k.delete_cr(kube.namespace, "copytrades", "guarded", uid="not-" + uid))
    assert kube.get("copytrade", "guarded") is not None, "a delete for another uid removed the object"
    assert with_kube(lambda k: k.delete_cr(kube.namespace, "copytrades", "guarded", uid=uid))
    assert not with_kube(lambda k: k.delete_cr(kube.namespace, "copytrades", "guarded", uid=uid))
