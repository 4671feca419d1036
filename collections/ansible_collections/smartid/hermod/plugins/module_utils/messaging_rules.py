# -*- coding: utf-8 -*-
"""The input rules of Smart ID Messaging, shared by the deployment and the service.

One file, standard library only: the messaging role's validation imports it as
``ansible_collections.smartid.hermod.plugins.module_utils.messaging_rules`` and the
reference service's image carries the same file as ``hermod_ref/rules.py`` (the images
role adds it to the build context), so the role and the service cannot disagree about
what a valid client, key, URL or CA certificate name is.

Every check returns messages; a message names the variable or file at fault and never
carries a secret value. Field names are the inventory's (``messaging_clients[1]``);
the service passes its own (``allowed-clients[1]``).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

CLIENT_ID_MAX = 64
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")
CERT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Input names are free; on the host every certificate is "<stem>.cer".
CERT_INPUT_SUFFIXES = (".cer", ".crt", ".pem", ".der", ".cert")
KINDS = ("idm", "da", "other")
# The callback URL shapes of the integration guide, by client kind.
GUIDE_CALLBACK_PATHS = {
    "idm": "/ws/hermod",
    "da": "/https/api/rest/v3.0/personalmessaging",
}
GUIDE_CALLBACK_SHAPES = {
    "idm": "https://<IDM-HOST>/ws/hermod",
    "da": "https://<DA-HOST>/https/api/rest/v3.0/personalmessaging",
}
_KIND_FROM_ID = re.compile(r"^(?P<kind>idm|da)(?:$|[0-9._-])", re.IGNORECASE)

CLIENT_FIELDS = {
    "client_id": "client-id",
    "key": "key",
    "group": "group",
    "kind": "kind",
    "callback_url": "callback-url",
    "callback_basic_auth": "callback-basic-auth",
}


class RuleError(ValueError):
    """An input that breaks one of the rules."""


def normalize_client(entry):
    """Accept snake_case or the config file's kebab-case keys."""
    out = {}
    for snake, kebab in CLIENT_FIELDS.items():
        for name in (snake, kebab):
            if name in entry and entry[name] is not None:
                out[snake] = entry[name]
                break
    return out


def client_kind(client_id, declared=None):
    """idm, da or other: the declared kind, else inferred from the id (idm, idm-2, DA.prod)."""
    if declared not in (None, ""):
        return str(declared).lower()
    match = _KIND_FROM_ID.match(str(client_id or ""))
    return match.group("kind").lower() if match else "other"


def client_id_problem(cid):
    """Why cid is not a valid client id, or None."""
    if not isinstance(cid, str) or cid == "":
        return "is missing"
    if len(cid) > CLIENT_ID_MAX:
        return "has %d characters: at most %d are allowed" % (len(cid), CLIENT_ID_MAX)
    if not CLIENT_ID_RE.fullmatch(cid):
        return ("may contain only letters, digits, '.', '_' and '-' and must start with a "
                "letter or digit")
    return None


def key_problem(key):
    """Why key is not a 256-bit hex key, or None."""
    if not isinstance(key, str):
        return "must be a string of 64 hex characters"
    if len(key) != 64:
        return "must be 64 hex characters (256 bit), it has %d" % len(key)
    if not KEY_RE.fullmatch(key):
        return "must be 64 hex characters (256 bit): it holds non-hex characters"
    return None


def url_problem(url, schemes):
    """None when url is an absolute URL with one of `schemes` and a host, else the reason."""
    if not isinstance(url, str) or not url.strip():
        return "is empty"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain whitespace or control characters"
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        return "must use %s (got scheme %r)" % (" or ".join(schemes), parts.scheme or "")
    try:
        host = parts.hostname
        parts.port  # pylint: disable=pointless-statement
    except ValueError:
        return "has an invalid port"
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (use callback_basic_auth)"
    if parts.fragment:
        return "must not have a fragment (#...)"
    return None


def check_clients(clients, key_secret=None, allow_http_callbacks=False,
                  field="messaging_clients", secret_field="messaging_client_key_secret",
                  allow_empty=False, kebab_case=False):
    """Rules of the client list; returns (errors, warnings).

    kebab_case: name the settings as hermod-conf.yml spells them (client-id, callback-url), for
    the service's own configuration check.
    """
    errors, warnings = _check_clients(clients, key_secret, allow_http_callbacks, field,
                                      secret_field, allow_empty)
    if kebab_case:
        errors, warnings = _kebab(errors), _kebab(warnings)
    return errors, warnings


