# -*- coding: utf-8 -*-
"""Filters of the traefik role that build what it deploys; the logic lives in module_utils/traefik_tls.py.

The role's input checks are concerns of the smartid.hermod.validate action (traefik_rules.py,
traefik_certs.py), not filters.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_certs
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls as core


def traefik_pem_bundle(paths, base_dir=None):
    """Certificate blocks of the controller files `paths` (empty entries skipped), as one PEM text."""
    pems = []
    for path in paths:
        if not path:
            continue
        resolved = traefik_certs.resolve(path, base_dir)
        try:
            pems.append(traefik_certs.read(resolved))
        except OSError as exc:
            raise AnsibleFilterError(f"{resolved}: cannot read ({exc.strerror})") from None
    try:
        return core.pem_bundle(*pems)
    except ValueError as exc:
        raise AnsibleFilterError(f"{', '.join(str(p) for p in paths if p)}: {exc}") from None


def traefik_san_entry(hostname):
    """`IP:<address>` or `DNS:<name>` for a generated certificate's subjectAltName."""
    return core.san_entry(str(hostname))


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


def traefik_pem_fingerprint(pem):
    """SHA-256 fingerprint (hex) of the first certificate of a PEM text, computed on the controller."""
    try:
        return core.leaf_fingerprint(str(pem))
    except ValueError as exc:
        raise AnsibleFilterError(f"the certificate to serve: {exc}") from None


class FilterModule:
    """Traefik role filters."""

    def filters(self):
        return {
            "traefik_pem_bundle": traefik_pem_bundle,
            "traefik_san_entry": traefik_san_entry,
            "traefik_path_rule": traefik_path_rule,
            "traefik_content_name": traefik_content_name,
            "traefik_pem_fingerprint": traefik_pem_fingerprint,
        }
