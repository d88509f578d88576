"""The operator's kopf entry point (``kopf run -m xorj.controller.handlers``): the operator-wide
handlers (login, startup, cleanup, the health and metrics server), and the import of each kind's
handlers, which registers them:

- :mod:`xorj.controller.tradingstrategy.handlers` (its children: :mod:`~xorj.controller.tradingstrategy.desired`),
- :mod:`xorj.controller.copytrade.handlers`,
- :mod:`xorj.controller.traderpool.handlers`,
- :mod:`xorj.controller.vault.handlers`.

Progress, diff-base and the finalizer use our own ``trading.xorj.io`` prefix, so another kopf
operator on the same objects never reads or overwrites our state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import warnings
from collections.abc import Sequence
from typing import Any

import aiohttp
import kopf
from aiohttp import web
from lightkube.config.models import User
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from xorj.controller import alerts, ledger_logins, memory_profile, metrics
from xorj.controller.copytrade import handlers as copytrade_handlers
from xorj.controller.copytrade.mirrors import CopyTradeMirrors
from xorj.controller.freshness import WatchFreshness
from xorj.controller.kube import Kube, load_config
from xorj.controller.models import GROUP
from xorj.controller.runtime import Runtime
from xorj.controller.settings import OperatorSettings
from xorj.controller.traderpool import handlers as traderpool_handlers
from xorj.controller.tradingstrategy import handlers as tradingstrategy_handlers
from xorj.controller.tradingstrategy.reconcile import enforce_trading_halt
from xorj.controller.vault import handlers as vault_handlers
from xorj.errors import LedgerUnavailableError
from xorj.ledger import Ledger
from xorj.ledger.aio import AsyncLedger

log = logging.getLogger(__name__)

# Imported for their registration with kopf: each kind's handlers.
KINDS = (tradingstrategy_handlers, copytrade_handlers, traderpool_handlers, vault_handlers)
_FINALIZER = f"{GROUP}/finalizer"
# Connections of each of the operator's ledger pools. Every handler's transaction runs on the asyncio
# one, which lets this many run at once and queues the rest (xorj.ledger.aio.Turns): with 1,000
# Vaults the handlers wait their turn instead of timing out into "ledger unavailable" retries.
LEDGER_POOL_SIZE = 8
# CopyTrades admitting or taking their first look at once (xorj.controller.copytrade.mirrors): enough to
# keep every ledger connection busy while others write their status; the rest wait as small records.
MIRROR_SLOTS = 2 * LEDGER_POOL_SIZE


# kopf's own API session has no limit on connections (its aiohttp connector: limit=0), so a burst of
# events (1,000 Vaults created, thousands of CopyTrades) opened one TLS connection per request in
# flight: hundreds, each holding ~300 KiB (asyncio's 256 KiB TLS read buffer, OpenSSL's own) and kept
# alive in the pool, and what they freed stays in the heap: the largest part of the operator's memory
# per object (issue #15). Bounded here: a request beyond the bound waits for a free connection. The
# watch streams hold a connection each for as long as they run, so the bound is on top of them.
KOPF_REQUEST_CONNECTIONS = 16
# the watch streams kopf keeps open per namespace served (one for a cluster-wide operator): one per
# watched kind (TradingStrategy, CopyTrade, TraderPool, Vault) and its peering object's
KOPF_WATCHES_PER_NAMESPACE = 5


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """The same credentials our own client uses (in-cluster, else KUBECONFIG), read at each login:
    kopf logs in again on a 401, and then reads a rotated service-account token."""
    config = load_config()
    cluster, user = config.cluster, config.user or User()

    def path(name: str | None) -> str | None:
        return str(config.abs_file(name)) if name else None  # relative to the kubeconfig's folder

    return kopf.ConnectionInfo(
        server=cluster.server,
        ca_path=path(cluster.certificate_auth),
        ca_data=cluster.certificate_auth_data,
        insecure=cluster.insecure,
        username=user.username,
        password=user.password,
        token=(user.token or "").strip() or None,  # a service-account token file ends in a newline
        certificate_path=path(user.client_cert),
        certificate_data=user.client_cert_data,
        private_key_path=path(user.client_key),
        private_key_data=user.client_key_data,
        trust_env=settings.networking.trust_env,
    )


def kopf_connection_limit(namespaces: Sequence[str]) -> int:
    return KOPF_WATCHES_PER_NAMESPACE * max(1, len(namespaces)) + KOPF_REQUEST_CONNECTIONS


@kopf.on.login()
async def login(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> kopf.AiohttpSession:
    """kopf's session, as kopf would make it from :func:`connection_info` but with a bounded pool
    (:data:`KOPF_REQUEST_CONNECTIONS`); kopf closes it when it logs in again."""
    info = await asyncio.to_thread(connection_info, settings)  # reads the kubeconfig or token files
    with warnings.catch_warnings():  # as kopf does: its own deprecation notice of basic auth
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="kopf")
        auth = info.as_aiohttp_basic_auth()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=kopf_connection_limit(memo.get("namespaces") or []),
                                       ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), auth=auth, proxy=info.proxy_url, trust_env=info.trust_env)
    return kopf.AiohttpSession(server=info.server, default_namespace=info.default_namespace,
                               aiohttp_session=session)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    cfg: OperatorSettings = memo.get("settings") or OperatorSettings()  # `kopf run` has no memo
    memory_profile.start(cfg.serving.memory_profile_frames)
    settings.persistence.finalizer = _FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = cfg.watching.server_timeout
    settings.watching.client_timeout = cfg.watching.client_timeout
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = cfg.watching.inactivity_timeout
    # Our own Events are explicit; kopf's "Handler succeeded" log-Events would double the API load.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 30
    # The CRDs are installed before the operator and the namespaces are given: kopf's cluster-wide
    # scans of CRDs and namespaces would need a ClusterRole, and when refused (the chart grants none)
    # kopf retries them for about a minute before starting to watch.
    settings.scanning.disabled = True
    settings.peering.priority = cfg.peering.priority
    settings.peering.name = cfg.peering.name
    settings.peering.standalone = cfg.peering.standalone
    settings.peering.mandatory = not cfg.peering.standalone
    settings.peering.lifetime = cfg.peering.lifetime

    logging.getLogger("kopf.objects").addFilter(_quiet_indexers)
    freshness = WatchFreshness(stale_after=cfg.watching.stale_seconds)
    kube = Kube(await asyncio.to_thread(load_config), freshness)
    dsn = cfg.ledger_dsn.get_secret_value()
    ledger = await asyncio.to_thread(_connect_ledger, dsn, logger)
    # opened after the blocking ledger migrated the schema; on kopf's loop, the one that uses it
    async_ledger = AsyncLedger.for_dsn(dsn, max_size=LEDGER_POOL_SIZE, acquire_timeout=5.0, name="xorj-operator-aio")
    await async_ledger.open()
    # the pool metrics are the asyncio pool's, the one every handler waits for (its waiting requests
    # count the handlers queued for a turn); the blocking one only migrates and delivers alerts
    metrics.LEDGER_POOL.ledger = async_ledger
    identity = f"{socket.gethostname()}/{os.getpid()}"
    rt = Runtime(settings=cfg, kube=kube, async_ledger=async_ledger, ledger=ledger, freshness=freshness,
                 identity=identity)
    memo["runtime"] = rt
    memo[copytrade_handlers.MIRRORS] = CopyTradeMirrors(rt, slots=MIRROR_SLOTS)
    memo["listener"] = asyncio.create_task(rt.listen_forever(), name="xorj-ledger-listener")
    if cfg.executor.ledger_logins:
        memo["ledger_logins"] = asyncio.create_task(
            ledger_logins.keep_logins(rt, memo.get("namespaces") or []), name="xorj-ledger-logins")
    if cfg.timing.alert_delivery_seconds > 0:
        memo["alerts"] = asyncio.create_task(
            alerts.deliver_forever(kube.config, ledger, identity, cfg.timing.alert_delivery_seconds),
            name="xorj-alert-delivery")
    serving = cfg.serving
    memo["health"] = await _start_health_server(rt, serving.health_host, serving.health_port, serving.metrics_port,
                                                memory_page=serving.memory_profile_frames > 0)
    if cfg.reconciling.rpc_url is not None:
        from xorj.reconciler.periodic import reconcile_forever

        memo["reconciler"] = asyncio.create_task(reconcile_forever(
            async_ledger, cfg.reconciling.rpc_url.get_secret_value(), cfg.reconciling.interval_seconds,
            cfg.reconciling.service_settings(), rpc_timeout=cfg.reconciling.rpc_timeout_seconds), name="xorj-reconciler")
    else:
        logger.info("chain reconciler off: XORJ_OPERATOR_RECONCILE_RPC_URL is not set")
    if not cfg.peering.standalone:
        await _ensure_peering_objects(kube, cfg.peering.name, memo.get("namespaces") or [])
    await enforce_trading_halt(rt, logger)
    logger.info("operator started", extra={"identity": identity, "priority": cfg.peering.priority})


def _quiet_indexers(record: logging.LogRecord) -> bool:
    """Drop kopf's per-event "Indexer ... succeeded." lines: one per watch event is noise."""
    return not (record.levelno <= logging.INFO and record.getMessage().startswith("Indexer "))


