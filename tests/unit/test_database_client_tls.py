"""TLS for the database modules' client tools (psql, pg_dump, pg_restore): PGSSLMODE and
PGSSLROOTCERT in the environment, forwarded to a container by name only, the CA file mounted
read-only into the throwaway docker_run container; and the local client against a real
PostgreSQL with ssl=on and a server certificate from a test CA."""

from __future__ import annotations

import datetime
import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.smartid.hermod.plugins.module_utils.database_client import (
    SSL_ROOT_CERT_IN_CONTAINER, ClientError, DatabaseClient, database_client_argument_spec)
from conftest_database import HAVE_PG, PG_BIN, PG_MISSING, PostgresCluster, require

PASSWORD = "S3cret-db-pw"


def client(connection="docker_run", **kw):
    base = dict(password=PASSWORD, host="db.example.test", port=5432, image="smartid/postgres:1",
                network="smartid", container="smartid-database")
    base.update(kw)
    return DatabaseClient(connection, "hermod", "hermod", **base)


def test_docker_run_mounts_the_ca_read_only_and_forwards_the_tls_settings_by_name():
    c = client(ssl_mode="verify-full", ssl_root_cert="/opt/smartid/docker/compose/database/tls/external-ca.pem")
    argv = c.argv("psql", ["-X"])
    assert argv[:4] == ["docker", "run", "--rm", "-i"]
    mount = argv[argv.index("--mount") + 1]
    assert mount == ("type=bind,source=/opt/smartid/docker/compose/database/tls/external-ca.pem,"
                     "target=%s,readonly" % SSL_ROOT_CERT_IN_CONTAINER)
    # By name only: the values are in the docker CLI's environment, not on its command line.
    assert ["-e", "PGSSLMODE"] == argv[argv.index("PGSSLMODE") - 1:argv.index("PGSSLMODE") + 1]
    assert "PGSSLROOTCERT" in argv and "verify-full" not in argv
    assert not any(PASSWORD in a for a in argv)
    # Options come before the image; the client's command after it.
    assert argv.index("--mount") < argv.index("smartid/postgres:1") < argv.index("psql")
    env = c.env()
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLROOTCERT"] == SSL_ROOT_CERT_IN_CONTAINER
    assert env["PGPASSWORD"] == PASSWORD


def test_local_client_reads_the_ca_where_it_is():
    c = client("local", ssl_mode="verify-ca", ssl_root_cert="/etc/ca.pem", client_bin_dir="/usr/lib/postgresql/15/bin")
    argv = c.argv("pg_dump", ["--format=custom"])
    assert argv[0] == "/usr/lib/postgresql/15/bin/pg_dump" and "--mount" not in argv and "-e" not in argv
    assert c.env()["PGSSLMODE"] == "verify-ca" and c.env()["PGSSLROOTCERT"] == "/etc/ca.pem"


