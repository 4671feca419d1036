"""TLS to a real PostgreSQL (ssl=on, a server certificate from a test CA, pg_hba accepting TLS
connections only): what each JDBC sslmode does, and the service's start-up refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import certs
import pgtools
from helpers import make_home
from hermod_ref import config
from hermod_ref.store import db


def _server_cert(ca_key, ca_cert, dns_name: str):
    """A server certificate naming only `dns_name` (no IP address), so 127.0.0.1 is a wrong host."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


class TlsCluster:
    def __init__(self, tmp):
        self.ca_key, self.ca_cert = certs.make_ca("Test Database Provider CA")
        self.other_ca_key, self.other_ca_cert = certs.make_ca("Some Other CA")
        key, cert = _server_cert(self.ca_key, self.ca_cert, "localhost")
        self.ca_file = tmp / "provider-ca.pem"
        self.ca_file.write_bytes(certs.pem(self.ca_cert))
        self.other_ca_file = tmp / "other-ca.pem"
        self.other_ca_file.write_bytes(certs.pem(self.other_ca_cert))
        self.cluster = pgtools.Cluster()
        # In the cluster's own folder: the server (user postgres when we are root) must read them.
        self.keydir = os.path.join(self.cluster.tmp, "server-tls")
        os.mkdir(self.keydir, 0o700)
        crt, keyfile = os.path.join(self.keydir, "server.crt"), os.path.join(self.keydir, "server.key")
        with open(crt, "wb") as fh:
            fh.write(certs.pem(cert))
        # The server refuses a key file that others can read.
        with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as fh:
            fh.write(certs.key_pem(key))
        if os.geteuid() == 0:
            for path in (self.keydir, crt, keyfile):
                shutil.chown(path, "postgres", "postgres")
        self.cluster.extra_opts = f"-c ssl=on -c ssl_cert_file={crt} -c ssl_key_file={keyfile}"

    def start(self):
        self.cluster.start()
        # TLS connections only, as a managed database is set up: a plain one is refused.
        hba = os.path.join(self.cluster.data, "pg_hba.conf")
        with open(hba, "w") as fh:
            fh.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
        self.cluster._run(f"{self.cluster.bin}/pg_ctl", "-D", self.cluster.data, "reload")
        return self

    def url(self, host: str, query: str, db_name: str = "postgres") -> str:
        return f"jdbc:postgresql://{host}:{self.cluster.port}/{db_name}?{query}"


@pytest.fixture(scope="module")
def tls_pg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dbtls")
    server = TlsCluster(tmp)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.cluster.stop()
        pytest.fail(f"PostgreSQL with ssl=on did not start: {exc.stderr}")
    yield server
    server.cluster.stop()


def database(url: str) -> config.Database:
    tree = {"spring": {"datasource": {"url": url, "username": "postgres", "password": ""}},
            "messaging": {"public-url": "https://example.test/ms"}}
    return config.from_tree(tree).database


async def _ssl_in_use(d: config.Database):
    conn = await db.connect_with_retry(d, 3)
    try:
        return await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()


def ssl_in_use(d):
    return asyncio.run(_ssl_in_use(d))


def test_verify_full_with_the_providers_ca_connects_over_tls(tls_pg):
    assert ssl_in_use(database(tls_pg.url("localhost", f"sslmode=verify-full&sslrootcert={tls_pg.ca_file}"))) is True


def test_verify_full_refuses_a_certificate_from_another_ca(tls_pg):
    d = database(tls_pg.url("localhost", f"sslmode=verify-full&sslrootcert={tls_pg.other_ca_file}"))
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        ssl_in_use(d)
    assert "unable to get local issuer certificate" in err.value.verify_message


def test_verify_full_refuses_a_host_the_certificate_does_not_name(tls_pg):
    d = database(tls_pg.url("127.0.0.1", f"sslmode=verify-full&sslrootcert={tls_pg.ca_file}"))
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        ssl_in_use(d)
    assert "IP address mismatch" in err.value.verify_message


def test_verify_ca_accepts_the_chain_whatever_the_host_name(tls_pg):
    assert ssl_in_use(database(tls_pg.url("127.0.0.1", f"sslmode=verify-ca&sslrootcert={tls_pg.ca_file}"))) is True
    d = database(tls_pg.url("127.0.0.1", f"sslmode=verify-ca&sslrootcert={tls_pg.other_ca_file}"))
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl_in_use(d)


def test_require_encrypts_without_a_ca(tls_pg):
    assert ssl_in_use(database(tls_pg.url("127.0.0.1", "sslmode=require"))) is True


def test_disable_is_refused_by_a_tls_only_server(tls_pg):
    import asyncpg

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        ssl_in_use(database(tls_pg.url("127.0.0.1", "sslmode=disable")))


@pytest.fixture(scope="module")
def tls_schema_db(tls_pg):
    """A database at the current schema on the TLS-only server (set up over TLS too)."""
    admin = f"postgresql://postgres@127.0.0.1:{tls_pg.cluster.port}/postgres?sslmode=require"
    dsn = pgtools.create_database(admin, "hermod_tls")
    pgtools.apply(dsn, "V1.1.0__base_version.sql")
    return "hermod_tls"


def _home(tmp_path, tls_pg, name, host, query):
    home = make_home(tmp_path / "home", "postgresql://postgres@127.0.0.1:1/x", "http://127.0.0.1:9/cb")
    conf = home / "config" / "hermod-conf.yml"
    conf.write_text(conf.read_text().replace("jdbc:postgresql://127.0.0.1:1/x", tls_pg.url(host, query, name)))
    return home


def test_the_service_starts_on_verify_full(tls_pg, tls_schema_db, services, tmp_path):
    home = _home(tmp_path, tls_pg, tls_schema_db, "localhost", f"sslmode=verify-full&sslrootcert={tls_pg.ca_file}")
    proc = services(home)
    assert "Starting Smart ID Messaging reference" in proc.output()


@pytest.mark.parametrize("host, ca, reason", [
    ("localhost", "other", "TLS verification of the server failed: unable to get local issuer certificate"),
    ("127.0.0.1", "provider", "TLS verification of the server failed: IP address mismatch"),
])
def test_the_service_refuses_to_start_naming_the_tls_failure(tls_pg, tls_schema_db, services, tmp_path,
                                                             host, ca, reason):
    ca_file = tls_pg.ca_file if ca == "provider" else tls_pg.other_ca_file
    home = _home(tmp_path, tls_pg, tls_schema_db, host, f"sslmode=verify-full&sslrootcert={ca_file}")
    proc = services(home, wait=False)
    assert proc.wait_exit(30) == 3
    out = proc.output()
    assert (f"Cannot use database {host}:{tls_pg.cluster.port}/{tls_schema_db} (sslmode verify-full): "
            + reason) in out, out
    assert "db-secret-pw" not in out
