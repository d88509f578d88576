"""`xorj dev up --ledger ha`: the chart's own highly available ledger on the real node.

The chart is installed with ``ledger.mode=ha``: Patroni's StatefulSet (Kubernetes as its
configuration store, on Endpoints), strict synchronous replication, the Service
``<release>-postgresql`` whose Endpoints are Patroni's leader lock (only the member holding it is
behind the Service; the controller-manager mirrors them into the EndpointSlice kube-proxy routes by),
the PodDisruptionBudget and the anti-affinity (soft, so that the one real node runs every member).
Every DSN made here carries ``target_session_attrs=read-write``: a connection that lands on a member
not taking writes is refused at connect time. What the development environment adds:

- the image ``localhost/xorj-patroni`` built from images/patroni/Containerfile and loaded into the
  node (cached by the recipe's hash, as the project's own image is);
- members on the real node (its selector and taint), data on an emptyDir
  (``postgresql.persistence.enabled=false``: the node has no volume provisioner; a replaced member
  re-clones from the primary), and the API server's address and port for the ledger's egress
  NetworkPolicy (Patroni's configuration store);
- an outward relay (:meth:`xorj.devenv.node.LocalChainNode.reach_from_host`) from the host's
  127.0.0.1 to the Service's cluster IP inside the node, for the processes that run on the host: the
  watcher, the chaos probes, and the operator only in its fallback mode (``--operator process``). kube-proxy picks the endpoint per connection, so a
  connection opened after a failover reaches the new primary, as a pod's would;
- the DSN those host processes use: the chart's (Secret ``<release>-ledger``, the operator's login),
  pointed at the relay, checking the server against the chart's CA (``verify-ca``: the certificate
  names the Service, not 127.0.0.1). Written to a file only its owner reads, never to demo.json.

The operator pod (the default) and executor pods reach the Service by its DNS name (cluster DNS),
verifying the name (``verify-full``): the operator with the chart's own ledger Secret and CA, as a
user's install runs it.

``xorj dev up --ledger external-ha``: the same Patroni ledger as one the operator's release does not
manage, the chart's external-ledger path (``postgresql.enabled=false``). The chart's ledger templates
are rendered alone (:func:`external_render_args`, :func:`ledger_documents`: only the documents labelled
``app.kubernetes.io/component=ledger``) and applied into their own namespace (:func:`external_namespace`),
with a password and a certificate given as a user's GitOps render would (``postgresql.password``,
``postgresql.tls.existingSecret``). Its NetworkPolicy admits the executors of the operator's namespace
(``watchNamespaces``). The operator's release then gets, as a user would give it: the ledger's DSN
Secret (the Service across namespaces), its CA Secret, and the ledger's namespace and pod selectors for
the NetworkPolicies (:func:`external_client_values`). Host processes reach it through the same relay as
above; the chaos experiment finds its members through the demo state's ``ledger_location``
(:func:`external_location`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from xorj.errors import EnvironmentSetupError

LEDGER_MODES = ("single", "ha", "external-ha")
HA_MODES = ("ha", "external-ha")  # a Patroni ledger on the real node: the image, the relay, the failover experiment
DSN_FILE = "ledger-ha.dsn"  # under the demo's state directory, mode 0600
CA_FILE = "ledger-ha-ca.crt"
PRIMARY_SECONDS = 300.0  # until the primary Service has its one endpoint (Patroni elected a leader)
PORT = 5432
# libpq keeps a connection only if the server takes writes (not a replica, not a demoted primary)
READ_WRITE = {"target_session_attrs": "read-write"}
# external-ha: the ledger's release name and fullname (fullnameOverride): Service ledger-postgresql,
# DSN Secret ledger-ledger, in namespace <operator's namespace>-ledger
EXTERNAL_RELEASE = "ledger"
# The chart's templates that make its ledger (and, among others, its NetworkPolicy)
LEDGER_TEMPLATES = ("templates/ledger-secret.yaml", "templates/postgresql.yaml", "templates/postgresql-ha.yaml",
                    "templates/networkpolicies.yaml")
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANCE_LABEL = "app.kubernetes.io/instance"

Kubectl = Callable[..., Any]


def service_name(release: str) -> str:
    return f"{release}-postgresql"


def ledger_secret_name(release: str) -> str:
    """The chart's Secret with the ledger's owner login and DSN (xorj.ledgerSecretName)."""
    return f"{release}-ledger"


def tls_secret_name(release: str) -> str:
    """The Secret with the ledger's CA and server certificate (xorj.ledgerCaSecretName)."""
    return f"{service_name(release)}-tls"


