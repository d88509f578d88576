"""Postgres roles of the ledger: the owner that migrates, and one executor login per namespace.

- The **owner** is the operator's login: it owns the schema, runs the migrations, and has CREATEROLE
  (to make executor logins) but is not a superuser. :func:`bootstrap_owner` makes it, run once by
  whoever holds a superuser (the chart's Postgres init script, a DBA, the development server).
- The **executor group** (``<database>_executor``, made by migration 0008) holds exactly the
  privileges executors use. It has no login.
- A **signer login** per namespace (migration 0014, :func:`ensure_signer_login`) is a member of the
  signer group and may only read its namespace's trades and attempts (the signer boundary's checks).
- An **executor login** per watched namespace is a member of that group; row-level security lets it
  see and write only trades whose strategy is ``<its namespace>/...``. The operator makes it with
  :func:`ensure_executor_login`, and gives its DSN to the namespace's executors (a Secret).

Passwords are sent to the server already hashed (SCRAM, computed here by libpq), so they appear in no
server log or statement statistics.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from xorj.errors import InvalidInputError, LedgerError
from xorj.ledger.pool import translated_errors

# Postgres truncates identifiers at NAMEDATALEN - 1 bytes.
MAX_ROLE_NAME = 63
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ExecutorLogin:
    """An executor login and the DSN its executors connect with (never logged: it holds the password)."""

    namespace: str
    login: str
    dsn: str

    def __repr__(self) -> str:  # the DSN carries the password
        return f"ExecutorLogin(namespace={self.namespace!r}, login={self.login!r})"


def check_namespace(namespace: str) -> str:
    if not (isinstance(namespace, str) and len(namespace) <= 63 and _NAMESPACE.match(namespace)):
        raise InvalidInputError(
            f"namespace: must be a Kubernetes namespace name (lowercase RFC 1123 label, at most 63 characters), "
            f"got {namespace!r}"
        )
    return namespace


def executor_login_name(database: str, namespace: str) -> str:
    """``<database>_exec_<namespace>``: unique per database and namespace on a shared server (roles are
    cluster-wide), shortened with a digest of both when longer than Postgres allows."""
    return _login_name(database, namespace, "exec")


def signer_login_name(database: str, namespace: str) -> str:
    """``<database>_sig_<namespace>``: the signer boundary's login for ``namespace`` (migration 0014)."""
    return _login_name(database, namespace, "sig")


def _login_name(database: str, namespace: str, kind: str) -> str:
    check_namespace(namespace)
    name = f"{database}_{kind}_{namespace}"
    if len(name.encode()) <= MAX_ROLE_NAME:
        return name
    digest = hashlib.sha256(f"{database}/{namespace}".encode()).hexdigest()[:10]
    return f"{database.encode()[:20].decode(errors='ignore')}_{kind}_{namespace[:26]}_{digest}"


def generate_password() -> str:
    return secrets.token_urlsafe(32)


def with_credentials(dsn: str, user: str, password: str | None, **overrides: str) -> str:
    """``dsn`` (URL or key=value) for another user: same host, database and TLS settings."""
    params = conninfo_to_dict(dsn)
    params.update({"user": user, **overrides})
    params.pop("password", None)
    if password is not None:
        params["password"] = password
    return make_conninfo("", **params)


def _hashed(conn: psycopg.Connection, user: str, password: str) -> str:
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()


def executor_group(conn: psycopg.Connection) -> str:
    """The executor group this database's migration 0008 recorded."""
    row = conn.execute("SELECT executor_group FROM ledger_roles WHERE singleton").fetchone()
    if row is None:
        raise LedgerError("ledger_roles has no executor group: the ledger is not migrated to 0008")
    group: str = row[0]
    return group


def signer_group(conn: psycopg.Connection) -> str:
    """The signer group this database's migration 0014 recorded."""
    row = conn.execute("SELECT signer_group FROM ledger_roles WHERE singleton").fetchone()
    if row is None or row[0] is None:
        raise LedgerError("ledger_roles has no signer group: the ledger is not migrated to 0014")
    group: str = row[0]
    return group


def existing_executor_login(owner_dsn: str, namespace: str, *,
                            name_of: Callable[[str, str], str] = executor_login_name) -> str | None:
    """``namespace``'s executor login (or, with ``name_of=signer_login_name``, its signer login) if the
    role exists, else None."""
    with translated_errors(), psycopg.connect(owner_dsn, autocommit=True, connect_timeout=10) as conn:
        login = name_of(conn.info.dbname, namespace)
        return login if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() else None


