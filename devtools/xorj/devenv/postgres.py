"""A real local PostgreSQL server for the tests and the demo (Debian's packages; no container engine).

``PostgresServer(data_dir, port)`` runs ``initdb`` once, then ``postgres`` on 127.0.0.1 only, with TCP
and no Unix socket, serving TLS with a certificate from a CA generated for this server
(:mod:`xorj.devenv.tls`; clients verify it with ``sslmode=verify-full``). Postgres refuses to run as root: when we are root both run as the ``postgres``
system user (``setpriv``, which execs, so the process we start *is* the postmaster), and the data
directory must be reachable by that user: /root is not, so test servers live in a temporary directory
under /tmp owned by ``postgres`` (:meth:`PostgresServer.temporary`).

Settings are for disposable development data: ``fsync=off`` and ``full_page_writes=off`` (default)
make the tests fast, and are safe against the server process crashing or being killed (the OS still
holds every write), but not against the machine losing power. ``synchronous_commit`` stays on, so a
COMMIT that returned survives ``kill -9`` of the server: the restart tests rely on that.

Authentication (``pg_hba.conf``, rewritten at every start): the ``postgres`` superuser is trusted on the
loopback address, for setting up databases (nothing else can reach the server); every other role (the
ledger's owner, executor logins) must come over TLS and give its password (SCRAM).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, urlencode

import psutil
import psycopg
from psycopg import sql

from xorj.devenv.processes import wait_gone
from xorj.devenv.tls import ServerCertificate, ensure_server_certificate
from xorj.devenv.waiting import StartupTimeout, wait_until_ready
from xorj.errors import EnvironmentSetupError

log = logging.getLogger(__name__)

SERVICE_USER = "postgres"  # the system user Debian's package creates
SUPERUSER = "postgres"  # the database role initdb creates
# A generous limit on the server accepting connections (the wait ends as soon as it does): crash
# recovery or a machine busy with builds can take well over a minute.
START_SECONDS = 180.0


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with a ``postgres`` binary."""
    override = os.environ.get("XORJ_PG_BIN_DIR")
    if override:
        return Path(override)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if not candidates:
        raise EnvironmentSetupError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run scripts/bootstrap "
            "(it installs Debian's postgresql package)"
        )
    return Path(candidates[-1]).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_service_user(argv: list[str]) -> list[str]:
    """``argv`` run as the postgres system user when we are root (postgres refuses root)."""
    if not _running_as_root():
        return argv
    return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups", "--", *argv]


def chown_to_service_user(path: Path) -> None:
    """Give ``path`` to the user postgres runs as (a no-op unless we are root)."""
    if _running_as_root():
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


_chown_to_service_user = chown_to_service_user  # older name, kept for callers


def service_user_can_write(directory: Path) -> bool:
    """Whether the user postgres runs as can create files in ``directory`` (checks every parent's x bit)."""
    if not _running_as_root():
        return os.access(directory, os.W_OK | os.X_OK)
    result = subprocess.run(_as_service_user(["test", "-w", str(directory)]), capture_output=True, check=False)
    return result.returncode == 0


