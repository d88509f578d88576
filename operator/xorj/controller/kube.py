"""The Kubernetes API as the reconcilers use it: a few async calls over the official client.

The sync client runs in a dedicated thread pool so the kopf event loop never blocks. Every call is
counted (metrics.KUBE_REQUESTS) and every write's resulting resourceVersion is reported to the watch
freshness tracker.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from xorj.controller import metrics
from xorj.controller.freshness import WatchFreshness
from xorj.controller.models import GROUP, VERSION

T = TypeVar("T")
FIELD_MANAGER = "xorj-operator"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Ask for a Secret's metadata only: its data (key material) never reaches the operator.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

# kind -> (api group/version path, plural) for the children we apply
_CHILD_PATHS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    # only the executor ledger login's Secret (xorj.controller.ledger_logins)
    "Secret": ("/api/v1", "secrets"),
}


def load_config() -> kubernetes.client.ApiClient:
    """In-cluster when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    return kubernetes.client.ApiClient(load_configuration())


def load_configuration() -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        # read KUBECONFIG now: the client's default location is frozen when it is first imported
        kubernetes.config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    return configuration


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


class Kube:
    def __init__(self, api: kubernetes.client.ApiClient, workers: int, freshness: WatchFreshness):
        self._api = api
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xorj-kube")
        self._closed = False
        self.freshness = freshness
        self.custom = kubernetes.client.CustomObjectsApi(api)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            # kopf runs the cleanup handler without waiting for the timers: one may still fire, and
            # is told to retry (kopf logs one line), not crashed on the shut-down pool
            raise kopf.TemporaryError("the operator is shutting down", delay=60)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    def _call(self, verb: str, resource: str, method: str, path: str, body: Any = None,
              content_type: str | None = None, query: list[tuple[str, Any]] | None = None,
              accept: str = "application/json") -> Any:
        """One HTTP request through the client's transport (auth, TLS); JSON in, JSON out."""
        metrics.KUBE_REQUESTS.labels(verb, resource).inc()
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        params = self._api.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*params, _request_timeout=30)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response, body=response.data.decode(errors="replace"))
        return json.loads(response.data) if response.data else None

    # -- custom resources ----------------------------------------------------------------------------

    def _cr_path(self, namespace: str, plural: str, name: str | None = None, sub: str | None = None) -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
        if name:
            path += f"/{name}"
        if sub:
            path += f"/{sub}"
        return path

    async def get_cr(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.run(self._call, "get", plural, "GET", self._cr_path(namespace, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_status(self, namespace: str, plural: str, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        """One merge-PATCH of the status subresource (lists in it are replaced whole). None if gone."""
        metrics.STATUS_PATCHES.labels(plural).inc()
        try:
            result = await self.run(
                self._call, "patch", f"{plural}/status", "PATCH",
                self._cr_path(namespace, plural, name, "status"), {"status": status}, MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        meta = result.get("metadata", {})
        self.freshness.wrote(meta.get("uid", ""), meta.get("resourceVersion"), time.monotonic())
        return result

    async def delete_cr(self, namespace: str, plural: str, name: str, uid: str | None = None) -> bool:
        """Delete (guarded by uid, so a re-created namesake is never hit). False if already gone."""
        body = {"preconditions": {"uid": uid}} if uid else None
        if uid:
            self.freshness.forget(uid)
        try:
            await self.run(self._call, "delete", plural, "DELETE", self._cr_path(namespace, plural, name), body)
            return True
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise

    # -- children ------------------------------------------------------------------------------------

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the API server merges our fields and leaves others' alone; a no-op
        apply changes nothing (same resourceVersion)."""
        base, plural = _CHILD_PATHS[obj["kind"]]
        meta = obj["metadata"]
        path = f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        return await self.run(
            self._call, "apply", plural, "PATCH", path, json.dumps(obj), APPLY_PATCH,
            [("fieldManager", FIELD_MANAGER), ("force", "true")],
        )

    async def list_configmaps(self, namespace: str, match_labels: dict[str, str]) -> list[dict[str, Any]]:
        """ConfigMaps of ``namespace`` carrying every label of ``match_labels`` (a TraderPool's lists)."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        answer = await self.run(self._call, "list", "configmaps", "GET", f"/api/v1/namespaces/{namespace}/configmaps",
                                query=[("labelSelector", selector)])
        return list((answer or {}).get("items") or [])

    async def get_child(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        base, plural = _CHILD_PATHS[kind]
        try:
            return await self.run(self._call, "get", plural, "GET", f"{base}/namespaces/{namespace}/{plural}/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def scale_to_zero(self, kind: str, namespace: str, name: str) -> bool:
        """Set spec.replicas of an existing child to 0 (merge patch: the rest of the object stays as
        applied). False if it does not exist."""
        base, plural = _CHILD_PATHS[kind]
        try:
            await self.run(self._call, "patch", plural, "PATCH",
                           f"{base}/namespaces/{namespace}/{plural}/{name}", {"spec": {"replicas": 0}}, MERGE_PATCH,
                           [("fieldManager", FIELD_MANAGER)])
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    # -- secrets (metadata only) -----------------------------------------------------------------

    async def secret_annotations(self, namespace: str, name: str) -> dict[str, str] | None:
        """The annotations of a Secret, read as PartialObjectMetadata (the API server sends no data).
        None if the Secret does not exist."""
        try:
            meta = await self.run(self._call, "get", "secrets", "GET",
                                  f"/api/v1/namespaces/{namespace}/secrets/{name}", accept=METADATA_ONLY)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict((meta.get("metadata") or {}).get("annotations") or {})
