# -*- coding: utf-8 -*-
"""Pure logic of the messaging role: client keys, cross-field validation,
CA certificate normalisation, keystore checks, config assembly and the
start-up log analysis.

Kept free of Ansible imports so the filter plugins, the controller-side
validation module and the unit tests share one implementation.  Error
messages name the field or file at fault and never carry a secret value.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import hmac
import os
import re
from urllib.parse import urlsplit

KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CERT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Input names are free; on the host every certificate is "<stem>.cer".
CERT_INPUT_SUFFIXES = (".cer", ".crt", ".pem", ".der", ".cert")
PAIRED_CLIENT_IDS = ("idm", "da")
DEFAULT_BANNER_REGEX = r"^\s*:: .+ ::"
ALIAS_LINE_RE = re.compile(r"INFO: Adding certificate (?P<file>\S+) using alias (?P<alias>\S+)")

_CLIENT_FIELDS = {
    "client_id": "client-id",
    "key": "key",
    "group": "group",
    "callback_url": "callback-url",
    "callback_basic_auth": "callback-basic-auth",
}


class CertificateError(ValueError):
    """A CA certificate input that must not be deployed."""


# --------------------------------------------------------------------------- keys


def derive_client_key(secret, client_id):
    """HMAC-SHA256(secret, client-id) as 64 lowercase hex characters."""
    if not secret:
        raise ValueError("messaging_client_key_secret is empty")
    return hmac.new(_b(secret), _b(client_id), hashlib.sha256).hexdigest()


def api_key_header(client_id, key):
    """The X-Api-Key header value a client sends: base64("<id>:<key>")."""
    return base64.b64encode(_b("%s:%s" % (client_id, key))).decode("ascii")


def _b(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


# ------------------------------------------------------------------ clients


def normalize_client(entry):
    """Accept snake_case or the config file's kebab-case keys."""
    out = {}
    for snake, kebab in _CLIENT_FIELDS.items():
        for name in (snake, kebab):
            if name in entry and entry[name] is not None:
                out[snake] = entry[name]
                break
    return out


def allowed_clients(clients, key_secret=None):
    """The `allowed-clients` list of hermod-conf.yml, keys derived where not given."""
    result = []
    for raw in clients or []:
        client = normalize_client(raw)
        key = client.get("key")
        if not key and key_secret:
            key = derive_client_key(key_secret, client.get("client_id", ""))
        item = {"client-id": client.get("client_id"), "key": key, "group": client.get("group")}
        if client.get("callback_basic_auth"):
            item["callback-basic-auth"] = client["callback_basic_auth"]
        item["callback-url"] = client.get("callback_url")
        result.append(item)
    return result


def _url_problem(url, schemes):
    """None when url is an absolute URL with one of `schemes` and a host, else the reason."""
    if not isinstance(url, str) or not url.strip():
        return "is empty"
    if any(ch.isspace() or ord(ch) < 32 for ch in url.strip()):
        return "must not contain whitespace or control characters"
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in schemes:
        return "must use %s (got scheme %r)" % (" or ".join(schemes), parts.scheme or "")
    if not parts.hostname:
        return "has no host"
    return None


def _https_problem(url):
    return _url_problem(url, ("https",))


def _http_problem(url):
    return _url_problem(url, ("http", "https"))


def validate_clients(clients, key_secret=None, allow_http_callbacks=False,
                     field="messaging_clients"):
    """Cross-field rules of the client list; returns error strings."""
    errors = []
    if clients is None:
        clients = []
    if not isinstance(clients, list):
        return ["%s must be a list" % field]
    seen = {}
    groups = {}
    for index, raw in enumerate(clients):
        if not isinstance(raw, dict):
            errors.append("%s[%d] must be a mapping" % (field, index))
            continue
        client = normalize_client(raw)
        cid = client.get("client_id")
        where = "%s[%d]" % (field, index)
        if not cid or not isinstance(cid, str):
            errors.append("%s.client_id is missing" % where)
            continue
        where = "%s[%d] (client_id=%s)" % (field, index, cid)
        if not CLIENT_ID_RE.match(cid):
            errors.append("%s.client_id may contain only letters, digits, '.', '_' and '-'" % where)
        if cid in seen:
            errors.append("%s.client_id duplicates %s[%d]: client ids must be unique"
                          % (where, field, seen[cid]))
        else:
            seen[cid] = index
        key = client.get("key")
        if key is not None and key != "":
            if not isinstance(key, str):
                errors.append("%s.key must be a string of 64 hex characters" % where)
            elif len(key) != 64:
                errors.append("%s.key must be 64 hex characters (256 bit), it has %d"
                              % (where, len(key)))
            elif not KEY_RE.match(key):
                errors.append("%s.key must be 64 hex characters (256 bit): it holds non-hex characters"
                              % where)
        elif not key_secret:
            errors.append("%s.key is not set and messaging_client_key_secret is empty: "
                          "set one of them" % where)
        group = client.get("group")
        if group is None or str(group).strip() == "":
            errors.append("%s.group is missing" % where)
        else:
            groups[cid] = str(group)
        callback = client.get("callback_url")
        if callback is None or str(callback).strip() == "":
            errors.append("%s.callback_url is missing (the service calls the client back there)"
                          % where)
        else:
            problem = (_http_problem(callback) if allow_http_callbacks else _https_problem(callback))
            if problem:
                # The hint only where allowing http would make the URL acceptable.
                hint = "" if allow_http_callbacks or _http_problem(callback) else \
                    " (set messaging_allow_http_callbacks: true only for test setups)"
                errors.append("%s.callback_url %s%s" % (where, problem, hint))
        auth = client.get("callback_basic_auth")
        if auth not in (None, "") and (not isinstance(auth, str) or ":" not in auth):
            errors.append("%s.callback_basic_auth must have the form user:password" % where)
    if all(cid in groups for cid in PAIRED_CLIENT_IDS):
        if groups["idm"] != groups["da"]:
            errors.append("%s: idm and da must use the same group (idm group differs from da group)"
                          % field)
    return errors


