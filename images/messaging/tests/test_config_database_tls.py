"""TLS to the database from the JDBC URL (pgjdbc's sslmode and sslrootcert): the parse, the
refusals naming spring.datasource.url, and the SSL context each mode gives asyncpg."""

from __future__ import annotations

import ssl

import pytest

import certs
from hermod_ref import config
from hermod_ref.store import db

BASE = {
    "spring": {"datasource": {"url": "jdbc:postgresql://db.example.test:5432/hermod", "username": "hermod",
                              "password": "db-pass-SECRET"}},
    "messaging": {"public-url": "https://example.test/ms"},
}


def database(url: str) -> config.Database:
    tree = {"spring": {"datasource": dict(BASE["spring"]["datasource"], url=url)},
            "messaging": BASE["messaging"]}
    return config.from_tree(tree).database


@pytest.fixture
def ca_file(tmp_path):
    _key, cert = certs.make_ca("Provider Root CA")
    path = tmp_path / "provider-ca.pem"
    path.write_bytes(certs.pem(cert))
    return str(path)


def test_without_parameters_there_is_no_tls():
    d = database("jdbc:postgresql://db.example.test:5432/hermod")
    assert (d.sslmode, d.sslrootcert) == ("disable", "")
    assert db.ssl_context(d) is False
    assert db.connect_kwargs(d)["ssl"] is False


def test_verify_full_checks_the_ca_file_and_the_host_name(ca_file):
    d = database(f"jdbc:postgresql://db.example.test:5432/hermod?sslmode=verify-full&sslrootcert={ca_file}")
    assert (d.host, d.port, d.name, d.sslmode, d.sslrootcert) == ("db.example.test", 5432, "hermod",
                                                                    "verify-full", ca_file)
    ctx = db.ssl_context(d)
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    # Only the provider's CA, not the system's store.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "Provider Root CA"),),)]
    assert db.connect_kwargs(d)["ssl"] is not None


def test_verify_ca_checks_the_chain_but_not_the_host_name(ca_file):
    d = database(f"jdbc:postgresql://10.0.0.5/hermod?sslrootcert={ca_file}&sslmode=verify-ca")
    ctx = db.ssl_context(d)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is False
    assert len(ctx.get_ca_certs()) == 1


def test_require_encrypts_without_verifying():
    d = database("jdbc:postgresql://db.example.test/hermod?sslmode=require")
    ctx = db.ssl_context(d)
    assert ctx.verify_mode == ssl.CERT_NONE and ctx.check_hostname is False


def test_pgjdbc_ssl_true_means_verify_full(ca_file):
    d = database(f"jdbc:postgresql://db.example.test/hermod?ssl=true&sslrootcert={ca_file}")
    assert d.sslmode == "verify-full"
    assert database("jdbc:postgresql://db.example.test/hermod?ssl=false").sslmode == "disable"


def test_other_driver_parameters_are_left_alone(ca_file):
    d = database(f"jdbc:postgresql://db.example.test/hermod?ApplicationName=hermod&sslmode=verify-full"
                 f"&sslrootcert={ca_file}&connectTimeout=10")
    assert d.sslmode == "verify-full"


def test_percent_encoded_path_is_decoded(tmp_path):
    _key, cert = certs.make_ca()
    path = tmp_path / "a b.pem"
    path.write_bytes(certs.pem(cert))
    d = database(f"jdbc:postgresql://h/db?sslmode=verify-ca&sslrootcert={str(path).replace(' ', '%20')}")
    assert d.sslrootcert == str(path)


@pytest.mark.parametrize("query, message", [
    ("sslmode=prefer", "sslmode must be one of disable, require, verify-ca, verify-full (is 'prefer')"),
    ("sslmode=allow", "sslmode must be one of disable, require, verify-ca, verify-full (is 'allow')"),
    ("sslmode=VERIFY-FULL", "sslmode must be one of disable, require, verify-ca, verify-full (is 'VERIFY-FULL')"),
    ("sslmode=", "sslmode must be one of disable, require, verify-ca, verify-full (is '')"),
    ("ssl=yes", "ssl must be true or false"),
    ("sslmode=require&sslmode=disable", "parameter sslmode given twice"),
    ("sslmode=verify-full", "sslmode=verify-full needs sslrootcert=<CA file (PEM) in the container>"),
    ("sslmode=verify-ca", "sslmode=verify-ca needs sslrootcert=<CA file (PEM) in the container>"),
    ("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "sslrootcert /nonexistent/ca.pem not found"),
])
def test_refusals_name_the_url(query, message):
    with pytest.raises(config.ConfigError) as err:
        database(f"jdbc:postgresql://db.example.test/hermod?{query}")
    assert str(err.value) == f"spring.datasource.url: {message}"
    assert "SECRET" not in str(err.value)


def test_a_ca_file_without_a_certificate_is_refused(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(config.ConfigError, match=r"^spring\.datasource\.url: sslrootcert .* holds no PEM CA certificate$"):
        database(f"jdbc:postgresql://h/db?sslmode=verify-full&sslrootcert={bad}")
    with pytest.raises(config.ConfigError, match=r"^spring\.datasource\.url: sslrootcert .* is not a readable file$"):
        database(f"jdbc:postgresql://h/db?sslmode=verify-full&sslrootcert={tmp_path}")


def test_repr_keeps_the_password_out(ca_file):
    d = database(f"jdbc:postgresql://h/db?sslmode=verify-full&sslrootcert={ca_file}")
    assert "SECRET" not in repr(d) and "verify-full" in repr(d)
