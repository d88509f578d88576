"""The operator makes each watched namespace's executor login and hands it to the namespace's
executors in a Secret (issue 11 item 5), running as the ledger's owner, which is not a superuser."""

from __future__ import annotations

import base64

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.operator.conftest import Kubectl
from tests.polling import wait_for
from xorj.controller.tradingstrategy.desired import LEDGER_CA_MOUNT_DIR
from xorj.ledger.roles import executor_login_name, signer_login_name, with_credentials

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

SECRET = "xorj-ledger-executor"


def _secret_data(kube: Kubectl) -> dict[str, bytes] | None:
    secret = kube.get("secret", SECRET)
    return None if secret is None else {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_the_operator_makes_the_namespaces_login_and_its_secret(kube: Kubectl, operators, ledger_dsn: str,
                                                                 postgres_server) -> None:
    op = operators(extra_env={"XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": "true",
                              "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET": SECRET})
    data = wait_for(lambda: _secret_data(kube), 60, "the executor ledger Secret")
    params = conninfo_to_dict(data["dsn"].decode())
    database = conninfo_to_dict(ledger_dsn)["dbname"]
    assert params["user"] == executor_login_name(database, kube.namespace)
    assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", f"{LEDGER_CA_MOUNT_DIR}/ca.crt")
    assert data["ca.crt"] == postgres_server.ca_file.read_bytes()
    secret = kube.get("secret", SECRET)
    assert secret["metadata"]["annotations"]["trading.xorj.io/ledger-login"] == params["user"]
    # the DSN works, verified against the CA the Secret carries (written where the pod mounts it)
    local = with_credentials(data["dsn"].decode(), params["user"], params["password"],
                             sslrootcert=str(postgres_server.ca_file))
    with psycopg.connect(local) as conn:
        assert conn.execute("SELECT namespace FROM ledger_executor_logins").fetchall() == [(kube.namespace,)]
        assert conn.execute("SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles "
                            "WHERE rolname = session_user").fetchone() == (False, False, False)
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)
    # a restarted operator keeps the login and its password (it never reads the Secret's data)
    op.stop()
    operators(extra_env={"XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": "true",
                         "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET": SECRET})
    with psycopg.connect(local) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _secret_data(kube) == data
    text = op.log_text()
    assert params["password"] not in text and "executor ledger login made" in text


def test_with_the_signer_sidecar_the_secret_carries_a_signer_only_login(kube: Kubectl, operators, ledger_dsn: str,
                                                                        postgres_server) -> None:
    op = operators(extra_env={"XORJ_OPERATOR_EXECUTOR_LEDGER_LOGINS": "true",
                              "XORJ_OPERATOR_EXECUTOR_LEDGER_SECRET": SECRET,
                              "XORJ_OPERATOR_EXECUTOR_SIGNER_SIDECAR": "true"})
    data = wait_for(lambda: _secret_data(kube), 60, "the executor ledger Secret")
    assert "dsn" in data and "signer-dsn" in data
    params = conninfo_to_dict(data["signer-dsn"].decode())
    assert params["user"] == signer_login_name(conninfo_to_dict(ledger_dsn)["dbname"], kube.namespace)
    annotations = kube.get("secret", SECRET)["metadata"]["annotations"]
    assert annotations["trading.xorj.io/signer-login"] == params["user"]
    local = with_credentials(data["signer-dsn"].decode(), params["user"], params["password"],
                             sslrootcert=str(postgres_server.ca_file))
    with psycopg.connect(local, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)  # it reads its namespace
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE trades SET state = 'FAILED'")  # and writes nothing
    assert params["password"] not in op.log_text()
