# -*- coding: utf-8 -*-
"""Filters of the messaging role; the logic lives in module_utils/messaging_core.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_core as core


def messaging_client_key(client_id, secret):
    """HMAC-SHA256(secret, client_id) hex: the derived API key of a client."""
    try:
        return core.derive_client_key(secret, client_id)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_api_key_header(key, client_id):
    """X-Api-Key header value base64("<id>:<key>")."""
    return core.api_key_header(client_id, key)


def messaging_allowed_clients(clients, secret=None):
    """Inventory client list -> hermod-conf.yml `allowed-clients` entries."""
    return core.allowed_clients(clients, secret or None)


def messaging_deep_merge(base, override):
    """Recursive merge, override wins; lists are replaced, not concatenated."""
    return core.deep_merge(base, override)


def messaging_set_path(data, path, value, skip_empty=False):
    """Set value under a dotted key path (e.g. message-server.public-url)."""
    if skip_empty and value in (None, ""):
        return data
    try:
        return core.set_path(data, path, value)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_cacert_name(name):
    """Target file name of a CA certificate input: <stem>.cer."""
    try:
        return core.cacert_target_name(name)
    except core.CertificateError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_analyze_log(log_text, expected_files, banner_regex=core.DEFAULT_BANNER_REGEX):
    """Alias lines vs. cacerts files vs. banner; see messaging_core.analyze_startup_log."""
    return core.analyze_startup_log(log_text, expected_files, banner_regex)


def messaging_diagnose_cacerts(analysis, mounts, container_dir, host_dir, dir_stat, file_stats,
                               file_contents, uid, gid, container_running=True, health=None):
    """Findings that say which thing is wrong when the alias check fails."""
    return core.diagnose_cacerts(analysis, mounts, container_dir, host_dir, dir_stat, file_stats,
                                 file_contents, uid, gid, container_running, health)


def messaging_new_key(_unused=None):
    """A fresh random key (64 hex); the input is ignored."""
    return core.new_client_key()


def messaging_parse_generated_client(text, client_id):
    """The service's generateclient snippet -> {client_id, key, api_key}."""
    try:
        return core.parse_generated_client(text, client_id)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """Messaging role filters."""

    def filters(self):
        return {
            "messaging_client_key": messaging_client_key,
            "messaging_api_key_header": messaging_api_key_header,
            "messaging_allowed_clients": messaging_allowed_clients,
            "messaging_deep_merge": messaging_deep_merge,
            "messaging_set_path": messaging_set_path,
            "messaging_cacert_name": messaging_cacert_name,
            "messaging_analyze_log": messaging_analyze_log,
            "messaging_diagnose_cacerts": messaging_diagnose_cacerts,
            "messaging_new_key": messaging_new_key,
            "messaging_parse_generated_client": messaging_parse_generated_client,
        }