_SNAKE_NAMES = re.compile(r"(?<=[.(])(client_id|callback_url|callback_basic_auth)\b")


def _kebab(messages):
    return [_SNAKE_NAMES.sub(lambda m: CLIENT_FIELDS[m.group(1)], text) for text in messages]


def _check_clients(clients, key_secret, allow_http_callbacks, field, secret_field, allow_empty):
    errors, warnings = [], []
    if clients is None:
        clients = []
    if not isinstance(clients, list):
        return ["%s must be a list" % field], warnings
    if not clients and not allow_empty:
        return ["%s is empty: at least one client (e.g. idm or da) must be allowed, or nobody "
                "can send a command" % field], warnings
    seen_ids, seen_keys, paired_groups = {}, {}, {}
    schemes = ("http", "https") if allow_http_callbacks else ("https",)
    for index, raw in enumerate(clients):
        where = "%s[%d]" % (field, index)
        if not isinstance(raw, dict):
            errors.append("%s must be a mapping" % where)
            continue
        client = normalize_client(raw)
        cid = client.get("client_id")
        problem = client_id_problem(cid)
        if problem == "is missing":
            errors.append("%s.client_id is missing" % where)
            continue
        where = "%s[%d] (client_id=%s)" % (field, index, cid if isinstance(cid, str) else "?")
        if problem:
            errors.append("%s.client_id %s" % (where, problem))
            continue
        folded = cid.lower()
        if folded in seen_ids:
            errors.append("%s.client_id duplicates %s[%d]: client ids must be unique "
                          "(compared without case)" % (where, field, seen_ids[folded]))
        else:
            seen_ids[folded] = index
        kind = client_kind(cid, client.get("kind"))
        if kind not in KINDS:
            errors.append("%s.kind must be one of %s" % (where, ", ".join(KINDS)))
        key = client.get("key")
        if key not in (None, ""):
            problem = key_problem(key)
            if problem:
                errors.append("%s.key %s" % (where, problem))
            elif key.lower() in seen_keys:
                errors.append("%s.key is the same as the key of %s[%d]: every client needs its "
                              "own key" % (where, field, seen_keys[key.lower()]))
            else:
                seen_keys[key.lower()] = index
        elif not key_secret:
            errors.append("%s.key is not set and %s is empty: set one of them"
                          % (where, secret_field))
        group = client.get("group")
        if group is None or str(group).strip() == "":
            errors.append("%s.group is missing" % where)
        elif kind in GUIDE_CALLBACK_PATHS:
            paired_groups.setdefault(str(group), []).append(cid)
        callback = client.get("callback_url")
        if callback is None or str(callback).strip() == "":
            errors.append("%s.callback_url is missing (the service calls the client back there)"
                          % where)
        else:
            problem = url_problem(callback, schemes)
            if problem:
                hint = ""
                if not allow_http_callbacks and url_problem(callback, ("http", "https")) is None:
                    hint = " (set messaging_allow_http_callbacks: true only for test setups)"
                errors.append("%s.callback_url %s%s" % (where, problem, hint))
            elif kind in GUIDE_CALLBACK_PATHS and \
                    urlsplit(callback).path.rstrip("/") != GUIDE_CALLBACK_PATHS[kind]:
                warnings.append("%s.callback_url does not have the integration guide's shape for "
                                "a %s client: %s" % (where, kind.upper() if kind == "idm" else "DA",
                                                     GUIDE_CALLBACK_SHAPES[kind]))
        # Deployment-only: whether the callback preflight may reach the host yet (never in the
        # service's configuration).
        reachable = raw.get("callback_reachable")
        if reachable is not None and not isinstance(reachable, bool):
            errors.append("%s.callback_reachable must be true or false (false: the callback "
                          "preflight only warns)" % where)
        auth = client.get("callback_basic_auth")
        if auth not in (None, ""):
            if not isinstance(auth, str) or ":" not in auth or auth.startswith(":"):
                errors.append("%s.callback_basic_auth must have the form user:password" % where)
        elif kind == "idm":
            errors.append("%s.callback_basic_auth is missing: Identity Manager requires basic "
                          "auth on its callback (user:password)" % where)
    if len(paired_groups) > 1:
        detail = "; ".join("group %s: %s" % (g, ", ".join(ids))
                           for g, ids in sorted(paired_groups.items()))
        errors.append("%s: all IDM and DA clients must use the same group, so devices are shared "
                      "(%s)" % (field, detail))
    return errors, warnings


def check_base_path(path, field="messaging_base_path"):
    if path in (None, ""):
        return []
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/") \
            or "//" in path or any(ch.isspace() for ch in path):
        return ["%s must be empty or start with '/' and not end with '/' (e.g. /hermod/rest)"
                % field]
    return []