def chart_values(*, node_selector: dict[str, str], toleration: dict[str, str], api_host: str,
                 api_port: int) -> list[str]:
    """--set values that run the chart's HA ledger on the real node (see the module docstring)."""
    return ["--set", "postgresql.enabled=true", "--set", "ledger.mode=ha",
            "--set", "postgresql.persistence.enabled=false",
            "--set-json", f"postgresql.nodeSelector={json.dumps(node_selector)}",
            "--set-json", f"postgresql.tolerations={json.dumps([toleration])}",
            "--set", f"networkPolicy.apiServer.cidrs={{{api_host}/32}}",
            "--set", f"networkPolicy.apiServer.ports={{{api_port}}}"]


def primary_endpoint(kubectl: Kubectl, namespace: str, release: str) -> str | None:
    """The pod IP the primary Service routes to, or None while it has no (or more than one) endpoint:
    the ready addresses of its EndpointSlices, what kube-proxy reads (mirrored from the leader lock's
    Endpoints, so this also proves the mirroring works)."""
    result = kubectl("get", "endpointslices", "-n", namespace, "-l",
                     f"kubernetes.io/service-name={service_name(release)}", "-o", "json", check=False)
    if result.returncode != 0:
        return None
    addresses = [address for item in json.loads(result.stdout).get("items") or []
                 for endpoint in item.get("endpoints") or []
                 if (endpoint.get("conditions") or {}).get("ready") is not False
                 for address in endpoint.get("addresses") or []]
    return addresses[0] if len(addresses) == 1 else None


def cluster_ip(kubectl: Kubectl, namespace: str, release: str) -> str:
    out = kubectl("get", "service", service_name(release), "-n", namespace, "-o", "jsonpath={.spec.clusterIP}")
    address = out.stdout.strip()
    if not address or address == "None":
        raise EnvironmentSetupError(f"Service {namespace}/{service_name(release)} has no cluster IP")
    return address


def secret_value(kubectl: Kubectl, namespace: str, name: str, key: str) -> bytes:
    out = kubectl("get", "secret", name, "-n", namespace, "-o", "json").stdout
    data = (json.loads(out).get("data") or {})
    if key not in data:
        raise EnvironmentSetupError(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data[key])


def host_dsn(chart_dsn: str, relay: str, ca_file: Path) -> str:
    """The chart's DSN (the operator's login, the Service's name) as a host process uses it: through
    the relay at ``relay`` (host:port), checking the server's certificate against ``ca_file``."""
    parts = urlsplit(chart_dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    query = {k: v for k, v in parse_qsl(parts.query) if k not in ("sslmode", "sslrootcert")}
    query.update(sslmode="verify-ca", sslrootcert=str(ca_file), **READ_WRITE)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{relay}" if userinfo else relay, query=urlencode(query)))


def executor_dsn(namespace: str, release: str, database: str, ca_file: Path) -> str:
    """What the operator gives executors (it adds each namespace's own login and mounts the CA it
    reads from ``ca_file``): the Service's DNS name, verified (verify-full), read-write members only."""
    query = urlencode({"sslmode": "verify-full", "sslrootcert": str(ca_file), **READ_WRITE})
    return f"postgresql://{service_name(release)}.{namespace}.svc:{PORT}/{database}?{query}"


def read_dsn(state_dir: Path) -> str | None:
    """The host processes' DSN written by `xorj dev up --ledger ha`, or None (a single-mode demo)."""
    try:
        return (state_dir / DSN_FILE).read_text().strip() or None
    except OSError:
        return None


# -- external-ha ----------------------------------------------------------------------------------

def external_namespace(namespace: str) -> str:
    """The external ledger's namespace, next to the operator's ``namespace``."""
    return f"{namespace}-ledger"


def service_names(namespace: str, release: str = EXTERNAL_RELEASE) -> list[str]:
    """The names the ledger's certificate must carry: its Service's, as the chart's own has them."""
    name = service_name(release)
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]


