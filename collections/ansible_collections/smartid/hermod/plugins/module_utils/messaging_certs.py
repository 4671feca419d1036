# -*- coding: utf-8 -*-
"""CA certificates for callbacks: parse PEM or DER, refuse keys and bundles, expiry,
normalise to PEM <stem>.cer; names and aliases follow messaging_rules."""

from __future__ import annotations

import datetime
import os

from ansible_collections.smartid.hermod.plugins.module_utils.messaging_rules import (
    RuleError,
    cacert_alias,
    cacert_target_name,
)


class CertificateError(ValueError):
    """A CA certificate input that must not be deployed."""


def _b(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _x509():
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    return x509


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def _not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    if value is None:
        value = cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    return value


def _holds_private_key(data):
    if b"PRIVATE KEY-----" in data:
        return True
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    try:
        serialization.load_der_private_key(data, password=None)
        return True
    except TypeError:  # encrypted DER key
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def load_certificate(data, label):
    """Parse one certificate from PEM or DER bytes; returns (cert, pem_text)."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    x509 = _x509()
    if not data or not data.strip():
        raise CertificateError("%s is empty" % label)
    if _holds_private_key(data):
        raise CertificateError("%s holds a private key: refusing to deploy it as a CA certificate"
                               % label)
    if b"-----BEGIN" in data:
        count = data.count(b"-----BEGIN CERTIFICATE-----")
        if count == 0:
            raise CertificateError("%s is PEM but holds no CERTIFICATE block" % label)
        if count > 1:
            raise CertificateError("%s holds %d certificates: put each in its own file"
                                   % (label, count))
        try:
            cert = x509.load_pem_x509_certificate(data)
        except Exception as exc:  # pylint: disable=broad-except
            raise CertificateError("%s is not a valid PEM certificate (%s)" % (label, exc)) from None
    else:
        try:
            cert = x509.load_der_x509_certificate(data)
        except Exception:  # pylint: disable=broad-except
            raise CertificateError("%s is not a certificate (neither PEM nor DER X.509)"
                                   % label) from None
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return cert, pem


# A run takes minutes; a certificate that expires within this margin would expire during it.
RUN_MARGIN = datetime.timedelta(hours=1)


def check_cacerts(items, now=None, allow_expired=False, warn_days=30):
    """Validate and normalise CA certificate inputs.

    items: dicts with name, data (bytes) and origin (for messages). Names follow
    messaging_rules: two inputs with the same alias (names that differ only in case or
    suffix) are refused, as is a certificate that expires before the run can finish.
    Returns (certs, errors, warnings); certs are dicts with name (<stem>.cer),
    content (PEM), subject, not_after (ISO 8601), sha256.
    """
    from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel
    now = now or datetime.datetime.now(datetime.timezone.utc)
    certs, errors, warnings = [], [], []
    by_name = {}
    for item in items:
        origin = item.get("origin") or item.get("name")
        try:
            target = cacert_target_name(item.get("name"))
            alias = cacert_alias(item.get("name"))
        except RuleError as exc:
            errors.append("%s: %s" % (origin, exc))
            continue
        try:
            cert, pem = load_certificate(item.get("data") or b"", origin)
        except CertificateError as exc:
            errors.append(str(exc))
            continue
        if alias in by_name:
            errors.append("%s and %s would both get the certificate alias %s (cacerts/%s): "
                          "rename one" % (by_name[alias], origin, alias, target))
            continue
        by_name[alias] = origin
        not_after = _not_after(cert)
        if not_after <= now + RUN_MARGIN:
            when = "expired on" if not_after <= now else "expires within this run, on"
            msg = "%s %s %s" % (origin, when, not_after.isoformat())
            if allow_expired:
                warnings.append(msg + " (allowed by messaging_allow_expired_cacerts)")
            else:
                errors.append(msg + " (set messaging_allow_expired_cacerts: true to deploy it anyway)")
        elif not_after - now < datetime.timedelta(days=warn_days):
            warnings.append("%s expires in %d days, on %s"
                            % (origin, (not_after - now).days, not_after.isoformat()))
        if _not_before(cert) > now:
            warnings.append("%s is not valid before %s" % (origin, _not_before(cert).isoformat()))
        certs.append({
            "name": target,
            "content": pem,
            "subject": cert.subject.rfc4514_string(),
            "not_after": not_after.isoformat(),
            "sha256": cert.fingerprint(hashes.SHA256()).hex(),
            "origin": origin,
        })
    certs.sort(key=lambda c: c["name"])
    return certs, errors, warnings


def pem_problem(text):
    """Why a deployed .cer would not load as a PEM certificate, or None."""
    data = _b(text)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return "is not PEM (no BEGIN CERTIFICATE line)"
    try:
        _x509().load_pem_x509_certificate(data)
    except Exception as exc:  # pylint: disable=broad-except
        return "is not a valid PEM certificate (%s)" % exc
    return None


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def collect_cacert_inputs(cacerts_dir, cacerts, dir_field="messaging_cacerts_dir",
                          list_field="messaging_cacerts"):
    """Gather {name, data, origin} from the controller folder and the variable list.

    An empty cacerts_dir means "no folder"; a folder that is missing or unreadable is an
    error, because deploying an empty set would remove every CA certificate on the host.
    Returns (items, errors).
    """
    items, errors = [], []
    if cacerts_dir:
        if not os.path.exists(cacerts_dir):
            errors.append("%s %s does not exist (set it to the folder of the callback CA "
                          "certificates, or to \"\" for none)" % (dir_field, cacerts_dir))
        elif not os.path.isdir(cacerts_dir):
            errors.append("%s %s is not a folder" % (dir_field, cacerts_dir))
        elif not os.access(cacerts_dir, os.R_OK | os.X_OK):
            errors.append("%s %s cannot be read" % (dir_field, cacerts_dir))
        else:
            for name in sorted(os.listdir(cacerts_dir)):
                path = os.path.join(cacerts_dir, name)
                if name.startswith(".") or name.lower() in ("readme.md", "readme") \
                        or not os.path.isfile(path):
                    continue
                try:
                    items.append({"name": name, "data": _read(path), "origin": path})
                except OSError as exc:
                    errors.append("%s cannot be read: %s" % (path, exc.strerror))
    for index, entry in enumerate(cacerts or []):
        label = "%s[%d]" % (list_field, index)
        if not isinstance(entry, dict):
            errors.append("%s must be a mapping with name and content or src" % label)
            continue
        name = entry.get("name")
        if entry.get("src") and not name:
            name = os.path.basename(entry["src"])
        if not name:
            errors.append("%s.name is missing" % label)
            continue
        label = "%s (name=%s)" % (label, name)
        if entry.get("content"):
            data = entry["content"]
            data = data.encode("utf-8") if isinstance(data, str) else data
        elif entry.get("src"):
            try:
                data = _read(entry["src"])
            except OSError as exc:
                errors.append("%s.src %s cannot be read: %s" % (label, entry["src"], exc.strerror))
                continue
            label = "%s from %s" % (label, entry["src"])
        else:
            errors.append("%s needs content or src" % label)
            continue
        items.append({"name": name, "data": data, "origin": label})
    return items, errors


def resolve(path, base_dir):
    """A controller path relative to base_dir (the playbook's folder) made absolute."""
    if not path or os.path.isabs(path):
        return path
    return os.path.join(base_dir or os.getcwd(), path)


def managed_cacerts(cacerts_dir="", cacerts=None, base_dir=None, allow_expired=False,
                    warn_days=30, now=None):
    """The managed CA set from the folder and the list: (certs, errors, warnings)."""
    entries = []
    for entry in cacerts or []:
        if isinstance(entry, dict) and entry.get("src"):
            entry = dict(entry, src=resolve(entry["src"], base_dir))
        entries.append(entry)
    items, errors = collect_cacert_inputs(resolve(cacerts_dir, base_dir), entries)
    certs, cert_errors, warnings = check_cacerts(items, now=now, allow_expired=allow_expired,
                                                 warn_days=warn_days)
    return certs, errors + cert_errors, warnings