def test_without_tls_settings_nothing_is_added_and_the_callers_environment_does_not_leak(monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.setenv("PGSSLROOTCERT", "/somewhere/else.pem")
    c = client()
    argv = c.argv("psql")
    assert "--mount" not in argv and "PGSSLMODE" not in argv and "PGSSLROOTCERT" not in argv
    env = c.env()
    assert "PGSSLMODE" not in env and "PGSSLROOTCERT" not in env
    tls = client(ssl_mode="require")
    assert tls.env()["PGSSLMODE"] == "require" and "PGSSLROOTCERT" not in tls.env()
    assert "--mount" not in tls.argv("psql") and "PGSSLMODE" in tls.argv("psql")


@pytest.mark.parametrize("kw, message", [
    (dict(ssl_mode="prefer"), "ssl_mode must be one of disable, require, verify-ca, verify-full, not 'prefer'"),
    (dict(ssl_mode="verify-full"), "ssl_mode verify-full needs ssl_root_cert (the CA file, PEM)"),
    (dict(ssl_mode="verify-ca", ssl_root_cert=""), "ssl_mode verify-ca needs ssl_root_cert (the CA file, PEM)"),
])
def test_bad_tls_settings_are_refused(kw, message):
    with pytest.raises(ValueError) as err:
        client(**kw)
    assert str(err.value) == message


def test_the_modules_take_the_tls_options():
    spec = database_client_argument_spec()
    assert spec["ssl_mode"]["choices"] == ["disable", "require", "verify-ca", "verify-full"]
    assert spec["ssl_root_cert"]["type"] == "path"


# --- against a real server -------------------------------------------------------------------

def _cert(subject, issuer_key, issuer, key, ca, dns=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return key, _cert(name, key, subject, key, True)


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    require(HAVE_PG, PG_MISSING)
    tmp = tmp_path_factory.mktemp("client-tls")
    ca_key, ca = _ca("Provider CA")
    _other_key, other = _ca("Other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("localhost", ca_key, ca.subject, key, False, dns="localhost")
    (tmp / "ca.pem").write_bytes(_pem(ca))
    (tmp / "other.pem").write_bytes(_pem(other))
    pg = PostgresCluster()
    # In the cluster's own folder (0700, postgres): the server reads them as postgres.
    crt, keyfile = pg.workdir / "server.crt", pg.workdir / "server.key"
    crt.write_bytes(_pem(server))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    os.chmod(keyfile, 0o600)
    for path in (crt, keyfile):
        shutil.chown(path, user="postgres")
    pg.extra_opts = "-c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s" % (crt, keyfile)
    pg.start()
    yield pg, tmp
    pg.stop()


def _local(pg, host, **kw):
    return DatabaseClient("local", pg.database, pg.user, pg.password, host=host, port=pg.port,
                          client_bin_dir=str(PG_BIN), **kw)


def test_local_client_verify_full_with_the_providers_ca_uses_tls(tls_cluster):
    pg, tmp = tls_cluster
    c = _local(pg, "localhost", ssl_mode="verify-full", ssl_root_cert=str(tmp / "ca.pem"))
    assert c.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();").strip() == "t"


def test_local_client_verify_full_refuses_another_ca(tls_cluster):
    pg, tmp = tls_cluster
    c = _local(pg, "localhost", ssl_mode="verify-full", ssl_root_cert=str(tmp / "other.pem"))
    with pytest.raises(ClientError) as err:
        c.psql("SELECT 1;")
    assert "certificate verify failed" in str(err.value)
    assert PASSWORD not in str(err.value) and pg.password not in str(err.value)


def test_local_client_verify_full_refuses_a_host_the_certificate_does_not_name(tls_cluster):
    pg, tmp = tls_cluster
    c = _local(pg, "127.0.0.1", ssl_mode="verify-full", ssl_root_cert=str(tmp / "ca.pem"))
    with pytest.raises(ClientError) as err:
        c.psql("SELECT 1;")
    assert 'does not match host name "127.0.0.1"' in str(err.value)
    # verify-ca: the same chain, no host name check.
    ca_only = _local(pg, "127.0.0.1", ssl_mode="verify-ca", ssl_root_cert=str(tmp / "ca.pem"))
    assert ca_only.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();").strip() == "t"


# --- the modules, as the role calls them -------------------------------------------------------

def _migrate(pg, tmp_path, **client):
    from conftest_database import write_fixture_sql
    from test_database_modules import run_play

    sql_dir = write_fixture_sql(tmp_path / "sql")
    args = dict({"sql_dir": str(sql_dir), "target_version": "1.0.0", "login_port": pg.port,
                 "login_user": pg.user, "login_password": pg.password, "database": pg.database}, **client)
    return run_play(tmp_path, [{"name": "migrate", "smartid.hermod.database_migrate": args}], ["-vvv"])


def test_database_migrate_verifies_the_server_with_the_local_client(tls_cluster, tmp_path):
    pg, tmp = tls_cluster
    pg.reset()
    rc, out, res = _migrate(pg, tmp_path, connection="local", client_bin_dir=str(PG_BIN), login_host="localhost",
                            ssl_mode="verify-full", ssl_root_cert=str(tmp / "other.pem"))
    assert rc != 0 and "certificate verify failed" in res[0]["msg"], out
    assert pg.password not in out
    rc, out, res = _migrate(pg, tmp_path, connection="local", client_bin_dir=str(PG_BIN), login_host="localhost",
                            ssl_mode="verify-full", ssl_root_cert=str(tmp / "ca.pem"))
    assert rc == 0 and res[0]["changed"] is True, out
    assert pg.password not in out


def test_database_migrate_refuses_verify_full_without_a_ca(tls_cluster, tmp_path):
    pg, _tmp = tls_cluster
    rc, out, res = _migrate(pg, tmp_path, connection="local", client_bin_dir=str(PG_BIN), ssl_mode="verify-full")
    assert rc != 0 and res[0]["msg"] == "ssl_mode is verify-full but all of the following are missing: ssl_root_cert"


def _postgres_image():
    import subprocess  # pylint: disable=import-outside-toplevel

    from conftest_database import ROOT  # pylint: disable=import-outside-toplevel
    image = os.environ.get("DBTEST_POSTGRES_IMAGE", "smartid/postgres:dbtest")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        subprocess.run(["docker", "build", "-q", "--build-arg", "BASE_IMAGE=smartid/base:bookworm", "-t", image,
                        str(ROOT / "images" / "postgres")], check=True, capture_output=True)
    return image


@pytest.mark.docker
def test_docker_run_client_reads_the_mounted_ca_and_verifies_the_server(tls_cluster, tmp_path):
    """The throwaway client container (host network: the test server listens on loopback) gets
    the CA through the read-only mount and the TLS settings by name."""
    from test_database_modules import _docker_ok

    require(_docker_ok(), "needs a running Docker engine")
    pg, tmp = tls_cluster
    pg.reset()
    image = _postgres_image()
    common = dict(connection="docker_run", image=image, network="host", login_host="localhost")
    rc, out, res = _migrate(pg, tmp_path, ssl_mode="verify-full", ssl_root_cert=str(tmp / "other.pem"), **common)
    assert rc != 0 and "certificate verify failed" in res[0]["msg"], out
    rc, out, res = _migrate(pg, tmp_path, ssl_mode="verify-full", ssl_root_cert=str(tmp / "ca.pem"),
                            **dict(common, login_host="127.0.0.1"))
    assert rc != 0 and 'does not match host name "127.0.0.1"' in res[0]["msg"], out
    rc, out, res = _migrate(pg, tmp_path, ssl_mode="verify-full", ssl_root_cert=str(tmp / "ca.pem"), **common)
    assert rc == 0 and res[0]["changed"] is True, out
    assert pg.password not in out
