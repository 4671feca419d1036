"""`server.ssl`: serve HTTPS from a PKCS#12 keystore."""

from __future__ import annotations

import os
import ssl
import tempfile

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12

from ..config import Ssl


class KeystoreError(RuntimeError):
    pass


def resolve(home: str, path: str) -> str:
    """Relative keystore paths are relative to the home directory, as in the container."""
    return path if os.path.isabs(path) else os.path.join(home, path)


def server_context(home: str, cfg: Ssl) -> ssl.SSLContext:
    path = resolve(home, cfg.key_store)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise KeystoreError(f"server.ssl.key-store: cannot read {path} ({exc.strerror})") from None
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(data, cfg.key_store_password.encode() or None)
    except ValueError:
        raise KeystoreError(
            f"server.ssl.key-store-password: cannot open {path}: wrong password, or not a PKCS#12 keystore") from None
    if key is None or cert is None:
        raise KeystoreError(f"server.ssl.key-store: {path} holds no private key with a certificate")
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    pem += cert.public_bytes(Encoding.PEM) + b"".join(c.public_bytes(Encoding.PEM) for c in chain or [])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # The ssl module loads keys from files only: a private temp file that lives for
    # the duration of this call.
    fd, tmp = tempfile.mkstemp(prefix="hermod-tls-", suffix=".pem")
    try:
        os.write(fd, pem)
        os.close(fd)
        ctx.load_cert_chain(tmp)
    finally:
        os.unlink(tmp)
    return ctx
