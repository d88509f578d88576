"""The Kubernetes API as the reconcilers use it: a few calls over lightkube's AsyncClient, on kopf's
event loop (no thread pool).

Every call is counted (metrics.KUBE_REQUESTS) and every status write's resulting resourceVersion is
reported to the watch freshness tracker. Errors are lightkube's ApiError (the API server's answer)
or httpx2's transport errors (no answer): :data:`API_ERRORS` names both for the callers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import kopf
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ConfigError
from lightkube.core.resource import NamespacedResource, api_info
from lightkube.generic_resource import GenericNamespacedResource, create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Secret, Service
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import PatchType

from xorj.controller import metrics
from xorj.controller.freshness import WatchFreshness
from xorj.controller.models import GROUP, VERSION

FIELD_MANAGER = "xorj-operator"
# Ask for a Secret's metadata only: its data (key material) never reaches the operator.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# what a failed call raises: the API server's refusal (ApiError), or no answer at all
API_ERRORS: tuple[type[BaseException], ...] = (ApiError, httpx2.HTTPError, OSError)

DROPPED_CONNECTION = (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError)
T = TypeVar("T")

# our custom resources, by plural (the reconcilers name them so)
CUSTOM_RESOURCES: dict[str, type[GenericNamespacedResource]] = {
    plural: create_namespaced_resource(GROUP, VERSION, kind, plural)
    for kind, plural in (("TradingStrategy", "tradingstrategies"), ("CopyTrade", "copytrades"),
                         ("TraderPool", "traderpools"), ("Vault", "vaults"))
}
_KOPF_PEERING = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")
_CLUSTER_KOPF_PEERING = create_global_resource("kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings")
# the children we apply, by kind
_CHILDREN: dict[str, type[NamespacedResource]] = {
    "ConfigMap": ConfigMap,
    "Service": Service,
    "Deployment": Deployment,
    "PodDisruptionBudget": PodDisruptionBudget,
    # only the executor ledger login's Secret (xorj.controller.ledger_logins)
    "Secret": Secret,
}


def load_config() -> SingleConfig:
    """In-cluster when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config), read
    now (not when a module was first imported)."""
    config = KubeConfig.from_env().get()
    if config is None:
        raise ConfigError("the kubeconfig names no current context")
    return config


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of the API server's refusal; None for an error with no answer."""
    return exc.status.code if isinstance(exc, ApiError) else None


def error_reason(exc: BaseException) -> str:
    """The HTTP reason of the API server's refusal ("Forbidden"), else the error's type."""
    return exc.response.reason_phrase if isinstance(exc, ApiError) else type(exc).__name__


def error_text(exc: BaseException) -> str:
    """A short description of a failed call: the API server's status and message, not its body."""
    if isinstance(exc, ApiError):
        text = f"{exc.response.status_code} {exc.response.reason_phrase}"
        return text + (f": {exc.status.message}" if exc.status.message else "")
    return f"{type(exc).__name__}: {exc}"


def _wire(obj: Any) -> dict[str, Any]:
    """A decoded object as the reconcilers read it: the API's JSON, a plain dict."""
    wire: dict[str, Any] = obj.to_dict()
    return wire


