# -*- coding: utf-8 -*-
"""The service's TLS keystore: a PKCS#12 file opens with its password, or a PEM key and
certificate to build it from belong together."""

from __future__ import annotations



def _b(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _x509():
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    return x509


def check_keystore(data, password, label):
    """Open a PKCS#12 keystore with its password; returns error strings."""
    from cryptography.hazmat.primitives.serialization import pkcs12  # pylint: disable=import-outside-toplevel
    if not password:
        return ["messaging_keystore_password is empty: the keystore needs a password"]
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, _b(password))
    except ValueError:
        return ["%s cannot be opened with messaging_keystore_password: wrong password or not a "
                "PKCS#12 file" % label]
    errors = []
    if key is None:
        errors.append("%s holds no private key" % label)
    if cert is None:
        errors.append("%s holds no certificate" % label)
    return errors


def check_key_pair(key_data, cert_data, key_label, cert_label, passphrase=None):
    """The PEM key and certificate for a keystore to be built belong together."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    errors = []
    try:
        key = serialization.load_pem_private_key(_b(key_data), password=_b(passphrase) if passphrase else None)
    except Exception:  # pylint: disable=broad-except
        return ["%s is not a readable PEM private key (wrong passphrase?)" % key_label]
    try:
        cert = _x509().load_pem_x509_certificate(_b(cert_data))
    except Exception:  # pylint: disable=broad-except
        return ["%s is not a valid PEM certificate" % cert_label]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        errors.append("%s does not belong to the private key %s" % (cert_label, key_label))
    return errors


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def check_keystore_settings(tls_termination="traefik", keystore_src="", keystore_key_src="",
                            keystore_cert_src="", keystore_password="",
                            keystore_key_passphrase=""):
    """The keystore settings of a service that terminates TLS itself; controller paths."""
    if tls_termination != "service":
        return []
    src, key_src, cert_src = keystore_src, keystore_key_src, keystore_cert_src
    if src and (key_src or cert_src):
        return ["set either messaging_keystore_src or messaging_keystore_key_src/cert_src, not both"]
    if src:
        try:
            data = _read(src)
        except OSError as exc:
            return ["messaging_keystore_src %s cannot be read: %s" % (src, exc.strerror)]
        return check_keystore(data, keystore_password, "messaging_keystore_src %s" % src)
    if key_src and cert_src:
        errors = []
        if not keystore_password:
            errors.append("messaging_keystore_password is empty: the keystore needs a password")
        try:
            key_data, cert_data = _read(key_src), _read(cert_src)
        except OSError as exc:
            return errors + ["%s cannot be read: %s" % (exc.filename, exc.strerror)]
        return errors + check_key_pair(key_data, cert_data,
                                       "messaging_keystore_key_src %s" % key_src,
                                       "messaging_keystore_cert_src %s" % cert_src,
                                       keystore_key_passphrase or None)
    return ["messaging_tls_termination is service: set messaging_keystore_src (a .p12) or both "
            "messaging_keystore_key_src and messaging_keystore_cert_src (PEM)"]
