# -*- coding: utf-8 -*-
"""Certificate checks and rule building for the traefik role (pure functions, unit tested).

The role runs these on the controller before anything on the host changes. Every problem is
reported as one sentence that names the file it concerns and never contains key material.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import warnings

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

_PEM_CERT_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.DOTALL
)
# RFC 1123 host name, optionally with a leading wildcard label.
_HOSTNAME_RE = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    re.IGNORECASE,
)


def pem_bundle(*pems: bytes) -> str:
    """The certificates of the PEM inputs, in order, one block per certificate, newline-terminated.

    Anything else in the inputs (comments, a private key pasted by mistake) is left out.
    """
    blocks = []
    for pem in pems:
        blocks += [b.decode("ascii").replace("\r\n", "\n") for b in _PEM_CERT_RE.findall(pem)]
    if not blocks:
        raise ValueError("no PEM certificate found")
    return "\n".join(blocks) + "\n"


def leaf_fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate's DER in a PEM text, lower-case hex without colons (what
    a client hashes from the handshake)."""
    certificates = load_pem_certificates(pem.encode("ascii"))
    if not certificates:
        raise ValueError("no PEM certificate found")
    return hashlib.sha256(certificates[0].public_bytes(serialization.Encoding.DER)).hexdigest()


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM bundle, in file order (raises ValueError on a bad block)."""
    return [x509.load_pem_x509_certificate(block) for block in _PEM_CERT_RE.findall(data)]


def _public_bytes(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hostname_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching of one DNS SAN entry: a wildcard covers exactly one leftmost label."""
    pattern = pattern.lower().rstrip(".")
    hostname = hostname.lower().rstrip(".")
    if pattern == hostname:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]  # ".example.org"
    if suffix.count(".") < 2:  # never "*.org"
        return False
    if not hostname.endswith(suffix):
        return False
    label = hostname[: -len(suffix)]
    return bool(label) and "." not in label


