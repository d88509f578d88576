"""Read-only ledger logins (migration 0011): for people and tools on call, e.g. ``kubectl xorj``.

A reader login is a member of the ``<database>_reader`` group, which may read the latest trader
scores and the cluster-wide halt, and nothing else: no tenant's trades, attempts, audit rows or
alerts (those are read through the Kubernetes API, as the operator mirrors them). Made by the owner,
with the password sent already hashed (SCRAM), as for executor logins (:mod:`xorj.ledger.roles`).
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from xorj.errors import InvalidInputError, LedgerError
from xorj.ledger.pool import translated_errors
from xorj.ledger.roles import MAX_ROLE_NAME, _hashed, _restrict_database, with_credentials

_LOGIN = re.compile(r"^[a-z_][a-z0-9_]*$")


def reader_group(conn: psycopg.Connection) -> str:
    """The reader group this database's migration 0011 recorded."""
    row = conn.execute("SELECT reader_group FROM ledger_roles WHERE singleton").fetchone()
    if row is None or row[0] is None:
        raise LedgerError("ledger_roles has no reader group: the ledger is not migrated to 0011")
    group: str = row[0]
    return group


def ensure_reader_login(owner_dsn: str, login: str, password: str) -> str:
    """Make (or update) the read-only login ``login`` with ``password``, as the ledger's owner, and
    return its DSN (the owner's host, database and TLS settings with the login's credentials)."""
    if not (_LOGIN.match(login) and len(login) <= MAX_ROLE_NAME):
        raise InvalidInputError(f"login: must be a lowercase SQL identifier of at most {MAX_ROLE_NAME} "
                                f"characters (letters, digits, _), got {login!r}")
    with translated_errors(), psycopg.connect(owner_dsn, autocommit=True, connect_timeout=10) as conn:
        database = conn.info.dbname
        group = reader_group(conn)
        with conn.transaction():
            existing = conn.execute(
                "SELECT rolsuper OR rolbypassrls OR rolreplication OR rolcreaterole FROM pg_roles WHERE rolname = %s",
                (login,)).fetchone()
            if existing and existing[0]:
                raise LedgerError(f"role {login} exists with SUPERUSER, BYPASSRLS, REPLICATION or CREATEROLE: "
                                  "refusing to make it a reader login")
            conn.execute(sql.SQL("{} ROLE {} LOGIN INHERIT NOCREATEDB NOCREATEROLE{} PASSWORD {}").format(
                sql.SQL("ALTER" if existing else "CREATE"), sql.Identifier(login),
                sql.SQL("" if existing else " NOSUPERUSER NOREPLICATION NOBYPASSRLS"),
                sql.Literal(_hashed(conn, login, password))))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
            _restrict_database(conn, database, login)
    return with_credentials(owner_dsn, login, password)