def check_public_url(url, base_path="", served_hosts=None, served_elsewhere=False,
                     field="messaging_public_url", hosts_field="traefik_hostname",
                     elsewhere_field="messaging_public_url_served_elsewhere"):
    """The public URL is https://<host>[:port]<base>/ms, on a host the front proxy serves."""
    problem = url_problem(url, ("https",))
    if problem:
        return ["%s %s" % (field, problem)]
    parts = urlsplit(url)
    errors = []
    expected = (base_path or "") + "/ms"
    # A malformed base path is its own error; the path rule would only repeat it.
    if not check_base_path(base_path) and parts.path.rstrip("/") != expected:
        errors.append("%s must end in %s (https://<host>[:port]%s), its path is %r"
                      % (field, expected, expected, parts.path or ""))
    if parts.query:
        errors.append("%s must not have a query string" % field)
    hosts = [str(h).lower() for h in (served_hosts or []) if h]
    if hosts and not served_elsewhere and parts.hostname.lower() not in hosts:
        errors.append("%s names host %s, which Traefik does not serve (%s: %s); set %s: true "
                      "if another proxy serves it" % (field, parts.hostname, hosts_field,
                                                      ", ".join(hosts), elsewhere_field))
    return errors



REFERENCE_IMAGE = "smartid/messaging:dev"
HEALTH_PROBES = ("container", "outside")
KEY_STORE_TYPE_KEYS = ("key-store-type", "keyStoreType")


def check_profile(profile, profiles, image_source="build", image="", health_probe="container",
                  key_store_type_key="key-store-type", registry="", registry_username="",
                  registry_password_set=False):
    """The messaging profile, the image it runs and the registry login that pulls it.

    Deployment only (the service never sees these). The password's value is not passed:
    only whether it is set.
    """
    names = list(profiles or [])
    if profile not in names:
        return ["messaging_profile '%s': use one of %s" % (profile, ", ".join(names))]
    errors = []
    if health_probe not in HEALTH_PROBES:
        errors.append("messaging_health_probe '%s': use container or outside" % health_probe)
    if key_store_type_key not in KEY_STORE_TYPE_KEYS:
        errors.append("messaging_key_store_type_key '%s': use key-store-type or keyStoreType"
                      % key_store_type_key)
    if profile == "nexus" and image_source == "build":
        errors.append("messaging_profile nexus runs the vendor's image: set "
                      "messaging_image_source to registry or archive, not build")
    if image_source == "registry" and image in ("", REFERENCE_IMAGE):
        errors.append("messaging_image: set the registry reference of the image to pull "
                      "(messaging_image_source is registry)")
    username_set = bool(registry_username)
    if username_set != bool(registry_password_set):
        errors.append("messaging_registry_username and messaging_registry_password: set both "
                      "or neither")
    if username_set and not registry:
        errors.append("messaging_registry: set the registry host[:port] the credentials are for")
    if registry and not str(image).startswith(registry + "/"):
        errors.append("messaging_image '%s' is not in messaging_registry '%s': it must start "
                      "with '%s/'" % (image, registry, registry))
    return errors

def cacert_target_name(name):
    """'corp-root.pem' -> 'corp-root.cer'; raises RuleError for names outside [A-Za-z0-9._-]."""
    base = os.path.basename(str(name))
    stem = base
    for suffix in CERT_INPUT_SUFFIXES:
        if base.lower().endswith(suffix):
            stem = base[: -len(suffix)]
            break
    if not stem or not CERT_NAME_RE.fullmatch(stem):
        raise RuleError("certificate name %r may contain only letters, digits, '.', '_' and '-'"
                        % str(name))
    return stem + ".cer"


def cacert_alias(name):
    """The alias the service gives a cacerts file: its stem, lower case."""
    return cacert_target_name(name)[: -len(".cer")].lower()


def check_cacert_names(names):
    """Names (with their origin for messages) -> errors for bad names and alias collisions.

    names: list of (name, origin). Two files whose names differ only in case or suffix get the
    same alias, and one would silently replace the other in the trust store.
    """
    errors, seen = [], {}
    for name, origin in names:
        try:
            alias = cacert_alias(name)
        except RuleError as exc:
            errors.append("%s: %s" % (origin, exc))
            continue
        if alias in seen:
            errors.append("%s and %s would both get the certificate alias %s: rename one"
                          % (seen[alias], origin, alias))
        else:
            seen[alias] = origin
    return errors
