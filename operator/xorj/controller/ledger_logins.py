"""One Postgres login per watched namespace, made by the operator and handed to that namespace's
executors in a Secret.

The operator's own ledger login owns the schema and has CREATEROLE (never SUPERUSER). For each watched
namespace it makes the executor login (:func:`xorj.ledger.roles.ensure_executor_login`: a member of the
executor group, row-level security bound to the namespace) and writes the login's DSN, and the ledger's
CA certificate when the DSN verifies one, into the Secret the executor Deployments read
(``executor_ledger_secret`` / ``executor_ledger_secret_key``; the CA as ``ca.crt``, mounted by the
executor pod at :data:`xorj.controller.tradingstrategy.desired.LEDGER_CA_MOUNT_DIR`).

The password is made here once, when the login or its Secret is missing, and never read back: the
operator does not read Secret data (a Secret it finds carrying this login's annotation is taken as
current; deleting the Secret rotates the password at the next pass). Passes run at start and then
every ``PASS_SECONDS``, so a deleted Secret or a dropped login is re-made without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from xorj.controller.models import GROUP
from xorj.controller.runtime import Runtime
from xorj.controller.tradingstrategy.desired import LEDGER_CA_MOUNT_DIR, MANAGED_BY
from xorj.ledger import roles

log = logging.getLogger(__name__)

LOGIN_ANNOTATION = f"{GROUP}/ledger-login"
# With the signer sidecar (XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR) the Secret also carries the
# namespace's signer-only login (migration 0014), under executor.signer_ledger_secret_key.
SIGNER_LOGIN_ANNOTATION = f"{GROUP}/signer-login"
CA_KEY = "ca.crt"
PASS_SECONDS = 300.0
RETRY_SECONDS = 15.0


def executor_dsn_base(owner_dsn: str, configured: str | None) -> tuple[str, bytes | None]:
    """The DSN executors connect with (credentials are added per login) and the CA certificate to give
    them: ``configured``, else the operator's own DSN. When it verifies the server (``sslrootcert``),
    the CA file is read here and the executors' DSN points at the copy mounted in their pods."""
    base = configured or owner_dsn
    params = conninfo_to_dict(base)
    params.pop("user", None)
    params.pop("password", None)
    ca: bytes | None = None
    root_cert = params.get("sslrootcert")
    if root_cert and root_cert != "system":
        ca = Path(str(root_cert)).read_bytes()
        params["sslrootcert"] = f"{LEDGER_CA_MOUNT_DIR}/{CA_KEY}"
    return make_conninfo(**{k: str(v) for k, v in params.items()}), ca


def login_secret(
    namespace: str, name: str, dsn_key: str, login: roles.ExecutorLogin, ca: bytes | None,
    signer: tuple[str, roles.ExecutorLogin] | None = None,
) -> dict[str, Any]:
    """The Secret with the executor login's DSN (and the CA); with ``signer`` (its key and login), the
    signer login's DSN too."""
    data = {dsn_key: base64.b64encode(login.dsn.encode()).decode()}
    annotations = {LOGIN_ANNOTATION: login.login}
    if signer is not None:
        signer_key, signer_login = signer
        data[signer_key] = base64.b64encode(signer_login.dsn.encode()).decode()
        annotations[SIGNER_LOGIN_ANNOTATION] = signer_login.login
    if ca is not None:
        data[CA_KEY] = base64.b64encode(ca).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": "ledger-login"},
            "annotations": annotations,
        },
        "data": data,
    }


async def ensure_namespace(rt: Runtime, namespace: str) -> str:
    """Make sure ``namespace`` has its executor login and the Secret with its DSN; returns the login."""
    cfg = rt.settings
    owner_dsn = cfg.ledger_dsn.get_secret_value()
    configured = cfg.executor.ledger_dsn.get_secret_value() if cfg.executor.ledger_dsn else None
    base, ca = await asyncio.to_thread(executor_dsn_base, owner_dsn, configured)
    annotations = await rt.kube.secret_annotations(namespace, cfg.executor.ledger_secret)
    recorded = (annotations or {}).get(LOGIN_ANNOTATION)
    current = await asyncio.to_thread(roles.existing_executor_login, owner_dsn, namespace)
    with_signer = cfg.executor.signer_sidecar
    signer_current = (await asyncio.to_thread(roles.existing_executor_login, owner_dsn, namespace,
                                              name_of=roles.signer_login_name) if with_signer else None)
    signer_recorded = (annotations or {}).get(SIGNER_LOGIN_ANNOTATION)
    if current is not None and recorded == current and (
            not with_signer or (signer_current is not None and signer_recorded == signer_current)):
        # Repairs the group membership and the namespace mapping; the password stays.
        await asyncio.to_thread(roles.ensure_executor_login, owner_dsn, namespace, None)
        if with_signer:
            await asyncio.to_thread(roles.ensure_signer_login, owner_dsn, namespace, None)
        return current
    login = await asyncio.to_thread(
        roles.ensure_executor_login, owner_dsn, namespace, roles.generate_password(), executor_dsn_base=base
    )
    signer = None
    if with_signer:
        signer_login = await asyncio.to_thread(
            roles.ensure_signer_login, owner_dsn, namespace, roles.generate_password(), signer_dsn_base=base)
        signer = (cfg.executor.signer_ledger_secret_key, signer_login)
    await rt.kube.apply(login_secret(namespace, cfg.executor.ledger_secret, cfg.executor.ledger_secret_key, login, ca,
                                     signer))
    log.info("executor ledger login made", extra={"namespace": namespace, "login": login.login})
    return login.login


async def keep_logins(rt: Runtime, namespaces: list[str]) -> None:
    """Run :func:`ensure_namespace` for every namespace now and every PASS_SECONDS (a failed one is
    retried after RETRY_SECONDS). Runs until cancelled."""
    if not namespaces:
        log.error("executor ledger logins need the watched namespaces named (--namespace); none are made")
        return
    while True:
        failed = False
        for namespace in namespaces:
            try:
                await ensure_namespace(rt, namespace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged and retried; the text never carries the DSN
                failed = True
                log.error("could not make the executor ledger login",
                          extra={"namespace": namespace, "error": f"{type(exc).__name__}: {_safe(exc)}"})
        await asyncio.sleep(RETRY_SECONDS if failed else PASS_SECONDS)


def _safe(exc: BaseException) -> str:
    """The error's first line, which the ledger's errors keep free of DSNs and passwords."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