def _connect_ledger(dsn: str, logger: Any) -> Ledger:
    """Migrate and connect; if the ledger is down, start anyway with a pool that keeps reconnecting
    (the strategies then say LedgerReachable=False, and CopyTrades wait), instead of crash-looping."""
    try:
        return Ledger.connect(dsn, max_size=LEDGER_POOL_SIZE, acquire_timeout=5.0, name="xorj-operator")
    except LedgerUnavailableError as exc:
        logger.warning("ledger unreachable at start; running without it until it is back",
                       extra={"error": type(exc).__name__})
        return Ledger.connect(dsn, apply_migrations=False, max_size=LEDGER_POOL_SIZE, acquire_timeout=5.0, name="xorj-operator")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, logger: Any, **_: Any) -> None:
    """Graceful shutdown: kopf has stopped the daemons; close what startup opened."""
    mirrors: CopyTradeMirrors | None = memo.get(copytrade_handlers.MIRRORS)
    if mirrors is not None:
        await mirrors.close()
    for task_name in ("listener", "ledger_logins", "reconciler", "alerts"):
        task = memo.get(task_name)
        if task is not None:
            task.cancel()
    for runner in memo.get("health") or ():
        await runner.cleanup()
    rt: Runtime | None = memo.get("runtime")
    if rt is not None:
        await rt.async_ledger.close()
        await asyncio.to_thread(rt.ledger.close)
        await rt.kube.close()
    logger.info("operator stopped")


