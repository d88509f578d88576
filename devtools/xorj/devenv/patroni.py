"""A local Patroni-managed Postgres cluster (the HA ledger's mechanism, without Kubernetes).

``PatroniCluster(members=3)`` runs one etcd (the toolchain's binary; Patroni's configuration store,
``etcd3``) and one Patroni per member, each managing its own Postgres (Debian's packages, as
:mod:`xorj.devenv.postgres`) on 127.0.0.1 with its own port and REST API. Patroni bootstraps the first
member with ``initdb`` and the others as streaming replicas; it elects the leader through etcd.

Replication is synchronous and strict (``synchronous_mode`` and ``synchronous_mode_strict``): a COMMIT
returns only once the synchronous standby has the WAL, and Patroni promotes only that standby. Strict
because the ledger's write-ahead attempt record is what keeps a re-sent swap from filling twice: a
COMMIT the executor saw must be on two servers before it signs, even while a standby is away (writes
then wait; nothing is lost). The price: with every standby gone the ledger stops taking writes.

Clients follow the primary with libpq's multi-host conninfo (:meth:`PatroniCluster.conninfo`):
``host=127.0.0.1,127.0.0.1,... port=a,b,... target_session_attrs=read-write`` tries each member in
turn and keeps the first that accepts writes, so a new connection after a failover finds the new
primary with no change to any setting.

Authentication as the devenv server's: the ``postgres`` superuser and the ``replicator`` role are
trusted on the loopback address (nothing else reaches these servers); every other role comes over TLS
(one certificate for all members, verified with ``sslmode=verify-full``) with its SCRAM password.

Processes (Patroni, and through it Postgres, run as the ``postgres`` system user when we are root) are
started in their own sessions and stopped by :meth:`PatroniCluster.destroy`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from psycopg.conninfo import make_conninfo

from xorj.devenv.postgres import (
    SUPERUSER,
    _as_service_user,
    chown_to_service_user,
    find_bin_dir,
    free_port,
)
from xorj.devenv.processes import wait_gone
from xorj.devenv.tls import ensure_server_certificate
from xorj.devenv.waiting import wait_until_ready

SCOPE = "xorj-ledger"
REPLICATION_USER = "replicator"
HOST = "127.0.0.1"
# Patroni's smallest leader-key TTL; loop_wait + 2 * retry_timeout must fit in it. A dead primary's
# key expires after at most TTL seconds: the failover's upper bound, before the promotion itself.
TTL_SECONDS = 20
LOOP_WAIT_SECONDS = 2
RETRY_TIMEOUT_SECONDS = 5
START_SECONDS = 180.0


@dataclass(frozen=True)
class Member:
    name: str
    pg_port: int
    api_port: int
    config_file: Path
    data_dir: Path
    log_path: Path

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"


def etcd_binary() -> Path:
    override = os.environ.get("XORJ_ETCD")
    if override:
        return Path(override)
    from xorj.devenv.toolchain import Toolchain

    return Toolchain().path("etcd")


def patroni_settings(member: Member, *, etcd_port: int, tls_dir: Path, bin_dir: Path, root: Path) -> dict[str, Any]:
    """One member's Patroni configuration (its YAML file)."""
    return {
        "scope": SCOPE,
        "name": member.name,
        "restapi": {"listen": f"{HOST}:{member.api_port}", "connect_address": f"{HOST}:{member.api_port}"},
        "etcd3": {"hosts": [f"{HOST}:{etcd_port}"]},
        "bootstrap": {
            "dcs": {
                "ttl": TTL_SECONDS, "loop_wait": LOOP_WAIT_SECONDS, "retry_timeout": RETRY_TIMEOUT_SECONDS,
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": True, "synchronous_mode_strict": True,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {"wal_log_hints": "on", "max_wal_senders": 10, "max_replication_slots": 10,
                                   "wal_keep_size": "64MB", "max_connections": 200},
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
        },
        "postgresql": {
            "listen": f"{HOST}:{member.pg_port}",
            "connect_address": f"{HOST}:{member.pg_port}",
            "data_dir": str(member.data_dir),
            "bin_dir": str(bin_dir),
            "pgpass": str(root / f"{member.name}.pgpass"),
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": "unused-trusted-on-loopback"},
                "replication": {"username": REPLICATION_USER, "password": "unused-trusted-on-loopback"},
            },
            "parameters": {
                "unix_socket_directories": "",
                "ssl": "on",
                "ssl_cert_file": str(tls_dir / "server.crt"),
                "ssl_key_file": str(tls_dir / "server.key"),
                "ssl_min_protocol_version": "TLSv1.2",
                "password_encryption": "scram-sha-256",
                # Development data, as xorj.devenv.postgres: safe against a killed process, not power loss.
                "fsync": "off",
                "log_min_messages": "warning",
                "timezone": "UTC",
            },
            "pg_hba": [
                f"host all {SUPERUSER} {HOST}/32 trust",
                f"host replication {REPLICATION_USER} {HOST}/32 trust",
                f"hostssl all all {HOST}/32 scram-sha-256",
            ],
        },
    }