class Kube:
    def __init__(self, config: SingleConfig, freshness: WatchFreshness,
                 transport: httpx2.AsyncBaseTransport | None = None):
        self._client = AsyncClient(config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(30.0),
                                   transport=transport)
        self._closed = False
        self.freshness = freshness

    def _refuse_if_closed(self) -> None:
        if self._closed:
            # kopf runs the cleanup handler without waiting for the timers: one may still fire, and
            # is told to retry (kopf logs one line), not crashed on the closed client
            raise kopf.TemporaryError("the operator is shutting down", delay=60)

    def _count(self, verb: str, resource: str) -> None:
        self._refuse_if_closed()
        metrics.KUBE_REQUESTS.labels(verb, resource).inc()

    async def _again_if_dropped(self, call: Callable[[], Awaitable[T]]) -> T:
        """One more try of a call whose pooled keep-alive connection the API server had already closed
        (a read or write on a dead connection; not a timeout, not a refusal). The official client's
        urllib3 retried these; every call here is safe to repeat: reads, merge and apply patches, a
        create that answers 409 when repeated, and a delete that then answers 404 (already gone).
        A connection dropped because the operator is shutting down is not tried again: the handler
        is told to retry (in the next operator), as a call begun after the close is."""
        try:
            return await call()
        except DROPPED_CONNECTION:
            self._refuse_if_closed()
            return await call()

    @property
    def config(self) -> SingleConfig:
        """The connection this client uses (the alert deliverer's blocking client uses it too)."""
        return self._client.config

    async def close(self) -> None:
        self._closed = True
        await self._client.close()

    # -- custom resources ----------------------------------------------------------------------------

    async def get_cr(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        self._count("get", plural)
        try:
            return _wire(await self._again_if_dropped(lambda: self._client.get(CUSTOM_RESOURCES[plural], name,
                                                                           namespace=namespace)))
        except ApiError as exc:
            if status_code(exc) == 404:
                return None
            raise

    async def patch_status(self, namespace: str, plural: str, name: str, status: dict[str, Any]) -> dict[str, Any] | None:
        """One merge-PATCH of the status subresource (lists in it are replaced whole). None if gone."""
        metrics.STATUS_PATCHES.labels(plural).inc()
        self._count("patch", f"{plural}/status")
        try:
            result = _wire(await self._again_if_dropped(lambda: self._client.patch(
                CUSTOM_RESOURCES[plural].Status, name, {"status": status}, namespace=namespace,
                patch_type=PatchType.MERGE)))
        except ApiError as exc:
            if status_code(exc) == 404:
                return None
            raise
        meta = result.get("metadata", {})
        self.freshness.wrote(meta.get("uid", ""), meta.get("resourceVersion"), time.monotonic())
        return result

    async def delete_cr(self, namespace: str, plural: str, name: str, uid: str | None = None) -> bool:
        """Delete (guarded by uid, so a re-created namesake is never hit). False if already gone."""
        self._count("delete", plural)
        if uid:
            self.freshness.forget(uid)
        # AsyncClient.delete sends no body, and a uid precondition only travels in one: the same
        # client's request layer (its connection pool, auth and errors) sends the DeleteOptions
        generic = self._client._client  # pylint: disable=protected-access
        request = generic.prepare_request("delete", CUSTOM_RESOURCES[plural], name=name, namespace=namespace)
        if uid:
            request.data = {"preconditions": {"uid": uid}}
        try:
            response = await self._again_if_dropped(lambda: generic.send(generic.build_adapter_request(request)))
            generic.handle_response("delete", response, request)
            return True
        except ApiError as exc:
            if status_code(exc) in (404, 409):
                return False
            raise

    # -- children ------------------------------------------------------------------------------------

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the API server merges our fields and leaves others' alone; a no-op
        apply changes nothing (same resourceVersion)."""
        resource = _CHILDREN[obj["kind"]]
        self._count("apply", api_info(resource).plural)
        meta = obj["metadata"]
        return _wire(await self._again_if_dropped(lambda: self._client.patch(
            resource, meta["name"], obj, namespace=meta["namespace"], patch_type=PatchType.APPLY, force=True)))

    async def list_configmaps(self, namespace: str, match_labels: dict[str, str]) -> list[dict[str, Any]]:
        """ConfigMaps of ``namespace`` carrying every label of ``match_labels`` (a TraderPool's lists)."""
        self._count("list", "configmaps")
        async def listed() -> list[dict[str, Any]]:
            return [_wire(item) async for item in self._client.list(ConfigMap, namespace=namespace,
                                                                    labels=dict(sorted(match_labels.items())))]
        return await self._again_if_dropped(listed)

    async def get_child(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = _CHILDREN[kind]
        self._count("get", api_info(resource).plural)
        try:
            return _wire(await self._again_if_dropped(lambda: self._client.get(resource, name, namespace=namespace)))
        except ApiError as exc:
            if status_code(exc) == 404:
                return None
            raise

    async def scale_to_zero(self, kind: str, namespace: str, name: str) -> bool:
        """Set spec.replicas of an existing child to 0 (merge patch: the rest of the object stays as
        applied). False if it does not exist."""
        resource = _CHILDREN[kind]
        self._count("patch", api_info(resource).plural)
        try:
            await self._again_if_dropped(lambda: self._client.patch(resource, name, {"spec": {"replicas": 0}},
                                                               namespace=namespace, patch_type=PatchType.MERGE))
            return True
        except ApiError as exc:
            if status_code(exc) == 404:
                return False
            raise

    async def ensure_peering(self, name: str, namespace: str | None) -> None:
        """kopf's peering needs its KopfPeering (in ``namespace``) or, with none, ClusterKopfPeering
        object to exist; one that is already there is fine."""
        self._count("create", "peerings")
        peering = (_KOPF_PEERING(metadata={"name": name, "namespace": namespace}) if namespace
                   else _CLUSTER_KOPF_PEERING(metadata={"name": name}))
        try:
            await self._again_if_dropped(lambda: self._client.create(peering))
        except ApiError as exc:
            if status_code(exc) != 409:
                raise

    # -- secrets (metadata only) -----------------------------------------------------------------

    async def secret_annotations(self, namespace: str, name: str) -> dict[str, str] | None:
        """The annotations of a Secret, read as PartialObjectMetadata (the API server sends no data),
        less kubectl's last-applied copy of the Secret. None if the Secret does not exist."""
        self._count("get", "secrets")
        # AsyncClient.get has no Accept header to ask for metadata only: its request layer has
        generic = self._client._client  # pylint: disable=protected-access
        try:
            meta = await self._again_if_dropped(lambda: generic.request("get", Secret, name=name, namespace=namespace,
                                                                   headers={"Accept": METADATA_ONLY}))
        except ApiError as exc:
            if status_code(exc) == 404:
                return None
            raise
        annotations = dict(meta.metadata.annotations or {}) if meta.metadata else {}
        # `kubectl apply` (client-side) copies the whole Secret, data included, into this annotation:
        # metadata only cannot keep the server from sending it, so it goes no further than here
        annotations.pop(LAST_APPLIED, None)
        return annotations