def validate_public_url(url, field="messaging_public_url"):
    problem = _https_problem(url)
    return [] if problem is None else ["%s %s" % (field, problem)]


def validate_base_path(path, field="messaging_base_path"):
    if path in (None, ""):
        return []
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/") or "//" in path:
        return ["%s must be empty or start with '/' and not end with '/' (e.g. /hermod/rest)" % field]
    return []


# ------------------------------------------------------------- certificates


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


def cacert_target_name(name):
    """'corp-root.pem' -> 'corp-root.cer'; names outside [A-Za-z0-9._-] are refused."""
    base = os.path.basename(str(name))
    stem = base
    for suffix in CERT_INPUT_SUFFIXES:
        if base.lower().endswith(suffix):
            stem = base[: -len(suffix)]
            break
    if not stem or not CERT_NAME_RE.match(stem):
        raise CertificateError("certificate name %r may contain only letters, digits, '.', '_' "
                               "and '-'" % str(name))
    return stem + ".cer"


def check_cacerts(items, now=None, allow_expired=False, warn_days=30):
    """Validate and normalise CA certificate inputs.

    items: dicts with name, data (bytes) and origin (for messages).
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
            cert, pem = load_certificate(item.get("data") or b"", origin)
        except CertificateError as exc:
            errors.append(str(exc))
            continue
        if target in by_name:
            errors.append("%s and %s would both be written as cacerts/%s: rename one"
                          % (by_name[target], origin, target))
            continue
        by_name[target] = origin
        not_after = _not_after(cert)
        if not_after <= now:
            msg = "%s expired on %s" % (origin, not_after.isoformat())
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


# ---------------------------------------------------------------- keystore


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


# ------------------------------------------------------------------ config


def deep_merge(base, override):
    """Recursive dict merge; override wins, lists and scalars are replaced."""
    result = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def set_path(data, path, value):
    """Copy of data with value set under the dotted path (dicts created as needed)."""
    if not path or not isinstance(path, str) or any(p == "" for p in path.split(".")):
        raise ValueError("key path %r must be dot-separated names" % (path,))
    result = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = result
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return result


# -------------------------------------------------------------- log check


def analyze_startup_log(log_text, expected_files, banner_regex=DEFAULT_BANNER_REGEX):
    """Check that every expected cacerts file got an alias line before the banner.

    Returns a dict: ok, banner_found, banner_line (1-based or None), aliases
    ({file: alias} seen before the banner), missing (expected, never seen),
    late (seen only after the banner), unexpected (seen, not expected), order
    (files in the order their alias lines appeared).
    """
    banner_re = re.compile(banner_regex)
    expected = [os.path.basename(f) for f in expected_files or []]
    before, after, order = {}, {}, []
    banner_line = None
    for number, raw in enumerate((log_text or "").splitlines(), start=1):
        line = raw.rstrip("\r")
        match = ALIAS_LINE_RE.search(line)
        if match:
            name = os.path.basename(match.group("file"))
            if banner_line is None:
                before[name] = match.group("alias")
                order.append(name)
            else:
                after.setdefault(name, match.group("alias"))
            continue
        if banner_line is None and banner_re.search(line):
            banner_line = number
    missing = [f for f in expected if f not in before and f not in after]
    late = [f for f in expected if f not in before and f in after]
    unexpected = sorted(set(before) - set(expected))
    return {
        "ok": banner_line is not None and not missing and not late,
        "banner_found": banner_line is not None,
        "banner_line": banner_line,
        "aliases": before,
        "order": order,
        "missing": missing,
        "late": late,
        "unexpected": unexpected,
    }


def _mode_bits(mode):
    if isinstance(mode, str):
        return int(mode, 8)
    return int(mode)


def _can_read(stat, uid, gid, need_exec=False):
    """Would uid/gid (not root) pass the permission check for stat?"""
    mode = _mode_bits(stat.get("mode", "0"))
    want = 0o4 | (0o1 if need_exec else 0)
    if int(stat.get("uid", -1)) == int(uid):
        bits = (mode >> 6) & 0o7
    elif int(stat.get("gid", -1)) == int(gid):
        bits = (mode >> 3) & 0o7
    else:
        bits = mode & 0o7
    return bits & want == want


def diagnose_cacerts(analysis, mounts, container_dir, host_dir, dir_stat, file_stats,
                     file_contents, uid, gid, container_running=True, health=None):
    """Explain a failed alias check the way the vendor's troubleshooting does.

    mounts: docker inspect .Mounts; dir_stat/file_stats: ansible stat results
    (file_stats keyed by file name); file_contents: {name: text}.
    Returns a list of findings, most fundamental first.
    """
    findings = []
    if not container_running:
        findings.append("the messaging container is not running: see `docker compose logs` in the "
                        "messaging folder")
    elif health not in (None, "healthy"):
        findings.append("the service is not ready (health check: %s): readiness includes the "
                        "database connection; see `docker compose logs` in the messaging folder "
                        "and the database component" % health)
    mount = None
    for item in mounts or []:
        if item.get("Destination") == container_dir:
            mount = item
            break
    if mount is None:
        findings.append("cacerts folder not mounted: the container has no mount at %s "
                        "(expected %s:%s:ro in docker-compose.yml)" % (container_dir, host_dir,
                                                                        container_dir))
    elif os.path.normpath(mount.get("Source", "")) != os.path.normpath(host_dir):
        findings.append("cacerts folder mounted from the wrong place: %s is mounted from %s, "
                        "expected %s" % (container_dir, mount.get("Source"), host_dir))
    if dir_stat and dir_stat.get("exists") is False:
        findings.append("cacerts folder %s does not exist on the host" % host_dir)
    elif dir_stat and not _can_read(dir_stat, uid, gid, need_exec=True):
        findings.append("cacerts folder permissions: %s (mode %s, owner %s:%s) is not readable and "
                        "searchable by the container user %s:%s (needs 0755)"
                        % (host_dir, dir_stat.get("mode"), dir_stat.get("uid"),
                           dir_stat.get("gid"), uid, gid))
    for name in sorted(file_stats or {}):
        stat = file_stats[name]
        if not _can_read(stat, uid, gid):
            findings.append("cacerts file permissions: %s/%s (mode %s, owner %s:%s) is not readable "
                            "by the container user %s:%s (needs 0644)"
                            % (host_dir, name, stat.get("mode"), stat.get("uid"),
                               stat.get("gid"), uid, gid))
    for name in sorted(file_contents or {}):
        problem = pem_problem(file_contents[name])
        if problem:
            findings.append("cacerts file %s/%s %s" % (host_dir, name, problem))
    if analysis is not None:
        if not analysis.get("banner_found"):
            findings.append("the start-up banner (messaging_banner_regex) never appeared in the log "
                            "since the container started: the service did not finish starting")
        for name in analysis.get("missing", []):
            findings.append("no line 'INFO: Adding certificate %s using alias ...' in the log" % name)
        for name in analysis.get("late", []):
            findings.append("the alias line for %s came after the start-up banner" % name)
    if not findings:
        findings.append("the alias check failed but mounts, permissions and PEM files look right: "
                        "read the container log")
    return findings


# ------------------------------------------------------------ new clients

_SNIPPET_KEY_RE = re.compile(r"^\s*(?:-\s*)?key:\s*[\"']?(?P<key>[^\s\"']+)[\"']?\s*$", re.M)
_SNIPPET_HEADER_RE = re.compile(r"^\s*#\s*X-Api-Key:\s*(?P<header>\S+)\s*$", re.M)


def new_client_key():
    """A fresh random 256-bit key as 64 lowercase hex characters."""
    import secrets  # pylint: disable=import-outside-toplevel
    return secrets.token_hex(32)


def parse_generated_client(text, client_id):
    """Read the service's /util/generateclient/<id> YAML snippet.

    Returns {client_id, key, api_key}; raises ValueError (without the key) when the
    snippet has no valid key or its X-Api-Key comment does not match the key.
    """
    match = _SNIPPET_KEY_RE.search(text or "")
    if not match:
        raise ValueError("the generateclient answer has no key line")
    key = match.group("key")
    if not KEY_RE.match(key):
        raise ValueError("the generateclient answer's key is not 64 hex characters")
    header = api_key_header(client_id, key)
    shown = _SNIPPET_HEADER_RE.search(text)
    if shown and shown.group("header") != header:
        raise ValueError("the generateclient answer's X-Api-Key comment does not match its key "
                         "for client id %s" % client_id)
    return {"client_id": client_id, "key": key, "api_key": header}
