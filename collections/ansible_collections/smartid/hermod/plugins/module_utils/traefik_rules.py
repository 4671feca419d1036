# -*- coding: utf-8 -*-
"""The traefik role's settings rules: TLS mode, key type, host name, ports, allow-list, routes.

Pure functions of the role's variables; each message names the variable at fault. The
certificate files are a concern of their own (traefik_certs.py).
"""

from __future__ import annotations

import re

from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls


def _port(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def check_settings(tls_termination="traefik", generated_key_type="RSA", hostname="",
                   http_port=80, https_port=443, command_source_ranges=None,
                   public_path_prefixes=None, private_path_prefixes=None, base_path="",
                   access_log_status_codes=None, backend_durations=None):
    """Every broken settings rule of the traefik role, each naming its variable."""
    errors = []
    if tls_termination not in ("traefik", "service"):
        errors.append("traefik_tls_termination (messaging_tls_termination) is '%s': use traefik (TLS ends "
                      "in Traefik) or service (TLS passes through to the messaging service)."
                      % tls_termination)
    if generated_key_type not in ("RSA", "ECC"):
        errors.append("traefik_generated_key_type is '%s'; use RSA or ECC." % generated_key_type)
    problem = traefik_tls.check_hostname(hostname)
    if problem:
        errors.append("traefik_hostname: %s" % problem)
    http, https = _port(http_port), _port(https_port)
    if not (0 < http < 65536 and 0 < https < 65536 and http != https):
        errors.append("traefik_http_port (%s) and traefik_https_port (%s) must be distinct ports "
                      "between 1 and 65535." % (http_port, https_port))
    ranges = command_source_ranges
    invalid = traefik_tls.invalid_source_ranges(ranges) if isinstance(ranges, list) else [str(ranges)]
    if not ranges or invalid:
        errors.append("traefik_command_source_ranges must be a non-empty list of addresses or networks; "
                      "invalid: %s" % ", ".join(invalid))
    routable = bool(public_path_prefixes) and bool(private_path_prefixes)
    if routable:
        try:
            for prefixes in (public_path_prefixes, private_path_prefixes):
                traefik_tls.path_rule(str(hostname), str(base_path or ""), list(prefixes))
        except (ValueError, TypeError):
            routable = False
    if not routable:
        errors.append("traefik_public_path_prefixes and traefik_private_path_prefixes must be "
                      "non-empty lists of paths.")
    bad_codes = [str(c) for c in (access_log_status_codes or []) if not _status_range(c)]
    if not isinstance(access_log_status_codes, (list, type(None))) or bad_codes:
        errors.append("traefik_access_log_status_codes must be a list of HTTP status codes or ranges "
                      "such as \"400-599\"; invalid: %s"
                      % ", ".join(bad_codes if isinstance(access_log_status_codes, (list, type(None)))
                                  else [str(access_log_status_codes)]))
    for name, value in sorted((backend_durations or {}).items()):
        if not _positive_duration(value):
            errors.append("%s is '%s': use a positive Go duration such as 3s, 500ms or 1m30s."
                          % (name, value))
    return errors


_DURATION = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|\u00b5s|ms|s|m|h)")


def _positive_duration(value):
    """Traefik reads its timeouts as Go durations; a bare number or a typo stops the provider."""
    text = str(value)
    if not text or _DURATION.sub("", text) != "":
        return False
    return any(ch in "123456789" for ch in text)


def _status_range(value):
    """'404' or '400-599': Traefik's access log filter refuses to start on anything else."""
    parts = str(value).split("-")
    if len(parts) > 2 or not all(p.isdigit() and len(p) == 3 and 100 <= int(p) <= 599 for p in parts):
        return False
    return len(parts) == 1 or int(parts[0]) <= int(parts[1])
