"""Delivery of the ledger's alert outbox: each alert becomes exactly one Kubernetes Event (on its
CopyTrade, else on its TradingStrategy) and one count in ``xorj_operator_alerts_delivered_total``,
and is marked delivered in the same ledger transaction that claimed it.

Why exactly once holds (docs/design.md, "Alert outbox delivery"):

- the claim is a row lock taken with ``SKIP LOCKED``: two deliverers (two operator replicas, or the
  operator and a tool) never hold the same alert;
- the Event's name is a function of the alert row (:func:`event_name`), and the Event is *created*,
  never updated: a deliverer killed after the Event and before the mark leaves the row unmarked, the
  next deliverer's create answers 409 AlreadyExists, and that counts as delivered;
- the counter moves only after the mark is committed.

An alert with neither a CopyTrade nor a ``namespace/name`` strategy (none today) has no object to
carry an Event: it is counted and marked.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx2
from lightkube import ApiError, Client
from lightkube.config.kubeconfig import SingleConfig
from lightkube.resources.core_v1 import Event

from xorj.controller import metrics
from xorj.controller.kube import API_ERRORS, CUSTOM_RESOURCES, FIELD_MANAGER, status_code
from xorj.controller.models import GROUP, VERSION
from xorj.errors import LedgerError
from xorj.ledger import Ledger
from xorj.ledger.outbox import ClaimedAlert
from xorj.ledger.records import Alert, AlertSeverity
from xorj.redaction import redact_urls

log = logging.getLogger(__name__)

# Kubernetes caps an Event's message at 1 KiB in practice (kubectl and the API's own recorder do)
_MESSAGE_LIMIT = 1024
_PLURALS = {"CopyTrade": "copytrades", "TradingStrategy": "tradingstrategies"}


def blocking_client(config: SingleConfig) -> Client:
    """lightkube's blocking client for the deliverer: it creates an alert's Event inside the ledger
    transaction that claimed the alert, on that transaction's thread."""
    return Client(config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(30.0))


@dataclass(frozen=True)
class EventTarget:
    kind: str
    namespace: str
    name: str


def event_target(claimed: ClaimedAlert) -> EventTarget | None:
    """The object an alert's Event goes on: its trade's CopyTrade, else its strategy."""
    for kind, ref in (("CopyTrade", claimed.copytrade), ("TradingStrategy", claimed.alert.strategy)):
        if ref and ref.count("/") == 1 and all(ref.split("/")):
            namespace, name = ref.split("/")
            return EventTarget(kind, namespace, name)
    return None


def event_name(alert: Alert) -> str:
    """Unique per alert row and stable across retries: the id, plus its creation time so a ledger
    recreated from scratch (ids restart at 1) never collides with a live Event of the old one."""
    micros = int(alert.created_at.timestamp() * 1_000_000)
    return f"xorj-alert-{alert.alert_id}-{micros:x}"


def event_reason(kind: str) -> str:
    """RPC_FAILURE -> RpcFailure (Event reasons are CamelCase)."""
    return "".join(part.capitalize() for part in kind.split("_") if part) or "Alert"


def event_body(alert: Alert, target: EventTarget, uid: str | None, reporter: str) -> dict[str, Any]:
    when = alert.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = redact_urls(f"[{alert.severity.value}] {alert.message}")[:_MESSAGE_LIMIT]
    involved: dict[str, Any] = {"apiVersion": f"{GROUP}/{VERSION}", "kind": target.kind,
                                "namespace": target.namespace, "name": target.name}
    if uid:
        involved["uid"] = uid  # `kubectl describe` matches Events by uid too
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(alert),
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER, f"{GROUP}/alert-kind": alert.kind,
                       f"{GROUP}/alert-severity": alert.severity.value},
            "annotations": {f"{GROUP}/alert-id": str(alert.alert_id),
                            **({f"{GROUP}/trade-id": str(alert.trade_id)} if alert.trade_id else {})},
        },
        "involvedObject": involved,
        "type": "Normal" if alert.severity is AlertSeverity.INFO else "Warning",
        "reason": event_reason(alert.kind),
        "message": message,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": f"{GROUP}/{FIELD_MANAGER}",
        "reportingInstance": reporter[:128],
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
        "action": "Alert",
    }


