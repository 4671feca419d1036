"""smartid.hermod.pki_check: one read of a small PKI against its inputs (module_utils/pki_check.py)."""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.smartid.hermod.plugins.module_utils import pki_check

NOW = datetime.datetime.now(datetime.timezone.utc)


def _key(path, size=2048):
    key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)
    return key


def _cert(path, key, cn, issuer_key, issuer_name=None, ca=False, sans=(), days=365):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1))
               .not_valid_after(NOW + datetime.timedelta(days=days)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)
    return cert


def make_pki(tmp_path, hosts=("idm.test", "da.test"), server_days=365):
    ca_key = _key(tmp_path / "ca.key")
    ca = _cert(tmp_path / "ca.pem", ca_key, "Test CA", ca_key, ca=True)
    server_key = _key(tmp_path / "server.key")
    _cert(tmp_path / "server.pem", server_key, hosts[0], ca_key, issuer_name=ca.subject, sans=hosts, days=server_days)


def spec(tmp_path, hosts=("idm.test", "da.test"), size=2048, days=0):
    return [
        {"name": "ca", "key": {"path": str(tmp_path / "ca.key"), "type": "RSA", "size": size, "mode": "0600"},
         "cert": {"path": str(tmp_path / "ca.pem"), "mode": "0644"}, "common_name": "Test CA",
         "ca": True, "key_usage": ["keyCertSign", "cRLSign"]},
        {"name": "server", "key": {"path": str(tmp_path / "server.key"), "type": "RSA", "size": size, "mode": "0600"},
         "cert": {"path": str(tmp_path / "server.pem"), "mode": "0644"}, "common_name": hosts[0],
         "subject_alt_name": ["DNS:" + h for h in hosts], "extended_key_usage": ["serverAuth"],
         "issuer": "ca", "valid_for_days": days},
    ]


def test_a_pki_made_as_asked_has_no_problems(tmp_path):
    make_pki(tmp_path)
    assert pki_check.problems(spec(tmp_path), folders=[{"path": str(tmp_path)}]) == []


def test_a_missing_file_is_named(tmp_path):
    make_pki(tmp_path)
    os.unlink(tmp_path / "server.pem")
    assert pki_check.problems(spec(tmp_path)) == ["%s: the certificate does not exist" % (tmp_path / "server.pem")]


@pytest.mark.parametrize("change, expected", [
    (lambda p: os.chmod(p / "server.key", 0o644), "mode 0644, wanted 0600"),
    (lambda p: os.chmod(p, 0o755), "mode 0755, wanted 0700"),
])
def test_modes_are_compared(tmp_path, change, expected):
    make_pki(tmp_path)
    change(tmp_path)
    found = pki_check.problems(spec(tmp_path), folders=[{"path": str(tmp_path), "mode": "0700"}])
    assert len(found) == 1 and expected in found[0]


def test_a_new_host_name_a_new_key_size_and_a_near_expiry_are_each_reported(tmp_path):
    make_pki(tmp_path, server_days=20)
    assert any("subjectAltName" in p for p in pki_check.problems(spec(tmp_path, hosts=("idm.test", "x.test"))))
    assert any("2048-bit key, wanted 3072" in p for p in pki_check.problems(spec(tmp_path, size=3072)))
    assert any("within 30 days" in p for p in pki_check.problems(spec(tmp_path, days=30)))
    assert pki_check.problems(spec(tmp_path, days=10)) == []


def test_a_certificate_from_another_ca_or_for_another_key_is_reported(tmp_path):
    make_pki(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    make_pki(other)
    os.replace(other / "ca.pem", tmp_path / "ca.pem")
    found = pki_check.problems(spec(tmp_path))
    assert any("ca.pem: does not match its private key" in p for p in found)
    assert any("server.pem: not signed by ca" in p for p in found)


def test_forced_renewal_is_a_problem(tmp_path):
    make_pki(tmp_path)
    entries = spec(tmp_path)
    entries[1]["force"] = True
    assert pki_check.problems(entries) == ["server: renewal is forced"]