class PostgresServer:
    """One PostgreSQL server process on 127.0.0.1:``port`` over ``data_dir``.

    ``port=None`` picks a free port at the first start and keeps it across restarts (clients
    reconnect to the same address). The server process is started in its own session, so it outlives
    the Python process that started it until :meth:`stop` (the ``xorj dev db`` commands rely on that).
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        fsync: bool = False,
        max_connections: int = 200,
        log_path: Path | str | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        # Beside the data directory, not in it: initdb wants an empty directory.
        self.tls_dir = self.data_dir.parent / f"{self.data_dir.name}-tls"
        self.hba_file = self.data_dir.parent / f"{self.data_dir.name}-pg_hba.conf"
        self.port = port
        self.host = host
        self.fsync = fsync
        self.max_connections = max_connections
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / f"{self.data_dir.name}.log"
        self._bin_dir = bin_dir
        self._process: subprocess.Popen | None = None
        self._temporary_root: Path | None = None

    @classmethod
    def temporary(cls, port: int | None = None, **kwargs) -> PostgresServer:
        """A server over a fresh data directory in /tmp (owned by the postgres user), removed by
        :meth:`destroy`."""
        root = Path(tempfile.mkdtemp(prefix="xorj-pg-"))
        _chown_to_service_user(root)
        server = cls(root / "data", port, log_path=root / "postgres.log", **kwargs)
        server._temporary_root = root
        return server

    # -- addresses -----------------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` maintenance database (as superuser)."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str, *, user: str = SUPERUSER, password: str | None = None,
                verify: bool = False) -> str:
        """DSN of ``dbname`` as ``user``; ``verify`` (or any user but the superuser) requires TLS and
        checks the server's certificate and name against this server's CA (``sslmode=verify-full``)."""
        if self.port is None:
            raise EnvironmentSetupError("the Postgres server has no port yet: start it first")
        userinfo = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
        dsn = f"postgresql://{userinfo}@{self.host}:{self.port}/{quote(dbname, safe='')}"
        if verify or user != SUPERUSER:
            dsn += "?" + urlencode({"sslmode": "verify-full", "sslrootcert": str(self.ca_file)})
        return dsn

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients verify this server with."""
        return self.tls_dir / "ca.crt"

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid`` if that process is alive, else None."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self._process is not None and self._process.pid == pid and self._process.poll() is not None:
            return None  # our child exited (a zombie would still answer kill(pid, 0))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    def initdb(self) -> None:
        """Create the cluster in ``data_dir`` unless one is there already."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _chown_to_service_user(self.data_dir)
        os.chmod(self.data_dir, 0o700)
        argv = [
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "--username", SUPERUSER,
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions",
        ]
        result = subprocess.run(_as_service_user(argv), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EnvironmentSetupError(f"initdb failed in {self.data_dir}: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = START_SECONDS) -> None:
        """Start the server (running initdb first if needed) and wait until it accepts connections."""
        if self.is_running():
            if self.port is None:
                self.port = self._port_from_pid_file()
            return
        self.initdb()
        pick_port = self.port is None
        for _ in range(5 if pick_port else 1):
            if pick_port:
                self.port = free_port(self.host)
            if self._start_once(timeout):
                log.info("postgres started", extra={"port": self.port, "data_dir": str(self.data_dir)})
                return
            if not pick_port or "could not bind" not in self._log_tail():
                break
        raise EnvironmentSetupError(
            f"Postgres did not start on {self.host}:{self.port} (data {self.data_dir}): "
            f"{getattr(self, '_start_problem', 'no attempt')}; log {self.log_path} tail:\n{self._log_tail()}"
        )

    def _prepare_tls_and_hba(self) -> ServerCertificate:
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        certificate = ensure_server_certificate(self.tls_dir, hosts=[self.host, "localhost"])
        for path in (self.tls_dir, certificate.cert_file, certificate.key_file, certificate.ca_file):
            chown_to_service_user(path)
        self.hba_file.write_text(
            "# Written by xorj.devenv.postgres at each start.\n"
            "# TYPE   DATABASE  USER      ADDRESS       METHOD\n"
            f"host     all       {SUPERUSER}  127.0.0.1/32  trust\n"
            "hostssl  all       all       127.0.0.1/32  scram-sha-256\n"
        )
        chown_to_service_user(self.hba_file)
        return certificate

    def _start_once(self, timeout: float) -> bool:
        certificate = self._prepare_tls_and_hba()
        argv = [
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
            "-c", f"hba_file={self.hba_file}", "-c", "ssl=on",
            "-c", f"ssl_cert_file={certificate.cert_file}", "-c", f"ssl_key_file={certificate.key_file}",
            "-c", "ssl_min_protocol_version=TLSv1.2", "-c", "password_encryption=scram-sha-256",
            "-c", f"listen_addresses={self.host}", "-c", f"port={self.port}",
            "-c", "unix_socket_directories=", "-c", f"max_connections={self.max_connections}",
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", f"full_page_writes={'on' if self.fsync else 'off'}",
            "-c", "synchronous_commit=on",  # a returned COMMIT survives kill -9 of the server
            "-c", "logging_collector=off", "-c", "log_min_messages=warning", "-c", "timezone=UTC",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                _as_service_user(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: kill() takes the backends too
            )
        process = self._process

        def accepts() -> bool:
            with psycopg.connect(self.dsn, connect_timeout=2):
                return True

        try:
            wait_until_ready(f"Postgres accepting connections on {self.host}:{self.port}", accepts, timeout,
                             alive=lambda: process.poll() is None, interval=0.1)
        except StartupTimeout as exc:
            self._start_problem = str(exc)
            if process.poll() is None:
                self.kill()
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: abort sessions, checkpoint); SIGKILL if it takes longer than ``timeout``."""
        pid = self.pid
        if pid is None:
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        if not self._wait_gone(pid, timeout):
            log.warning("postgres did not stop in time; killing it", extra={"pid": pid})
            self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once: a crash. The next start runs WAL recovery."""
        pid = self.pid or (self._process.pid if self._process else None)
        if pid is None:
            return
        # The postmaster leads its own process group (start_new_session), backends included.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_gone(pid, 10.0)
        self._wait_group_gone(pid, 10.0)
        self._reap()

    def restart(self, timeout: float = START_SECONDS) -> None:
        self.stop()
        self.start(timeout=timeout)

    def destroy(self) -> None:
        """Stop the server and remove its data (only the temporary directory it was given)."""
        self.stop()
        if self._temporary_root is not None:
            shutil.rmtree(self._temporary_root, ignore_errors=True)

    # -- databases -----------------------------------------------------------------------------------

    def create_database(
        self, name: str, *, template: str | None = None, exist_ok: bool = False, owner: str | None = None
    ) -> str:
        """Create database ``name`` (optionally as a copy of ``template``, owned by role ``owner``);
        returns its DSN (as the superuser)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and exist_ok:
                return self.dsn_for(name)
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
            if owner:
                query = sql.SQL("{} OWNER {}").format(query, sql.Identifier(owner))
            conn.execute(query)
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # -- internals -----------------------------------------------------------------------------------

    def _port_from_pid_file(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        def running() -> bool:
            if self._process is not None and self._process.pid == pid:
                return self._process.poll() is None
            return psutil.pid_exists(pid)

        return wait_gone(running, timeout)

    @staticmethod
    def _wait_group_gone(pgid: int, timeout: float) -> None:
        """Wait until no process of group ``pgid`` is left (a live backend keeps the shared memory
        segment, and a new postmaster would refuse to start over it)."""
        wait_gone(lambda: any(_in_group(process, pgid) for process in psutil.process_iter()), timeout)

    def _reap(self) -> None:
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def cache_dir() -> Path:
    return Path(os.environ.get("XORJ_CACHE_DIR") or Path.home() / ".cache" / "xorj")


class DevDatabase:
    """The long-lived development server behind ``xorj dev db``: data kept between runs, database
    ``xorj`` migrated on ``up``.

    Its state (data root and port) is recorded in ``<cache>/postgres.json``. The data lives in
    ``<cache>/postgres`` when the postgres user can write there; as root the cache is under /root,
    which that user cannot enter, so the data goes to ``/var/tmp/xorj-postgres-<hash of the cache
    path>`` (survives reboots, unlike /tmp).
    """

    DATABASE = "xorj"

    def __init__(self, root: Path | None = None) -> None:
        self.state_file = cache_dir() / "postgres.json"
        state = self._load_state()
        self.root = root or (Path(state["root"]) if state.get("root") else None) or self._default_root()
        self.port: int | None = state.get("port") if state.get("root") == str(self.root) else None

    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"root": str(self.root), "port": self.port}))

    @staticmethod
    def _default_root() -> Path:
        preferred = cache_dir() / "postgres"
        preferred.mkdir(parents=True, exist_ok=True)
        chown_to_service_user(preferred)
        if service_user_can_write(preferred):
            return preferred
        preferred.rmdir()
        digest = hashlib.sha256(str(cache_dir()).encode()).hexdigest()[:8]
        return Path("/var/tmp") / f"xorj-postgres-{digest}"

    @property
    def server(self) -> PostgresServer:
        return PostgresServer(self.root / "data", self.port, log_path=self.root / "postgres.log")

    def up(self) -> str:
        """Start the server if needed, create and migrate database ``xorj``; returns its DSN."""
        from xorj.ledger.migrate import migrate

        self.root.mkdir(parents=True, exist_ok=True)
        chown_to_service_user(self.root)
        server = self.server
        server.start()
        self.port = server.port
        self._save_state()
        dsn = server.create_database(self.DATABASE, exist_ok=True)
        migrate(dsn)
        return dsn

    def down(self, *, purge: bool = False) -> None:
        """Stop the server; with ``purge`` also delete its data and recorded state."""
        self.server.stop()
        if purge:
            shutil.rmtree(self.root, ignore_errors=True)
            self.state_file.unlink(missing_ok=True)

    def is_running(self) -> bool:
        return self.port is not None and self.server.is_running()

    @property
    def dsn(self) -> str:
        return self.server.dsn_for(self.DATABASE)


def _in_group(process: psutil.Process, pgid: int) -> bool:
    """The process is a live (not zombie) member of process group ``pgid``."""
    try:
        return os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False
