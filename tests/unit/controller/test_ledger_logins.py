"""The operator's executor ledger logins: the DSN and Secret it hands to a namespace (pure parts)."""

from __future__ import annotations

import base64

import pytest
from psycopg.conninfo import conninfo_to_dict

from xorj.controller import ledger_logins
from xorj.controller.tradingstrategy.desired import LEDGER_CA_MOUNT_DIR
from xorj.errors import InvalidInputError
from xorj.ledger.roles import ExecutorLogin, executor_login_name, with_credentials


def test_the_executors_dsn_drops_the_operators_credentials_and_points_at_the_mounted_ca(tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    owner = f"postgresql://owner:s3cret@db.xorj.svc:5432/xorj?sslmode=verify-full&sslrootcert={ca}"
    base, ca_bytes = ledger_logins.executor_dsn_base(owner, None)
    params = conninfo_to_dict(base)
    assert "user" not in params and "password" not in params and "s3cret" not in base
    assert params == {"host": "db.xorj.svc", "port": "5432", "dbname": "xorj", "sslmode": "verify-full",
                      "sslrootcert": f"{LEDGER_CA_MOUNT_DIR}/ca.crt"}
    assert ca_bytes == ca.read_bytes()


def test_a_configured_executor_dsn_wins_and_without_a_ca_none_is_given() -> None:
    base, ca = ledger_logins.executor_dsn_base("postgresql://owner:pw@127.0.0.1:5432/xorj",
                                               "postgresql://10.0.0.9:6432/xorj?sslmode=require")
    assert conninfo_to_dict(base) == {"host": "10.0.0.9", "port": "6432", "dbname": "xorj", "sslmode": "require"}
    assert ca is None


def test_the_secret_carries_the_dsn_the_ca_and_the_login_but_no_password_outside_data() -> None:
    login = ExecutorLogin("team-a", "xorj_exec_team-a", "host=db user=xorj_exec_team-a password=pw1 dbname=xorj")
    secret = ledger_logins.login_secret("team-a", "xorj-ledger-executor", "dsn", login, b"CA")
    assert secret["metadata"]["annotations"] == {ledger_logins.LOGIN_ANNOTATION: "xorj_exec_team-a"}
    assert base64.b64decode(secret["data"]["dsn"]).decode() == login.dsn
    assert base64.b64decode(secret["data"]["ca.crt"]) == b"CA"
    assert "pw1" not in repr(login) and "pw1" not in str(secret["metadata"])


def test_login_names_fit_postgres_and_differ_per_database_and_namespace() -> None:
    assert executor_login_name("xorj", "team-a") == "xorj_exec_team-a"
    long_db, long_ns = "d" * 63, "n" * 63
    names = {executor_login_name(db, ns) for db in (long_db, long_db[:-1]) for ns in (long_ns, long_ns[:-1])}
    assert len(names) == 4 and all(len(n.encode()) <= 63 for n in names)
    with pytest.raises(InvalidInputError, match="namespace"):
        executor_login_name("xorj", "Team_A")


def test_credentials_replace_the_user_and_keep_tls_settings() -> None:
    dsn = with_credentials("postgresql://owner:pw@h:5432/xorj?sslmode=verify-full&sslrootcert=/ca", "exec", "p@ss:w/rd")
    assert conninfo_to_dict(dsn) == {"host": "h", "port": "5432", "dbname": "xorj", "sslmode": "verify-full",
                                     "sslrootcert": "/ca", "user": "exec", "password": "p@ss:w/rd"}
