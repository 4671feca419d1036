"""TLS to an external database: the validation rule (database_rules.check_tls) and its place
in smartid.hermod.validate. Every refusal names the variable."""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.smartid.hermod.plugins.action import validate
from ansible_collections.smartid.hermod.plugins.module_utils import database_rules

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def _ca(not_after=NOW + datetime.timedelta(days=365)):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Provider Root CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=365)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "provider-ca.pem"
    path.write_bytes(_ca()[1].public_bytes(serialization.Encoding.PEM))
    return str(path)


def check(**kw):
    return database_rules.check_tls(**dict(dict(external=True, now=NOW), **kw))


def test_container_mode_is_not_checked():
    assert database_rules.check_tls(external=False, sslmode="nonsense", ca_file="") == ([], [])


def test_verify_full_with_a_readable_ca_passes(ca_file):
    assert check(sslmode="verify-full", ca_file=ca_file) == ([], [])
    assert check(sslmode="verify-ca", ca_file=ca_file) == ([], [])


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca"])
def test_verification_without_a_ca_file_is_refused_naming_the_variable(mode):
    errors, _ = check(sslmode=mode, ca_file="")
    assert errors == ["database_external_ca_file must name the database provider's CA file (PEM, on the "
                      "controller) when database_external_sslmode is %s" % mode]


def test_a_missing_or_unreadable_ca_file_is_refused(tmp_path):
    errors, _ = check(sslmode="verify-full", ca_file=str(tmp_path / "nope.pem"))
    assert errors == ["database_external_ca_file %s is not a readable file (No such file or directory)"
                      % (tmp_path / "nope.pem")]
    errors, _ = check(sslmode="verify-full", ca_file=str(tmp_path))
    assert len(errors) == 1 and errors[0].startswith("database_external_ca_file %s is not a readable file" % tmp_path)
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.pem"
        locked.write_text("x")
        locked.chmod(0)
        assert check(sslmode="verify-full", ca_file=str(locked))[0]


def test_a_file_without_a_certificate_or_with_a_key_is_refused(tmp_path, ca_file):
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert check(sslmode="verify-full", ca_file=str(junk))[0] == [
        "database_external_ca_file %s holds no PEM certificate" % junk]
    der = tmp_path / "ca.der"
    der.write_bytes(_ca()[1].public_bytes(serialization.Encoding.DER))
    assert check(sslmode="verify-full", ca_file=str(der))[0] == [
        "database_external_ca_file %s holds no PEM certificate" % der]
    key, cert = _ca()
    with_key = tmp_path / "with-key.pem"
    with_key.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert check(sslmode="verify-full", ca_file=str(with_key))[0] == [
        "database_external_ca_file %s holds a private key: give the CA certificate only" % with_key]


def test_an_expired_ca_is_refused(tmp_path):
    path = tmp_path / "old.pem"
    path.write_bytes(_ca(NOW - datetime.timedelta(days=1))[1].public_bytes(serialization.Encoding.PEM))
    assert check(sslmode="verify-full", ca_file=str(path))[0] == [
        "database_external_ca_file %s: every certificate in it has expired (the last on 2026-05-31)" % path]


@pytest.mark.parametrize("mode", ["prefer", "allow", "Verify-Full", "", None, "on"])
def test_an_unknown_sslmode_is_refused_naming_the_variable(mode, ca_file):
    errors, _ = check(sslmode=mode, ca_file=ca_file)
    assert errors == ["database_external_sslmode must be one of disable, require, verify-ca, verify-full (is %r)" % mode]


@pytest.mark.parametrize("mode", ["disable", "require"])
def test_no_verification_is_allowed_with_a_warning(mode):
    errors, warnings = check(sslmode=mode, ca_file="")
    assert errors == [] and len(warnings) == 1
    assert warnings[0].startswith("database_external_sslmode is %s: the server's certificate is not verified" % mode)


def test_another_role_names_its_own_variables():
    errors, _ = check(sslmode="verify-full", ca_file="", sslmode_var="messaging_database_sslmode",
                      ca_file_var="messaging_database_ca_file")
    assert errors[0].startswith("messaging_database_ca_file must name")


def test_the_validate_action_runs_the_rule(ca_file):
    assert validate.CONCERNS["database_tls"](external=True, sslmode="verify-full", ca_file=ca_file) == ([], [])
    errors, _ = validate.CONCERNS["database_tls"](external=True, sslmode="verify-full", ca_file="")
    assert errors and errors[0].startswith("database_external_ca_file")