def ensure_executor_login(
    owner_dsn: str, namespace: str, password: str | None, *, executor_dsn_base: str | None = None
) -> ExecutorLogin:
    """Make (or update) ``namespace``'s executor login with ``password``, as the ledger's owner.

    Idempotent: the role is created if missing, its attributes and password are (re)set (``password``
    None keeps the password of an existing login), it is a member of the executor group and mapped to
    ``namespace``. Returns its DSN: ``executor_dsn_base`` (default: ``owner_dsn``, i.e. the same host,
    database and TLS settings) with the login's credentials.
    """
    return _ensure_namespace_login(owner_dsn, namespace, password, dsn_base=executor_dsn_base, kind="executor",
                                   name_of=executor_login_name, group_of=executor_group)


def ensure_signer_login(owner_dsn: str, namespace: str, password: str | None, *,
                        signer_dsn_base: str | None = None) -> ExecutorLogin:
    """Make (or update) ``namespace``'s signer login, as :func:`ensure_executor_login` does for executors:
    a member of the signer group (migration 0014), mapped to ``namespace``, that may only read that
    namespace's trades and attempts. Returns its DSN."""
    return _ensure_namespace_login(owner_dsn, namespace, password, dsn_base=signer_dsn_base, kind="signer",
                                   name_of=signer_login_name, group_of=signer_group)


def _ensure_namespace_login(owner_dsn: str, namespace: str, password: str | None, *, dsn_base: str | None,
                            kind: str, name_of: Callable[[str, str], str],
                            group_of: Callable[[psycopg.Connection], str]) -> ExecutorLogin:
    check_namespace(namespace)
    with translated_errors(), psycopg.connect(owner_dsn, autocommit=True, connect_timeout=10) as conn:
        database = conn.info.dbname
        login = name_of(database, namespace)
        group = group_of(conn)
        with conn.transaction():
            existing = conn.execute(
                "SELECT rolsuper OR rolbypassrls OR rolreplication FROM pg_roles WHERE rolname = %s", (login,)
            ).fetchone()
            if existing and existing[0]:
                raise LedgerError(f"role {login} exists with SUPERUSER, BYPASSRLS or REPLICATION: refusing to "
                                  f"make it an {kind} login; drop or fix it first")
            if not existing and password is None:
                raise LedgerError(f"{kind} login {login} does not exist: it needs a password to be made")
            # Changing SUPERUSER, REPLICATION or BYPASSRLS takes a superuser: they are set only at creation.
            statement = sql.SQL("{} ROLE {} {}").format(
                sql.SQL("ALTER" if existing else "CREATE"), sql.Identifier(login),
                sql.SQL("LOGIN INHERIT NOCREATEDB NOCREATEROLE" + (
                    "" if existing else " NOSUPERUSER NOREPLICATION NOBYPASSRLS")))
            if password is not None:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(_hashed(conn, login, password)))
            conn.execute(statement)
            # INHERIT: the login uses the group's privileges directly, and has no others.
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
            _restrict_database(conn, database, login)
            conn.execute(
                """INSERT INTO ledger_executor_logins (login, namespace) VALUES (%s, %s)
                   ON CONFLICT (login) DO UPDATE SET namespace = EXCLUDED.namespace""",
                (login, namespace),
            )
    return ExecutorLogin(namespace, login, with_credentials(dsn_base or owner_dsn, login, password))


def _restrict_database(conn: psycopg.Connection, database: str, login: str) -> None:
    """Only the owner and this database's executor logins may connect, and nobody else may make
    temporary tables. CONNECT goes to each login, not to the group: a database copied from a migrated
    one shares its group, and its logins must not reach this one. (Migration 0008 revokes PUBLIC's
    privileges too; a copied database has its own, default ones.)"""
    conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(login)))


def drop_executor_login(owner_dsn: str, namespace: str) -> bool:
    """Remove ``namespace``'s executor login; True if there was one. Sessions it already has stay
    connected until they end, but with no privilege left (the role they run as is gone)."""
    with translated_errors(), psycopg.connect(owner_dsn, autocommit=True, connect_timeout=10) as conn:
        database = conn.info.dbname
        login = executor_login_name(database, namespace)
        with conn.transaction():
            conn.execute("DELETE FROM ledger_executor_logins WHERE login = %s", (login,))
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
            if exists:
                conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                    sql.Identifier(database), sql.Identifier(login)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
        return exists is not None


def bootstrap_owner(superuser_dsn: str, database: str, owner: str, password: str | None) -> None:
    """Make ``owner`` (LOGIN CREATEROLE, not a superuser) and database ``database`` owned by it; run
    with a superuser once, before the first migration. Idempotent."""
    with translated_errors(), psycopg.connect(superuser_dsn, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        query = sql.SQL(
            "{} ROLE {} LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS"
        ).format(sql.SQL(verb), sql.Identifier(owner))
        if password is not None:
            query = sql.SQL("{} PASSWORD {}").format(query, sql.Literal(_hashed(conn, owner, password)))
        conn.execute(query)
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database),
                                                                         sql.Identifier(owner)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner)))