def external_render_args(chart: Path, namespace: str) -> list[str]:
    """`helm template` arguments that render the chart's ledger templates as release EXTERNAL_RELEASE
    in ``namespace``; the values come on stdin (:func:`external_render_values`: a password is no
    argument), and the real node's (:func:`chart_values`) after these."""
    shown = [arg for template in LEDGER_TEMPLATES for arg in ("--show-only", template)]
    return ["template", EXTERNAL_RELEASE, str(chart), "--namespace", namespace, *shown, "--values", "-"]


def external_render_values(*, password: str, client_namespace: str) -> dict[str, Any]:
    """The values of the external ledger's render: its fixed name, the given password and certificate
    Secret (what `helm template` cannot generate and keep), and the namespace whose executors its
    NetworkPolicy admits (the chart's watchNamespaces)."""
    return {"fullnameOverride": EXTERNAL_RELEASE, "operator": {"enabled": False},
            "postgresql": {"enabled": True, "password": password,
                           "tls": {"existingSecret": tls_secret_name(EXTERNAL_RELEASE)}},
            "ledger": {"mode": "ha"}, "watchNamespaces": [client_namespace]}


def ledger_documents(rendered: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The ledger's documents of a render of LEDGER_TEMPLATES: those labelled component=ledger (its
    Secret, Services, Patroni's account, Role, ConfigMap, StatefulSet, PodDisruptionBudget and its
    NetworkPolicy); the default-deny and executor policies of the same templates are the operator's
    release's own, not the ledger's."""
    kept = [d for d in rendered if ((d.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL) == "ledger"]
    elsewhere = [f"{d['kind']}/{d['metadata']['name']}" for d in kept
                 if d["metadata"].get("namespace") not in (None, namespace)]
    if elsewhere:
        raise EnvironmentSetupError(f"the ledger's render put {', '.join(elsewhere)} outside namespace {namespace}")
    if not any(d.get("kind") == "StatefulSet" for d in kept):
        raise EnvironmentSetupError("the chart rendered no ledger StatefulSet (postgresql.enabled, ledger.mode=ha?)")
    return kept


def external_pod_selector(release: str = EXTERNAL_RELEASE) -> dict[str, str]:
    """The external ledger's members (the chart's selector labels of its ledger component)."""
    return {INSTANCE_LABEL: release, COMPONENT_LABEL: "ledger"}


def external_client_values(namespace: str, ca_secret: str) -> list[str]:
    """--set values of the operator's release for the external ledger (besides postgresql.enabled=false
    and ledger.existingSecret): its CA, and the NetworkPolicies' peer, its members in ``namespace``."""
    return ["--set", f"ledger.caSecret={ca_secret}",
            "--set-json", f"ledger.namespaceSelector={json.dumps({'kubernetes.io/metadata.name': namespace})}",
            "--set-json", f"ledger.podSelector={json.dumps(external_pod_selector())}",
            "--set", f"ledger.port={PORT}"]


def external_location(namespace: str) -> dict[str, str]:
    """Where the chaos experiment finds the external ledger's members (xorj.chaos.ledger_failover's
    location keys; the rest are the chart's Patroni defaults)."""
    selector = ",".join(f"{k}={v}" for k, v in external_pod_selector().items())
    return {"ledger_namespace": namespace, "ledger_selector": selector}