# -- health and metrics --------------------------------------------------------------------------------


async def _start_health_server(rt: Runtime, host: str, health_port: int, metrics_port: int, *,
                               memory_page: bool = False) -> list[web.AppRunner]:
    async def healthz(_: web.Request) -> web.Response:
        stale = rt.freshness.stale(time.monotonic())
        metrics.WATCH_STALE.set(1 if stale else 0)
        if stale:
            return web.json_response({"status": "stale", "unseenWrites": len(stale)}, status=503)
        return web.json_response({"status": "ok"})

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def memory_view(request: web.Request) -> web.Response:
        top = int(request.query.get("top", "25"))
        return web.json_response(memory_profile.report(top))

    routes: list[tuple[int, tuple[str, Any]]] = [(health_port, ("/healthz", healthz)),
                                                 (metrics_port, ("/metrics", metrics_view))]
    if memory_page:  # opt-in (XORJ_OPERATOR_MEMORY_PROFILE_FRAMES): the allocation trace's largest holders
        routes.append((metrics_port, ("/debug/memory", memory_view)))
    runners = []
    apps: dict[int, web.Application] = {}
    for port, route in routes:
        app = apps.setdefault(port, web.Application())
        app.router.add_get(*route)
    for port, app in apps.items():
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    return runners


async def _ensure_peering_objects(kube: Kube, name: str, namespaces: list[str]) -> None:
    """kopf's peering needs its KopfPeering (per namespace) or ClusterKopfPeering object to exist."""
    for namespace in namespaces or [None]:
        await kube.ensure_peering(name, namespace)
