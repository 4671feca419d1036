# -*- coding: utf-8 -*-
"""Which certificate a TLS server serves for a name: one handshake from where the module runs.

Standard library only: it runs on the managed host, outside any container, so it needs nothing
from the image of the server it checks (Traefik's own image or the upstream one).
"""

from __future__ import annotations

import hashlib
import socket
import ssl

# Addresses a port is published on that mean "every address of the host": reached on loopback.
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class ServedError(Exception):
    """The server could not be reached or the handshake failed; the message says which."""


def connect_address(published_address) -> str:
    """Where the host itself reaches a port published on `published_address`: loopback for a
    wildcard (empty, 0.0.0.0, ::), the address itself otherwise (brackets of an IPv6 literal dropped)."""
    address = str(published_address or "").strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    return _WILDCARDS.get(address, address)


def served_fingerprint(host: str, port: int, server_name: str = "", timeout: float = 5.0) -> str:
    """SHA-256 (lower-case hex, no colons) of the DER certificate that `host`:`port` serves in a
    handshake with SNI `server_name` (none when empty or an IP literal). The certificate is not
    verified: the caller compares the fingerprint with the one it expects."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    where = "%s:%s" % ("[%s]" % host if ":" in host else host, port)
    try:
        raw = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise ServedError("cannot connect to %s: %s" % (where, exc.strerror or exc)) from None
    try:
        with context.wrap_socket(raw, server_hostname=server_name or None) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise ServedError("TLS handshake with %s (SNI %s) failed: %s"
                          % (where, server_name or "none", exc)) from None
    finally:
        raw.close()
    if not der:
        raise ServedError("%s (SNI %s) sent no certificate" % (where, server_name or "none"))
    return hashlib.sha256(der).hexdigest()
