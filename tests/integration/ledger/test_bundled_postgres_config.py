"""The chart's bundled Postgres configuration, run by a real Postgres server (issue 11 item 5).

What ``helm template`` renders for the bundled ledger: its pg_hba.conf, the server arguments of its
StatefulSet, its Secret and the init script that makes the operator's login, with a TLS Secret for the
Service's name. These are given to
the local PostgreSQL binaries as the postgres image's entrypoint would give them (the script run once
over the socket as the bootstrap superuser, the TLS files owned by root and readable by the postgres
group as a Secret volume with fsGroup mounts them). Then:

- the operator's DSN from the chart's Secret connects with ``sslmode=verify-full`` against the
  chart's CA, as a role that owns the database and is not a superuser, which can migrate it and make
  an executor login;
- the bootstrap superuser cannot log in over the network, with or without TLS;
- plain TCP is refused, and a certificate from another CA is refused.
"""

from __future__ import annotations

import base64
import grp
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.unit.chart.helm import named, render
from xorj.devenv.postgres import _as_service_user, chown_to_service_user, find_bin_dir, free_port
from xorj.devenv.tls import issue
from xorj.ledger import migrate
from xorj.ledger.roles import ensure_executor_login, generate_password, with_credentials

SERVICE_HOST = "xorj-postgresql.xorj.svc"  # the Service name in the chart's DSN and certificate


class BundledLedger:
    def __init__(self, root: Path, port: int, dsn: str, ca: Path, superuser_password: str) -> None:
        self.root, self.port, self.dsn, self.ca, self.superuser_password = root, port, dsn, ca, superuser_password

    def local(self, dsn: str, **overrides: str) -> str:
        """``dsn`` sent to this server (hostaddr) while verifying the certificate's name as the Service's."""
        params = conninfo_to_dict(dsn)
        return with_credentials(dsn, params["user"], params.get("password"), hostaddr="127.0.0.1",
                                port=str(self.port), sslrootcert=str(self.ca), **overrides)


@pytest.fixture(scope="module")
def bundled_ledger() -> Iterator[BundledLedger]:
    documents = render()
    config = named(documents, "ConfigMap", "xorj-postgresql-config")["data"]
    # the TLS Secret a GitOps install gives (postgresql.tls.existingSecret); `helm install` generates
    # one like it (tests/e2e/chart)
    ca_pem, cert_pem, key_pem = issue([SERVICE_HOST, "xorj-postgresql"])
    tls = {"ca.crt": ca_pem, "tls.crt": cert_pem, "tls.key": key_pem}
    ledger_secret = {k: base64.b64decode(v).decode()
                     for k, v in named(documents, "Secret", "xorj-ledger")["data"].items()}
    container = named(documents, "StatefulSet", "xorj-postgresql")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}

    root = Path(tempfile.mkdtemp(prefix="xorj-bundled-pg-"))
    chown_to_service_user(root)
    etc, tls_dir, socket_dir, data = root / "etc", root / "tls", root / "run", root / "data"
    for directory in (etc, tls_dir, socket_dir):
        directory.mkdir()
        chown_to_service_user(directory)
    (etc / "pg_hba.conf").write_text(config["pg_hba.conf"])
    (root / "10-xorj-owner.sh").write_text(config["10-xorj-owner.sh"])
    for name, content in tls.items():
        (tls_dir / name).write_bytes(content)
        # as a Secret volume with fsGroup and defaultMode 0640 has it: root's, group postgres
        os.chmod(tls_dir / name, 0o640)
        if os.geteuid() == 0:
            os.chown(tls_dir / name, 0, grp.getgrnam("postgres").gr_gid)
    (root / "ca.crt").write_bytes(tls["ca.crt"])

    bin_dir = find_bin_dir()
    subprocess.run(_as_service_user([str(bin_dir / "initdb"), "-D", str(data), "--username", "postgres",
                                     "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions"]),
                   check=True, capture_output=True)
    args = [a.replace("/etc/xorj/postgresql-tls/", f"{tls_dir}/").replace("/etc/xorj/postgresql/", f"{etc}/")
            for a in container["args"][1:]]  # after "postgres"
    port = free_port()
    log = open(root / "postgres.log", "ab")
    server = subprocess.Popen(
        _as_service_user([str(bin_dir / "postgres"), "-D", str(data), *args, "-c", "listen_addresses=127.0.0.1",
                          "-c", f"port={port}", "-c", f"unix_socket_directories={socket_dir}", "-c", "fsync=off"]),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(bin_dir / "pg_isready"), "-h", str(socket_dir), "-p", str(port)],
                             capture_output=True).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, (root / "postgres.log").read_text()
            time.sleep(0.2)
        # what the image's entrypoint does first (POSTGRES_DB), then the chart's init script
        psql_env = {**os.environ, "PGHOST": str(socket_dir), "PGPORT": str(port), "POSTGRES_USER": "postgres",
                    "POSTGRES_DB": env["POSTGRES_DB"], "XORJ_LEDGER_OWNER": ledger_secret["username"],
                    "XORJ_LEDGER_OWNER_PASSWORD": ledger_secret["password"]}
        psql = str(bin_dir / "psql") if (bin_dir / "psql").exists() else shutil.which("psql")
        subprocess.run(_as_service_user([psql, "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "postgres", "-c",
                                         f'CREATE DATABASE "{env["POSTGRES_DB"]}"']),
                       env=psql_env, check=True, capture_output=True)
        init = subprocess.run(_as_service_user(["sh", str(root / "10-xorj-owner.sh")]), env=psql_env,
                              capture_output=True, text=True)
        assert init.returncode == 0, init.stderr
        yield BundledLedger(root, port, ledger_secret["dsn"], root / "ca.crt", ledger_secret["superuser-password"])
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_the_operators_dsn_verifies_the_server_and_is_an_owner_not_a_superuser(bundled_ledger) -> None:
    dsn = bundled_ledger.local(bundled_ledger.dsn)
    assert conninfo_to_dict(bundled_ledger.dsn)["sslmode"] == "verify-full"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        role = conn.execute("SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles "
                            "WHERE rolname = current_user").fetchone()
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database "
                             "WHERE datname = current_database()").fetchone()[0]
    assert role == (False, True, False) and owner == conninfo_to_dict(dsn)["user"]
    assert migrate(dsn)  # the operator migrates as this role
    login = ensure_executor_login(dsn, "team-a", generate_password())
    with psycopg.connect(login.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)


def test_the_bootstrap_superuser_has_no_network_login(bundled_ledger) -> None:
    superuser = with_credentials(bundled_ledger.dsn, "postgres", bundled_ledger.superuser_password,
                                 dbname="postgres")
    for sslmode in ("verify-full", "disable"):
        with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection"):
            psycopg.connect(bundled_ledger.local(superuser, sslmode=sslmode), connect_timeout=5).close()


def test_plain_tcp_and_a_wrong_ca_are_refused(bundled_ledger, tmp_path) -> None:
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection"):
        psycopg.connect(bundled_ledger.local(bundled_ledger.dsn, sslmode="disable"), connect_timeout=5).close()
    other_ca, _, _ = issue([SERVICE_HOST])
    (tmp_path / "other.crt").write_bytes(other_ca)
    wrong = with_credentials(bundled_ledger.local(bundled_ledger.dsn), conninfo_to_dict(bundled_ledger.dsn)["user"],
                             conninfo_to_dict(bundled_ledger.dsn)["password"], sslrootcert=str(tmp_path / "other.crt"))
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong, connect_timeout=5).close()
