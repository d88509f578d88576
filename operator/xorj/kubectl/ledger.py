"""The ledger as ``kubectl xorj`` reads it: a read-only login (migration 0011's reader group) for the
latest trader scores and the cluster-wide halt. Never tenants' trades (those come from the Kubernetes
API) and never the operator's owner DSN. The DSN is never printed, not even in an error."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from xorj.kubectl.errors import PluginError
from xorj.ledger import scores as score_rows
from xorj.ledger import statements
from xorj.ledger.records import StoredTraderScore, TradingHalt
from xorj.redaction import redact_urls

DSN_ENV = "XORJ_LEDGER_READER_DSN"
NO_DSN_HINT = f"pass --ledger-dsn or set {DSN_ENV} to a read-only ledger login (docs/kubectl-xorj.md)"


class LedgerReader:
    def __init__(self, dsn: str):
        self._dsn = dsn

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self._dsn, connect_timeout=5, autocommit=False, row_factory=dict_row)
        except psycopg.Error as exc:
            raise self._error("cannot connect to the ledger", exc) from None
        conn.read_only = True  # whatever the login may do, this session only reads
        return conn

    def scores(self, *, min_score: float | None = None, status: str | None = None,
               limit: int | None = None) -> list[StoredTraderScore]:
        with self._connect() as conn:
            try:
                return statements.run(conn, score_rows.list_scores(min_score, status, limit))
            except psycopg.Error as exc:
                raise self._error("the ledger refused to list trader scores", exc) from None

    def halt(self) -> TradingHalt:
        with self._connect() as conn:
            try:
                row = conn.execute("SELECT halted, reason, set_by, set_at FROM trading_halt WHERE singleton").fetchone()
            except psycopg.Error as exc:
                raise self._error("the ledger refused to read the trading halt", exc) from None
        if row is None:  # a tampered ledger: the executors fail closed on it too
            raise PluginError("the ledger's trading_halt row is missing (executors refuse every trade)",
                              "restore the row; see docs/security.md")
        return TradingHalt(row["halted"], row["reason"], row["set_by"], row["set_at"])

    def _error(self, what: str, exc: psycopg.Error) -> PluginError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        try:
            password = conninfo_to_dict(self._dsn).get("password")
        except psycopg.Error:
            password = None
        if password:
            first = first.replace(str(password), "REDACTED")
        first = redact_urls(first).replace(self._dsn, "REDACTED")
        hint = ("the login needs the reader group (migration 0011): ensure_reader_login"
                if isinstance(exc, psycopg.errors.InsufficientPrivilege)
                else "check the ledger is reachable from here and the read-only login's DSN")
        return PluginError(f"{what}: {first}", hint)
