"""The Kubernetes API as ``kubectl xorj`` uses it: the same kubeconfig, context and namespace as kubectl,
JSON in and out through the official client's transport (auth, TLS), and errors turned into one line.

Reads go where the person's own RBAC lets them: CopyTrade and TradingStrategy statuses (the ledger's
trades as the operator mirrors them), executor Deployments and pods, and executor metrics through the
API server's pod proxy. Writes: a TradingStrategy's ``spec.paused`` and the operator Deployment's halt
setting. Secrets are never read.
"""

from __future__ import annotations

import json
import os
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from xorj.controller.models import GROUP, VERSION
from xorj.kubectl.errors import PluginError

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
FIELD_MANAGER = "kubectl-xorj"
# The chart's labels on the operator Deployment (charts/xorj-operator/templates/operator-deployment.yaml).
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator,app.kubernetes.io/part-of=xorj-operator"
OPERATOR_CONTAINER = "operator"
HALT_ENV = "XORJ_OPERATOR_GLOBAL_HALT"
HALT_REASON_ENV = "XORJ_OPERATOR_GLOBAL_HALT_REASON"
TIMEOUT_SECONDS = 15

_KIND_HINTS = {
    "tradingstrategies": "kubectl get tradingstrategies -n {ns}",
    "copytrades": "kubectl xorj trades -n {ns}",
}


class Cluster:
    """One API server, as the kubeconfig (``--kubeconfig``, else KUBECONFIG, else ~/.kube/config) and
    ``--context`` name it."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        config_file = kubeconfig or os.environ.get("KUBECONFIG") or None
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(config_file=config_file, context=context,
                                               client_configuration=configuration)
            _, active = kubernetes.config.list_kube_config_contexts(config_file=config_file)
            if context:
                contexts, _ = kubernetes.config.list_kube_config_contexts(config_file=config_file)
                active = next((c for c in contexts if c["name"] == context), active)
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise PluginError(f"cannot load the kubeconfig: {exc}",
                              "set KUBECONFIG or pass --kubeconfig, and --context if needed") from None
        self.default_namespace: str = (active or {}).get("context", {}).get("namespace") or "default"
        self.server: str = configuration.host
        self._api = kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        self._api.close()

    # -- transport -----------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, content_type: str | None = None,
             query: list[tuple[str, Any]] | None = None, accept: str = "application/json") -> Any:
        """One HTTP request; JSON (or text for ``accept`` text/plain) back. ApiException on non-2xx."""
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        params = self._api.param_serialize(method=method, resource_path=path, query_params=query or [],
                                           header_params=headers, body=body, auth_settings=["BearerToken"])
        try:
            response = self._api.call_api(*params, _request_timeout=TIMEOUT_SECONDS)
            response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise PluginError(f"cannot reach the Kubernetes API server at {self.server} ({type(exc).__name__})",
                              "check that the cluster is up and the kubeconfig context is the right one") from None
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response, body=response.data.decode(errors="replace"))
        if not response.data:
            return None
        return json.loads(response.data) if accept == "application/json" else response.data.decode(errors="replace")

    def _cr_path(self, namespace: str | None, plural: str, name: str | None = None) -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"/apis/{GROUP}/{VERSION}{where}/{plural}" + (f"/{name}" if name else "")

    # -- reads ---------------------------------------------------------------------------------------

    def get_strategy(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.call("GET", self._cr_path(namespace, "tradingstrategies", name))
        except ApiException as exc:
            raise api_error(exc, f"tradingstrategy {namespace}/{name}", namespace, "tradingstrategies") from None

    def list_copytrades(self, namespace: str | None) -> list[dict[str, Any]]:
        try:
            return list(self.call("GET", self._cr_path(namespace, "copytrades")).get("items") or [])
        except ApiException as exc:
            raise api_error(exc, "copytrades", namespace, "copytrades") from None

    def get_copytrade(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", self._cr_path(namespace, "copytrades", name))
        except ApiException as exc:
            if exc.status == 404 and "could not find the requested resource" not in _server_message(exc):
                return None  # the object is missing (the CRD itself missing is an error)
            raise api_error(exc, f"copytrade {namespace}/{name}", namespace, "copytrades") from None

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, f"deployment {namespace}/{name}", namespace) from None

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        try:
            return list(self.call("GET", f"/api/v1/namespaces/{namespace}/pods",
                                  query=[("labelSelector", selector)]).get("items") or [])
        except ApiException as exc:
            raise api_error(exc, "pods", namespace) from None

    def pod_metrics(self, namespace: str, pod: str, port: int) -> str | None:
        """A pod's Prometheus metrics text through the API server's proxy; None when the pod cannot be
        reached (not running, no proxy right)."""
        try:
            return self.call("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/metrics",
                             accept="text/plain") or ""
        except (ApiException, PluginError):
            return None

    def operator_deployments(self, namespace: str | None) -> list[dict[str, Any]]:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments" if namespace else "/apis/apps/v1/deployments"
        try:
            return list(self.call("GET", path, query=[("labelSelector", OPERATOR_SELECTOR)]).get("items") or [])
        except ApiException as exc:
            raise api_error(exc, "operator deployments", namespace) from None

    # -- writes --------------------------------------------------------------------------------------

    def set_paused(self, namespace: str, name: str, paused: bool) -> dict[str, Any]:
        try:
            return self.call("PATCH", self._cr_path(namespace, "tradingstrategies", name),
                             {"spec": {"paused": paused}}, MERGE_PATCH, [("fieldManager", FIELD_MANAGER)])
        except ApiException as exc:
            raise api_error(exc, f"tradingstrategy {namespace}/{name}", namespace, "tradingstrategies") from None

    def set_operator_halt(self, namespace: str, name: str, halted: bool, reason: str | None) -> dict[str, Any]:
        """Set the operator's halt setting (the env the chart's operator.globalHalt renders): the
        operator pod restarts with it and enforces it in the ledger at start and on every resync."""
        env: list[dict[str, Any]] = [{"name": HALT_ENV, "value": "true" if halted else "false"}]
        env.append({"name": HALT_REASON_ENV, "value": reason} if halted and reason
                   else {"name": HALT_REASON_ENV, "$patch": "delete"})
        patch = {"spec": {"template": {"spec": {"containers": [{"name": OPERATOR_CONTAINER, "env": env}]}}}}
        try:
            return self.call("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", patch,
                             STRATEGIC_MERGE_PATCH, [("fieldManager", FIELD_MANAGER)])
        except ApiException as exc:
            raise api_error(exc, f"deployment {namespace}/{name}", namespace) from None


def api_error(exc: ApiException, what: str, namespace: str | None, plural: str | None = None) -> PluginError:
    """The API server's refusal as one line with a hint."""
    message = _server_message(exc)
    if exc.status == 404:
        if "the server could not find the requested resource" in message and plural:
            return PluginError(f"the {plural}.{GROUP} API is not installed on this cluster",
                               "install the CRDs: xorj crds | kubectl apply --server-side -f -")
        hint = _KIND_HINTS.get(plural or "", "kubectl get {what} -n {ns}").format(ns=namespace or "default",
                                                                                 what=what.split()[0])
        return PluginError(f"{what} not found", f"list what exists: {hint}")
    if exc.status in (401, 403):
        return PluginError(f"the API server refused access to {what}: {message}",
                           "ask for RBAC on this resource, or use another --context")
    if exc.status == 422:
        return PluginError(f"the API server refused the change to {what}: {message}",
                           "the message names the field and rule that refused it")
    return PluginError(f"the API server answered {exc.status} for {what}: {message}", "try again; check the API server")


def _server_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)
