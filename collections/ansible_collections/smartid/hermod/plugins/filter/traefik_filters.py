# -*- coding: utf-8 -*-
"""Filters of the traefik role; the logic lives in module_utils/traefik_tls.py.

Filters run on the controller, so the certificate check reads the operator's PEM files there,
before anything on the host changes, and never puts key material into a variable.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls as core

# Debian's and RHEL's system CA bundles: a chain may end at a CA the clients already trust.
SYSTEM_TRUST_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def _resolve(path, base_dir):
    path = os.path.expanduser(str(path))
    if base_dir and not os.path.isabs(path):
        path = os.path.join(str(base_dir), path)
    return os.path.normpath(path)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def traefik_certificate_problems(
    cert_file,
    key_file,
    hostname,
    chain_file=None,
    trust_file=None,
    min_valid_days=0,
    base_dir=None,
):
    """Reasons (one per line, each naming its file) why the PEM files cannot serve `hostname`."""
    files = {"cert": cert_file, "key": key_file}
    if chain_file:
        files["chain"] = chain_file
    resolved = {role: _resolve(path, base_dir) for role, path in files.items()}
    contents = {}
    problems = []
    for role, path in resolved.items():
        try:
            contents[role] = _read(path)
        except OSError as exc:
            problems.append(f"{path}: cannot read the {role} file ({exc.strerror})")
    if problems:
        return problems

    trust = b""
    trust_files = [_resolve(trust_file, base_dir)] if trust_file else []
    trust_files += [f for f in SYSTEM_TRUST_FILES if os.path.exists(f)]
    for path in trust_files:
        try:
            trust += _read(path) + b"\n"
        except OSError as exc:
            if trust_file and path == trust_files[0]:
                return [f"{path}: cannot read the trust file ({exc.strerror})"]
    try:
        days = int(min_valid_days)
    except (TypeError, ValueError):
        raise AnsibleFilterError("min_valid_days must be an integer") from None
    return core.check_certificate(
        contents["cert"],
        contents["key"],
        str(hostname),
        chain_pem=contents.get("chain"),
        trust_pem=trust or None,
        min_valid_days=days,
        cert_name=resolved["cert"],
        key_name=resolved["key"],
        chain_name=resolved.get("chain", "chain file"),
    )


def traefik_pem_bundle(paths, base_dir=None):
    """Certificate blocks of the controller files `paths` (empty entries skipped), as one PEM text."""
    pems = []
    for path in paths:
        if not path:
            continue
        resolved = _resolve(path, base_dir)
        try:
            pems.append(_read(resolved))
        except OSError as exc:
            raise AnsibleFilterError(f"{resolved}: cannot read ({exc.strerror})") from None
    try:
        return core.pem_bundle(*pems)
    except ValueError as exc:
        raise AnsibleFilterError(f"{', '.join(str(p) for p in paths if p)}: {exc}") from None


def traefik_hostname_problem(hostname):
    """Empty string when the host name is usable in a Host() rule and a certificate SAN."""
    return core.check_hostname(hostname) or ""


def traefik_san_entry(hostname):
    """`IP:<address>` or `DNS:<name>` for a generated certificate's subjectAltName."""
    return core.san_entry(str(hostname))


def traefik_invalid_source_ranges(ranges):
    """Entries of an allow-list that are not addresses or CIDR networks."""
    return core.invalid_source_ranges(ranges)


def traefik_path_rule(hostname, base_path, prefixes):
    """Traefik router rule for the host and the path prefixes under the base path."""
    try:
        return core.path_rule(str(hostname), str(base_path or ""), list(prefixes))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def traefik_content_name(digest, stem, suffix):
    """`<stem>-<first 16 hex of digest><suffix>`."""
    try:
        return core.content_name(str(stem), str(digest), str(suffix))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """Traefik role filters."""

    def filters(self):
        return {
            "traefik_certificate_problems": traefik_certificate_problems,
            "traefik_hostname_problem": traefik_hostname_problem,
            "traefik_pem_bundle": traefik_pem_bundle,
            "traefik_invalid_source_ranges": traefik_invalid_source_ranges,
            "traefik_san_entry": traefik_san_entry,
            "traefik_path_rule": traefik_path_rule,
            "traefik_content_name": traefik_content_name,
        }