class AlertEventPoster:
    """The ``deliver`` step of :meth:`Ledger.deliver_next_alert`: creates the alert's Event (blocking;
    it runs in the ledger transaction's thread). ``created`` / ``already_there`` count what happened."""

    def __init__(self, client: Client, reporter: str):
        self._client = client
        self._reporter = reporter
        self.created = 0
        self.already_there = 0
        self.namespace_gone = 0

    def __call__(self, claimed: ClaimedAlert) -> None:
        target = event_target(claimed)
        if target is None:
            return
        body = event_body(claimed.alert, target, self._uid(target), self._reporter)
        metrics.KUBE_REQUESTS.labels("create", "events").inc()
        try:
            self._client.create(Event.from_dict(body))
            self.created += 1
        except ApiError as exc:
            if status_code(exc) == 409:
                self.already_there += 1  # delivered before a crash that came before the mark
            elif status_code(exc) == 404:
                # the namespace is gone: no Event can ever carry this alert; it is counted and marked
                self.namespace_gone += 1
            else:
                raise

    def _uid(self, target: EventTarget) -> str | None:
        metrics.KUBE_REQUESTS.labels("get", _PLURALS[target.kind]).inc()
        try:
            found = self._client.get(CUSTOM_RESOURCES[_PLURALS[target.kind]], target.name, namespace=target.namespace)
        except ApiError as exc:
            if status_code(exc) == 404:
                return None  # gone already: the Event is still recorded (kubectl get events shows it)
            raise
        return found.metadata.uid if found.metadata else None


class _Remembering:
    """Wraps the poster to know which alert a failed delivery was about."""

    def __init__(self, poster: AlertEventPoster) -> None:
        self.poster = poster
        self.current: int | None = None

    def __call__(self, claimed: ClaimedAlert) -> None:
        self.current = claimed.alert.alert_id
        self.poster(claimed)


def deliver_pending(ledger: Ledger, poster: AlertEventPoster, limit: int = 100) -> list[Alert]:
    """Deliver up to ``limit`` waiting alerts, one transaction each; counts each after its commit.

    An alert whose Event the API server refuses (e.g. 403: a namespace being deleted, or one this
    operator may not write) stays undelivered and is skipped for the rest of the pass, so it never
    holds up the others; it is tried again on the next pass. A ledger error ends the pass at once."""
    delivered: list[Alert] = []
    failed: list[int] = []
    first_error: ApiError | None = None
    step = _Remembering(poster)
    while len(delivered) < limit:
        step.current = None
        try:
            alert = ledger.deliver_next_alert(step, skip=failed)
        except ApiError as exc:
            if step.current is None:
                raise
            failed.append(step.current)
            first_error = first_error or exc
            continue
        if alert is None:
            break
        metrics.ALERTS_DELIVERED.labels(alert.kind, alert.severity.value).inc()
        delivered.append(alert)
    if first_error is not None:
        log.warning("alert delivery: the API server refused the Events of alerts %s (HTTP %s); they stay "
                    "undelivered", failed, status_code(first_error))
    return delivered


async def deliver_forever(config: SingleConfig, ledger: Ledger, reporter: str, interval: float) -> None:
    """The operator's deliverer: a pass every ``interval`` seconds; a failed pass (ledger or API server
    down) leaves the alert undelivered and is retried on the next."""
    client = blocking_client(config)
    poster = AlertEventPoster(client, reporter)
    loop = asyncio.get_running_loop()
    # its own thread, not the loop's default executor: a pass holds a ledger connection while it waits
    # for the API server, and must not take a worker other blocking calls need (e.g. during a ledger outage)
    own_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xorj-alerts")
    try:
        while True:
            await _one_pass(loop, own_thread, ledger, poster)
            await asyncio.sleep(interval)
    finally:
        own_thread.shutdown(wait=False, cancel_futures=True)
        client.close()


async def _one_pass(loop: asyncio.AbstractEventLoop, thread: ThreadPoolExecutor, ledger: Ledger,
                    poster: AlertEventPoster) -> None:
    try:
        delivered = await loop.run_in_executor(thread, deliver_pending, ledger, poster)
        if delivered:
            log.info("delivered %d alert(s) as Events", len(delivered))
        metrics.ALERT_OUTBOX_PENDING.set(await loop.run_in_executor(thread, ledger.count_pending_alerts))
    except asyncio.CancelledError:
        raise
    except (LedgerError, *API_ERRORS) as exc:
        log.warning("alert delivery pass failed: %s; retrying", type(exc).__name__)
    except Exception:
        log.exception("alert delivery pass failed; retrying")