def san_covers(cert: x509.Certificate, hostname: str) -> bool:
    """True when the certificate's subjectAltName names the host (DNS name or IP address)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    return any(hostname_matches(name, hostname) for name in san.get_values_for_type(x509.DNSName))


def _is_self_issued(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def check_certificate(
    cert_pem: bytes,
    key_pem: bytes,
    hostname: str,
    *,
    chain_pem: bytes | None = None,
    trust_pem: bytes | None = None,
    now: datetime.datetime | None = None,
    min_valid_days: int = 0,
    cert_name: str = "certificate file",
    key_name: str = "key file",
    chain_name: str = "chain file",
) -> list[str]:
    """Problems that make the certificate unfit to serve `hostname`; an empty list means fit.

    Checks: the files parse; the key is unencrypted and matches the certificate; the
    subjectAltName covers the host; the leaf and every chain certificate are valid now (and
    for `min_valid_days` more days); each certificate is issued by the next one; the chain ends
    in a self-signed root or in a certificate issued by one of `trust_pem` (system CAs).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems: list[str] = []

    try:
        certs = load_pem_certificates(cert_pem)
    except ValueError as exc:
        return [f"{cert_name}: cannot parse a PEM certificate ({exc})"]
    if not certs:
        return [f"{cert_name}: holds no PEM certificate"]
    leaf, cert_file_rest = certs[0], certs[1:]

    chain: list[x509.Certificate] = list(cert_file_rest)
    if chain_pem is not None:
        try:
            extra = load_pem_certificates(chain_pem)
        except ValueError as exc:
            return [f"{chain_name}: cannot parse a PEM certificate ({exc})"]
        if not extra:
            problems.append(f"{chain_name}: holds no PEM certificate")
        chain.extend(extra)

    # Key.
    if b"ENCRYPTED" in key_pem:
        problems.append(f"{key_name}: the private key is encrypted; Traefik needs an unencrypted key")
    else:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            problems.append(f"{key_name}: cannot parse a PEM private key")
        else:
            if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
                problems.append(
                    f"{key_name}: the private key does not match the certificate in {cert_name}"
                )

    # Host name.
    if not san_covers(leaf, hostname):
        problems.append(
            f"{cert_name}: subjectAltName does not cover the host name '{hostname}'"
            f" (certificate for {_subject(leaf)})"
        )

    # Purpose: a leaf that restricts its extended key usage must allow serverAuth.
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        problems.append(f"{cert_name}: extendedKeyUsage does not allow TLS server authentication")

    # Validity of every certificate that will be served.
    horizon = now + datetime.timedelta(days=min_valid_days)
    for index, cert in enumerate([leaf] + chain):
        name = cert_name if index < 1 + len(cert_file_rest) else chain_name
        what = "certificate" if index == 0 else f"chain certificate {_subject(cert)}"
        if cert.not_valid_before_utc > now:
            problems.append(f"{name}: {what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        if cert.not_valid_after_utc <= now:
            problems.append(f"{name}: {what} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        elif cert.not_valid_after_utc <= horizon:
            problems.append(
                f"{name}: {what} expires on {cert.not_valid_after_utc:%Y-%m-%d}, within"
                f" traefik_tls_min_valid_days ({min_valid_days})"
            )

    # Chain: each certificate signed by the next, ending at a root or at a trusted CA.
    path = [leaf] + chain
    for child, parent in zip(path, path[1:]):
        if not _issued_by(child, parent):
            problems.append(
                f"{chain_name if chain_pem is not None else cert_name}: chain out of order or broken:"
                f" {_subject(child)} is not issued by the next certificate {_subject(parent)}"
            )
            return problems
    top = path[-1]
    if not _is_self_issued(top):
        anchors = []
        if trust_pem:
            # System bundles hold a few legacy roots that newer cryptography warns about.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for block in _PEM_CERT_RE.findall(trust_pem):
                    try:
                        anchors.append(x509.load_pem_x509_certificate(block))
                    except ValueError:
                        continue
        if not any(a.subject == top.issuer and _issued_by(top, a) for a in anchors):
            problems.append(
                f"{chain_name if chain_pem is not None else cert_name}: chain incomplete: issuer"
                f" {top.issuer.rfc4514_string()} of {_subject(top)} is neither in the chain nor a trusted CA"
            )
    return problems


def check_hostname(hostname) -> str | None:
    """None when `hostname` is a usable Traefik host name, else the reason."""
    if not isinstance(hostname, str) or not hostname:
        return "must be a non-empty host name"
    try:
        ipaddress.ip_address(hostname)
        return None
    except ValueError:
        pass
    if len(hostname) > 253 or not _HOSTNAME_RE.match(hostname) or hostname.startswith("*."):
        return f"'{hostname}' is not a valid DNS host name"
    return None


def san_entry(hostname: str) -> str:
    """subjectAltName entry in OpenSSL notation for a host name or an IP address."""
    try:
        return f"IP:{ipaddress.ip_address(hostname)}"
    except ValueError:
        return f"DNS:{hostname}"


def invalid_source_ranges(ranges) -> list[str]:
    """The entries of an allow-list that are not IPv4/IPv6 addresses or CIDR networks."""
    bad = []
    for entry in ranges or []:
        try:
            ipaddress.ip_network(str(entry), strict=True)
        except ValueError:
            bad.append(str(entry))
    return bad


def _normalise_base(base: str) -> str:
    base = (base or "").strip()
    if not base or base == "/":
        return ""
    return "/" + base.strip("/")


def path_rule(hostname: str, base_path: str, prefixes) -> str:
    """Traefik v3 rule: the host and any of the path prefixes under the base path.

    A prefix `/ms` matches `/ms` and `/ms/...` but not `/msx` (PathPrefix alone would).
    """
    if "`" in hostname:
        raise ValueError("host name must not contain a backtick")
    base = _normalise_base(base_path)
    alternatives = []
    for prefix in prefixes:
        full = base + "/" + str(prefix).strip("/")
        if "`" in full:
            raise ValueError(f"path prefix {prefix!r} must not contain a backtick")
        alternatives.append(f"Path(`{full}`) || PathPrefix(`{full}/`)")
    if not alternatives:
        raise ValueError("at least one path prefix is needed")
    return f"Host(`{hostname}`) && ({' || '.join(alternatives)})"


def content_name(stem: str, digest: str, suffix: str, length: int = 16) -> str:
    """File name carrying a content hash, so a new certificate never overwrites a served one."""
    if not re.fullmatch(r"[0-9a-f]{%d,}" % length, digest or ""):
        raise ValueError("digest must be a lowercase hex string")
    return f"{stem}-{digest[:length]}{suffix}"
