"""Unit tests of the traefik role's certificate validation and rule building."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.smartid.hermod.plugins.filter import traefik_filters
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_certs
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls as core

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make(cn, issuer=None, issuer_key=None, *, ca=False, sans=None, ips=None,
          not_before=NOW - DAY, not_after=NOW + 90 * DAY, eku=None):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    names = [x509.DNSName(s) for s in (sans or [])]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in (ips or [])]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


def _pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key, password=None):
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


@pytest.fixture(scope="module")
def pki():
    root, root_key = _make("Test Root", ca=True, not_after=NOW + 3650 * DAY)
    inter, inter_key = _make("Test Intermediate", root, root_key, ca=True)
    leaf, leaf_key = _make("msg.example.org", inter, inter_key,
                           sans=["msg.example.org", "*.apps.example.org"], ips=["127.0.0.1"],
                           eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    return {"root": root, "root_key": root_key, "inter": inter, "inter_key": inter_key,
            "leaf": leaf, "leaf_key": leaf_key}


def check(pki, hostname="msg.example.org", **kw):
    args = {"chain_pem": _pem(pki["inter"]), "now": NOW, "cert_name": "server.crt",
            "key_name": "server.key", "chain_name": "chain.pem"}
    args.update(kw)
    cert = args.pop("cert_pem", _pem(pki["leaf"]))
    key = args.pop("key_pem", _key_pem(pki["leaf_key"]))
    return core.check_certificate(cert, key, hostname, **args)


def test_complete_chain_to_self_signed_root_is_fit(pki):
    assert check(pki, chain_pem=_pem(pki["inter"], pki["root"])) == []


def test_chain_ending_at_a_trusted_root_is_fit(pki):
    assert check(pki, trust_pem=_pem(pki["root"])) == []


def test_chain_ending_at_an_unknown_issuer_is_incomplete(pki):
    problems = check(pki)
    assert len(problems) == 1
    assert problems[0].startswith("chain.pem: chain incomplete")
    assert "Test Root" in problems[0]


def test_leaf_without_intermediate_is_incomplete_and_names_the_cert_file(pki):
    problems = check(pki, chain_pem=None, trust_pem=_pem(pki["root"]))
    assert problems == ["server.crt: chain incomplete: issuer CN=Test Intermediate of CN=msg.example.org "
                        "is neither in the chain nor a trusted CA"]


def test_fullchain_in_the_cert_file_is_accepted(pki):
    assert check(pki, cert_pem=_pem(pki["leaf"], pki["inter"]), chain_pem=None,
                 trust_pem=_pem(pki["root"])) == []


def test_chain_out_of_order_is_refused(pki):
    problems = check(pki, chain_pem=_pem(pki["root"], pki["inter"]))
    assert any("chain out of order or broken" in p and p.startswith("chain.pem") for p in problems)


def test_key_that_does_not_match_is_refused(pki):
    other = ec.generate_private_key(ec.SECP256R1())
    problems = check(pki, key_pem=_key_pem(other), trust_pem=_pem(pki["root"]))
    assert problems == ["server.key: the private key does not match the certificate in server.crt"]


def test_encrypted_key_is_refused(pki):
    problems = check(pki, key_pem=_key_pem(pki["leaf_key"], b"secret"), trust_pem=_pem(pki["root"]))
    assert len(problems) == 1 and problems[0].startswith("server.key: the private key is encrypted")


def test_garbage_key_is_refused_without_echoing_it(pki):
    problems = check(pki, key_pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                     trust_pem=_pem(pki["root"]))
    assert problems == ["server.key: cannot parse a PEM private key"]
    assert "AAAA" not in problems[0]


@pytest.mark.parametrize("host", ["other.example.org", "example.org", "a.b.apps.example.org",
                                  "127.0.0.2", "::1"])
def test_host_not_in_san_is_refused(pki, host):
    problems = check(pki, hostname=host, trust_pem=_pem(pki["root"]))
    assert len(problems) == 1
    assert problems[0].startswith(f"server.crt: subjectAltName does not cover the host name '{host}'")


@pytest.mark.parametrize("host", ["msg.example.org", "MSG.example.org.", "x.apps.example.org", "127.0.0.1"])
def test_host_in_san_is_accepted(pki, host):
    assert check(pki, hostname=host, trust_pem=_pem(pki["root"])) == []


def test_expired_certificate_is_refused(pki):
    problems = check(pki, now=NOW + 100 * DAY, trust_pem=_pem(pki["root"]))
    assert any(p.startswith("server.crt: certificate expired on") for p in problems)


def test_not_yet_valid_certificate_is_refused(pki):
    problems = check(pki, now=NOW - 2 * DAY, trust_pem=_pem(pki["root"]))
    assert any(p.startswith("server.crt: certificate is not valid before") for p in problems)


def test_expiring_within_the_minimum_is_refused(pki):
    assert check(pki, min_valid_days=30, trust_pem=_pem(pki["root"])) == []
    problems = check(pki, min_valid_days=120, trust_pem=_pem(pki["root"]))
    assert problems and "within traefik_tls_min_valid_days (120)" in problems[0]


def test_expired_intermediate_names_the_chain_file():
    root, root_key = _make("Root", ca=True, not_after=NOW + 3650 * DAY)
    inter, inter_key = _make("Old Intermediate", root, root_key, ca=True,
                             not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    leaf, leaf_key = _make("h.example.org", inter, inter_key, sans=["h.example.org"])
    problems = core.check_certificate(_pem(leaf), _key_pem(leaf_key), "h.example.org",
                                      chain_pem=_pem(inter, root), now=NOW, chain_name="chain.pem")
    assert len(problems) == 1
    assert problems[0].startswith("chain.pem: chain certificate CN=Old Intermediate expired")


def test_client_only_certificate_is_refused():
    leaf, key = _make("h.example.org", sans=["h.example.org"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    problems = core.check_certificate(_pem(leaf), _key_pem(key), "h.example.org", now=NOW,
                                      cert_name="c.pem")
    assert problems == ["c.pem: extendedKeyUsage does not allow TLS server authentication"]


def test_self_signed_leaf_is_its_own_complete_chain():
    leaf, key = _make("h.example.org", sans=["h.example.org"])
    assert core.check_certificate(_pem(leaf), _key_pem(key), "h.example.org", now=NOW) == []


def test_unparsable_certificate_is_refused():
    assert core.check_certificate(b"not pem", b"", "h", cert_name="c.pem") == [
        "c.pem: holds no PEM certificate"]


# --- the certificate concern: reads controller files, resolves relative paths, names missing files ---

def test_certificate_concern_reads_files_relative_to_base_dir(tmp_path, pki):
    (tmp_path / "server.crt").write_bytes(_pem(pki["leaf"]))
    (tmp_path / "server.key").write_bytes(_key_pem(pki["leaf_key"]))
    (tmp_path / "chain.pem").write_bytes(_pem(pki["inter"]))
    (tmp_path / "root.pem").write_bytes(_pem(pki["root"]))
    # The fixture PKI is dated around NOW, not today: assert only the date-independent outcome.
    problems = traefik_certs.certificate_problems(
        "server.crt", "server.key", "nope.example.org", chain_file="chain.pem",
        trust_file="root.pem", base_dir=str(tmp_path))
    assert any(p.startswith(f"{tmp_path}/server.crt: subjectAltName does not cover") for p in problems)


def test_certificate_concern_accepts_a_fresh_certificate(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf, key = _make("h.example.org", sans=["h.example.org"], not_before=now - DAY, not_after=now + DAY)
    (tmp_path / "c.pem").write_bytes(_pem(leaf))
    (tmp_path / "k.pem").write_bytes(_key_pem(key))
    assert traefik_certs.certificate_problems(
        str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), "h.example.org") == []


def test_certificate_concern_names_a_missing_file(tmp_path):
    problems = traefik_certs.certificate_problems(
        "missing.crt", "missing.key", "h.example.org", base_dir=str(tmp_path))
    assert problems == [f"{tmp_path}/missing.crt: cannot read the cert file (No such file or directory)",
                        f"{tmp_path}/missing.key: cannot read the key file (No such file or directory)"]


# --- rules, host names, allow-lists ---

def test_path_rule_matches_prefix_and_subpaths_only():
    assert core.path_rule("msg.example.org", "", ["/ms"]) == (
        "Host(`msg.example.org`) && (Path(`/ms`) || PathPrefix(`/ms/`))")
    assert core.path_rule("h", "/hermod/rest/", ["command", "/util/"]) == (
        "Host(`h`) && (Path(`/hermod/rest/command`) || PathPrefix(`/hermod/rest/command/`)"
        " || Path(`/hermod/rest/util`) || PathPrefix(`/hermod/rest/util/`))")


@pytest.mark.parametrize("host,prefixes", [("a`b", ["/ms"]), ("h", ["/m`s"]), ("h", [])])
def test_path_rule_refuses_injection_and_empty(host, prefixes):
    with pytest.raises(ValueError):
        core.path_rule(host, "", prefixes)


def test_invalid_source_ranges():
    assert core.invalid_source_ranges(["10.0.0.0/8", "::1/128", "127.0.0.1", "fd00::/8"]) == []
    assert core.invalid_source_ranges(["10.0.0.1/8", "300.0.0.0/8", "nope"]) == [
        "10.0.0.1/8", "300.0.0.0/8", "nope"]


@pytest.mark.parametrize("host", ["localhost", "msg.example.org", "127.0.0.1", "x-1.a.b"])
def test_valid_hostnames(host):
    assert core.check_hostname(host) is None


@pytest.mark.parametrize("host", ["", "*.example.org", "a..b", "-a.b", "a b", None, "a_b.c"])
def test_invalid_hostnames(host):
    assert core.check_hostname(host)


def test_content_name():
    digest = "ab" * 32
    assert core.content_name("server", digest, ".crt") == "server-abababababababab.crt"
    with pytest.raises(ValueError):
        core.content_name("server", "XYZ", ".crt")


@given(st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True),
       st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True))
def test_wildcard_covers_exactly_one_label(label, extra):
    assert core.hostname_matches("*.apps.example.org", f"{label}.apps.example.org")
    assert not core.hostname_matches("*.apps.example.org", f"{extra}.{label}.apps.example.org")
    assert not core.hostname_matches("*.apps.example.org", "apps.example.org")
    assert not core.hostname_matches("*.org", f"{label}.org")


@pytest.mark.parametrize("host,entry", [("msg.example.org", "DNS:msg.example.org"),
                                        ("127.0.0.1", "IP:127.0.0.1"), ("::1", "IP:::1")])
def test_san_entry(host, entry):
    assert traefik_filters.traefik_san_entry(host) == entry


def test_pem_bundle_keeps_only_certificates_in_order(tmp_path, pki):
    key = _key_pem(pki["leaf_key"])
    (tmp_path / "c.pem").write_bytes(b"# leaf\n" + _pem(pki["leaf"]) + key)
    (tmp_path / "chain.pem").write_bytes(_pem(pki["inter"]).replace(b"\n", b"\r\n"))
    bundle = traefik_filters.traefik_pem_bundle(["c.pem", "", "chain.pem"], base_dir=str(tmp_path))
    assert bundle == (_pem(pki["leaf"]) + _pem(pki["inter"])).decode()
    assert "PRIVATE KEY" not in bundle and "\r" not in bundle and bundle.endswith("-----\n")
    assert [c.subject for c in core.load_pem_certificates(bundle.encode())] == [
        pki["leaf"].subject, pki["inter"].subject]


def test_pem_bundle_without_certificate_fails(tmp_path):
    (tmp_path / "k.pem").write_text("nothing")
    with pytest.raises(traefik_filters.AnsibleFilterError):
        traefik_filters.traefik_pem_bundle([str(tmp_path / "k.pem")])


def test_pem_fingerprint_is_the_sha256_of_the_first_certificate(pki):
    from cryptography.hazmat.primitives import hashes
    bundle = (_pem(pki["leaf"]) + _pem(pki["inter"])).decode()
    expected = pki["leaf"].fingerprint(hashes.SHA256()).hex()
    assert traefik_filters.traefik_pem_fingerprint(bundle) == expected
    with pytest.raises(traefik_filters.AnsibleFilterError, match="no PEM certificate"):
        traefik_filters.traefik_pem_fingerprint("nothing")
