# -*- coding: utf-8 -*-
"""Is a small PKI on disk exactly what its inputs ask for? (smartid.hermod.pki_check)

One read of every key, signing request and certificate, compared with what the community.crypto
tasks that make them were given: key type and size, subject, subjectAltName, basic
constraints, key usages, issuer and signature, remaining validity, owner and mode. The answer
is a list of reasons (each naming its file); the making tasks run only when it is not empty, so a
rerun with nothing to change costs one module run instead of one per key, request and
certificate. Only reasons come back, never key material.
"""

from __future__ import annotations

import datetime
import os
import pwd
import stat

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # the module says so; the making tasks install the library
    HAVE_CRYPTOGRAPHY = False

# community.crypto's key usage and extended key usage spellings, as the tasks give them.
KEY_USAGES = {
    "digitalSignature": "digital_signature", "contentCommitment": "content_commitment",
    "keyEncipherment": "key_encipherment", "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement", "keyCertSign": "key_cert_sign", "cRLSign": "crl_sign",
}
CURVES = {"secp256r1": "secp256r1", "secp384r1": "secp384r1", "secp521r1": "secp521r1"}


def _eku(name):
    return {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
            "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}[name]


def _file_problems(path, spec, what):
    """Missing file, wrong owner or mode."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return ["%s: the %s does not exist" % (path, what)]
    problems = []
    if spec.get("mode") is not None and stat.S_IMODE(info.st_mode) != int(str(spec["mode"]), 8):
        problems.append("%s: mode %04o, wanted %s" % (path, stat.S_IMODE(info.st_mode), spec["mode"]))
    owner = spec.get("owner")
    if owner is not None:
        uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(str(owner)).pw_uid
        if info.st_uid != uid:
            problems.append("%s: owned by uid %d, wanted %s" % (path, info.st_uid, owner))
    return problems


def _load(path, loader, what):
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return loader(data)
    except ValueError:
        raise ValueError("%s: not a readable PEM %s" % (path, what)) from None


def _public_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_problems(path, spec):
    key = _load(path, lambda data: serialization.load_pem_private_key(data, password=None), "private key")
    if spec.get("type", "RSA") == "RSA":
        if not isinstance(key, rsa.RSAPrivateKey):
            return key, ["%s: not an RSA key" % path]
        if spec.get("size") and key.key_size != int(spec["size"]):
            return key, ["%s: %d-bit key, wanted %s" % (path, key.key_size, spec["size"])]
    else:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            return key, ["%s: not an elliptic-curve key" % path]
        if spec.get("curve") and key.curve.name != CURVES.get(spec["curve"], spec["curve"]):
            return key, ["%s: curve %s, wanted %s" % (path, key.curve.name, spec["curve"])]
    return key, []


def _extension(obj, kind):
    try:
        return obj.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _content_problems(path, obj, key, spec):
    """What a certificate or signing request says against what the tasks ask for."""
    problems = []
    if _public_bytes(obj.public_key()) != _public_bytes(key.public_key()):
        problems.append("%s: does not match its private key" % path)
    names = obj.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [spec["common_name"]]:
        problems.append("%s: subject CN %s, wanted %s" % (path, [n.value for n in names], spec["common_name"]))
    if spec.get("subject_alt_name") is not None:
        san = _extension(obj, x509.SubjectAlternativeName)
        have = sorted(_san_text(n) for n in san.value) if san else []
        if have != sorted(set(spec["subject_alt_name"])):
            problems.append("%s: subjectAltName %s, wanted %s" % (path, have, sorted(set(spec["subject_alt_name"]))))
    if spec.get("ca") is not None:
        bc = _extension(obj, x509.BasicConstraints)
        want = (bool(spec["ca"]), spec.get("path_length"), spec.get("basic_constraints_critical", True))
        if bc is None or (bc.value.ca, bc.value.path_length, bc.critical) != want:
            problems.append("%s: basic constraints differ from CA:%s pathlen:%s" % (path, spec["ca"], spec.get("path_length")))
    if spec.get("key_usage") is not None:
        ku = _extension(obj, x509.KeyUsage)
        wanted = {KEY_USAGES[u] for u in spec["key_usage"]}
        have = set()
        if ku is not None:
            for attr in KEY_USAGES.values():
                if getattr(ku.value, attr):
                    have.add(attr)
        if ku is None or have != wanted or not ku.critical:
            problems.append("%s: key usage differs from %s" % (path, spec["key_usage"]))
    if spec.get("extended_key_usage") is not None:
        eku = _extension(obj, x509.ExtendedKeyUsage)
        if eku is None or set(eku.value) != {_eku(u) for u in spec["extended_key_usage"]}:
            problems.append("%s: extended key usage differs from %s" % (path, spec["extended_key_usage"]))
    return problems


def _san_text(name):
    if isinstance(name, x509.DNSName):
        return "DNS:" + name.value
    if isinstance(name, x509.IPAddress):
        return "IP:" + str(name.value)
    return "%s:%s" % (type(name).__name__, name.value)


def _signed_by(cert, issuer_cert):
    if cert.issuer != issuer_cert.subject:
        return False
    public = issuer_cert.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                          cert.signature_hash_algorithm)
        else:
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except Exception:  # any verification failure means "not signed by it"
        return False
    return True


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def problems(entries, folders=(), now=None, certificates=None):
    """Reasons why the PKI in `entries` (and its `folders`) is not what they ask for (empty:
    nothing to make). `certificates`, a dict, receives each readable certificate file's text
    (public), as it is on disk: a caller that needs it does not read it again."""
    if not HAVE_CRYPTOGRAPHY:
        return ["the Python cryptography library is not installed"]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found, certs = [], {}
    for folder in folders:
        found += _file_problems(folder["path"], folder, "folder")
    for spec in entries:
        name = spec["name"]
        if spec.get("force"):
            found.append("%s: renewal is forced" % name)
            continue
        parts = [("key", "private key"), ("csr", "signing request"), ("cert", "certificate")]
        missing = []
        for part, what in parts:
            if spec.get(part):
                missing += _file_problems(spec[part]["path"], spec[part], what)
        if missing:
            found += missing
            continue
        try:
            key, bad = _key_problems(spec["key"]["path"], spec["key"])
            found += bad
            if bad:
                continue
            if spec.get("csr"):
                csr = _load(spec["csr"]["path"], x509.load_pem_x509_csr, "signing request")
                if not csr.is_signature_valid:
                    found.append("%s: the signing request's signature is not valid" % spec["csr"]["path"])
                found += _content_problems(spec["csr"]["path"], csr, key, spec)
            cert_path = spec["cert"]["path"]
            cert = _load(cert_path, x509.load_pem_x509_certificate, "certificate")
        except ValueError as exc:
            found.append(str(exc))
            continue
        certs[name] = cert
        if certificates is not None:
            with open(cert_path, encoding="ascii") as handle:
                certificates[name] = handle.read()
        found += _content_problems(cert_path, cert, key, spec)
        issuer = certs.get(spec["issuer"]) if spec.get("issuer") else cert
        if issuer is None:
            found.append("%s: its issuer %s could not be checked" % (cert_path, spec["issuer"]))
        elif not _signed_by(cert, issuer):
            found.append("%s: not signed by %s" % (cert_path, spec.get("issuer") or "its own key"))
        days = int(spec.get("valid_for_days") or 0)
        if _not_after(cert) <= now + datetime.timedelta(days=days):
            found.append("%s: expires %s, within %d days" % (cert_path, _not_after(cert).isoformat(), days))
    return found