class PatroniCluster:
    """etcd and ``members`` Patroni processes over a temporary directory (see the module's docstring)."""

    def __init__(self, members: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="xorj-patroni-"))
        chown_to_service_user(self.root)
        self.tls_dir = self.root / "tls"
        self.etcd_port = free_port(HOST)
        self.members = [
            Member(name=f"ledger-{i}", pg_port=free_port(HOST), api_port=free_port(HOST),
                   config_file=self.root / f"ledger-{i}.yaml", data_dir=self.root / f"ledger-{i}",
                   log_path=self.root / f"ledger-{i}.log")
            for i in range(members)
        ]
        self._etcd: subprocess.Popen | None = None
        self._patroni: dict[str, subprocess.Popen] = {}
        self._logs: list[Any] = []

    # -- addresses -----------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.crt"

    def conninfo(self, dbname: str, *, user: str = SUPERUSER, password: str | None = None) -> str:
        """Every member's address, keeping the first that takes writes (libpq tries them in turn)."""
        params: dict[str, Any] = {
            "host": ",".join(HOST for _ in self.members),
            "port": ",".join(str(m.pg_port) for m in self.members),
            "dbname": dbname, "user": user, "target_session_attrs": "read-write",
        }
        if password is not None:
            params["password"] = password
        if user != SUPERUSER:
            params.update(sslmode="verify-full", sslrootcert=str(self.ca_file))
        return make_conninfo("", **params)

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = START_SECONDS) -> None:
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        certificate = ensure_server_certificate(self.tls_dir, hosts=[HOST, "localhost"])
        for path in (self.tls_dir, certificate.cert_file, certificate.key_file, certificate.ca_file):
            chown_to_service_user(path)
        self._start_etcd()
        bin_dir = find_bin_dir()
        for member in self.members:
            settings = patroni_settings(member, etcd_port=self.etcd_port, tls_dir=self.tls_dir, bin_dir=bin_dir,
                                        root=self.root)
            member.config_file.write_text(yaml.safe_dump(settings, sort_keys=False))
            chown_to_service_user(member.config_file)
            self.start_member(member.name)
        self.wait_healthy(timeout)

    def _start_etcd(self) -> None:
        peer_port = free_port(HOST)
        log = open(self.root / "etcd.log", "ab")  # noqa: SIM115 - closed by destroy()
        self._logs.append(log)
        self._etcd = subprocess.Popen(
            [str(etcd_binary()), "--name", "etcd", "--data-dir", str(self.root / "etcd"),
             "--listen-client-urls", f"http://{HOST}:{self.etcd_port}",
             "--advertise-client-urls", f"http://{HOST}:{self.etcd_port}",
             "--listen-peer-urls", f"http://{HOST}:{peer_port}",
             "--initial-advertise-peer-urls", f"http://{HOST}:{peer_port}",
             "--initial-cluster", f"etcd=http://{HOST}:{peer_port}", "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        etcd = self._etcd
        wait_until_ready(f"etcd on {HOST}:{self.etcd_port}",
                         lambda: httpx.get(f"http://{HOST}:{self.etcd_port}/health", timeout=2).json()
                         .get("health") == "true", 60, alive=lambda: etcd.poll() is None,
                         logs=[self.root / "etcd.log"], interval=0.2)

    def start_member(self, name: str) -> None:
        member = self.member(name)
        log = open(member.log_path, "ab")  # noqa: SIM115 - closed by destroy()
        self._logs.append(log)
        python, env = self._patroni_python()
        self._patroni[name] = subprocess.Popen(
            _as_service_user([python, "-m", "patroni", str(member.config_file)]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            cwd=self.root)

    def _patroni_python(self) -> tuple[str, dict[str, str]]:
        """The interpreter and environment Patroni runs with. As root, Patroni runs as the postgres
        user, who cannot enter /root where this interpreter and its packages may live: it then runs
        on the system's interpreter of the same version with a copy of Patroni's packages."""
        env = {**os.environ, "HOME": str(self.root)}
        if os.geteuid() != 0 or _readable_by_everyone(Path(sys.executable)):
            return sys.executable, env
        site = self.root / "site"
        if not site.exists():
            copy_distributions(PATRONI_DISTRIBUTIONS, site)
            for path in [site, *site.rglob("*")]:
                chown_to_service_user(path)
        env["PYTHONPATH"] = str(site)
        env.pop("PYTHONHOME", None)
        return f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}", env

    def state(self) -> list[dict[str, Any]]:
        """Patroni's view of the cluster (``GET /cluster`` of any member that answers)."""
        for member in self.members:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                return list(httpx.get(f"{member.api_url}/cluster", timeout=2).json()["members"])
        return []

    def leader(self) -> str | None:
        return next((m["name"] for m in self.state() if m["role"] == "leader" and m["state"] == "running"), None)

    def sync_standby(self) -> str | None:
        return next((m["name"] for m in self.state() if m["role"] == "sync_standby"
                     and m["state"] in ("streaming", "running")), None)

    def wait_healthy(self, timeout: float = START_SECONDS, *, members: int | None = None) -> str:
        """Wait until there is a leader, a synchronous standby and ``members`` (default: all) running;
        returns the leader's name."""
        want = len(self.members) if members is None else members

        def healthy() -> str | None:
            state = self.state()
            running = [m for m in state if m["state"] in ("running", "streaming")]
            leader = next((m["name"] for m in running if m["role"] == "leader"), None)
            has_sync = any(m["role"] == "sync_standby" for m in running)
            return leader if leader and has_sync and len(running) >= want else None

        return wait_until_ready(f"Patroni cluster {SCOPE} with a leader and a synchronous standby", healthy,
                                timeout, alive=lambda: any(p.poll() is None for p in self._patroni.values()),
                                logs=[m.log_path for m in self.members], last_seen=lambda: str(self.state()),
                                interval=0.5)

    def postmaster_pid(self, name: str) -> int | None:
        try:
            pid = int((self.member(name).data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def kill_postgres(self, name: str) -> int:
        """SIGKILL ``name``'s postmaster and its backends (its Patroni lives on); returns the pid killed."""
        pid = self.postmaster_pid(name)
        if pid is None:
            raise AssertionError(f"{name} has no running postmaster")
        for process in _with_children(pid):
            with contextlib.suppress(psutil.Error):
                process.kill()
        wait_gone(lambda: psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE, 10)
        return pid

    def kill_member(self, name: str) -> None:
        """SIGKILL ``name``'s Patroni and its Postgres at once: a pod or a machine lost."""
        patroni = self._patroni.pop(name, None)
        postmaster = self.postmaster_pid(name)
        victims = []
        if patroni is not None and patroni.poll() is None:
            victims += _with_children(patroni.pid)
        if postmaster is not None:
            victims += _with_children(postmaster)
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.kill()
        if patroni is not None:
            patroni.wait(10)
        if postmaster is not None:
            wait_gone(lambda: psutil.pid_exists(postmaster), 10)

    def switchover(self, candidate: str) -> None:
        """A planned primary change to ``candidate`` (Patroni's REST API, as ``patronictl switchover``)."""
        leader = self.leader()
        answer = httpx.post(f"{self.member(candidate).api_url}/switchover",
                            json={"leader": leader, "candidate": candidate}, timeout=60)
        if answer.status_code != 200:
            raise AssertionError(f"switchover to {candidate} refused: {answer.status_code} {answer.text}")

    def destroy(self) -> None:
        for name in list(self._patroni):
            process = self._patroni.pop(name)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # Patroni stops its Postgres on the way out
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    self._patroni[name] = process
                    self.kill_member(name)
        for member in self.members:  # a Postgres left behind by a killed Patroni
            pid = self.postmaster_pid(member.name)
            if pid is not None:
                for process in _with_children(pid):
                    with contextlib.suppress(psutil.Error):
                        process.kill()
        if self._etcd is not None and self._etcd.poll() is None:
            self._etcd.kill()
            self._etcd.wait(10)
        for log in self._logs:
            log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.root.glob("*.log")))

    def __enter__(self) -> PatroniCluster:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


PATRONI_DISTRIBUTIONS = ("patroni[etcd3]", "psycopg[binary]")


def copy_distributions(requirements: tuple[str, ...], target: Path) -> None:
    """Copy the installed files of ``requirements`` and of everything they require into ``target``."""
    seen: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        distribution = importlib.metadata.distribution(requirement.name)
        base = Path(str(distribution.locate_file("")))
        for file in distribution.files or ():
            source = base / file
            if source.is_file() and ".." not in file.parts:
                destination = target / file
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
        for text in distribution.requires or ():
            dependency = Requirement(text)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in (requirement.extras or {""})):
                pending.append(dependency)


def _readable_by_everyone(path: Path) -> bool:
    return all(parent.stat().st_mode & 0o005 == 0o005 for parent in [path.parent, *path.parents])


def _with_children(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def wait_for_leader(cluster: PatroniCluster, *, other_than: str | None = None, timeout: float = 120.0) -> str:
    """The name of a running leader (other than ``other_than``, when given), once there is one."""
    def found() -> str | None:
        leader = cluster.leader()
        return leader if leader and leader != other_than else None

    return wait_until_ready("a Patroni leader" + (f" other than {other_than}" if other_than else ""), found, timeout,
                            last_seen=lambda: str(cluster.state()), interval=0.2)

