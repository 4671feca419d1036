"""The callback trust store: every PEM certificate in cacerts/*.cer.

Logs one `INFO: Adding certificate <file> using alias <alias>` line per accepted
file, in file-name order, before the banner (the bundle checks this). A file that
is not a PEM certificate is reported as an ERROR and skipped; the service goes on.
Names follow the deployment's rules (hermod_ref.rules): two files that would get the same
alias (names that differ only in case) refuse the start, as the deployment refuses them.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .. import rules

log = logging.getLogger("hermod.truststore")


class CacertsError(ValueError):
    """The cacerts folder holds files the service must not start with."""


@dataclass
class TrustStore:
    # alias -> PEM text of all certificates in that file (a file may hold a chain)
    entries: dict[str, str]

    def pem_bundle(self) -> str:
        return "".join(self.entries.values())

    def ssl_context(self, trust_system_cas: bool) -> ssl.SSLContext:
        """Client context for callbacks: verify the peer and its host name."""
        ctx = ssl.create_default_context() if trust_system_cas else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if self.entries:
            ctx.load_verify_locations(cadata=self.pem_bundle())
        return ctx


def _read_certificates(path: str) -> list[x509.Certificate]:
    """All certificates in a PEM file; ValueError says why a file is unusable."""
    with open(path, "rb") as fh:
        data = fh.read()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("no PEM certificate block (-----BEGIN CERTIFICATE-----) found")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"malformed PEM certificate ({exc})") from None


def load(folder: str) -> TrustStore:
    entries: dict[str, str] = {}
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        log.warning("Certificate folder %s does not exist: callbacks trust no extra CA", folder)
        return TrustStore(entries)
    except (PermissionError, NotADirectoryError) as exc:
        log.warning("Certificate folder %s is not readable (%s): callbacks trust no extra CA",
                    folder, exc.strerror or exc)
        return TrustStore(entries)
    cer_names = [name for name in names if name.endswith(".cer")]
    problems = rules.check_cacert_names([(name, os.path.join(folder, name)) for name in cer_names])
    if problems:
        raise CacertsError("; ".join(problems))
    for name in cer_names:
        path = os.path.join(folder, name)
        alias = rules.cacert_alias(name)
        try:
            certs = _read_certificates(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.error("Certificate %s not added: %s", name, reason)
            continue
        entries[alias] = "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)
        log.info("Adding certificate %s using alias %s", name, alias)
    return TrustStore(entries)
