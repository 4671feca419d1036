# -*- coding: utf-8 -*-
"""Filters of the messaging role; the logic lives in module_utils/messaging_*.py, one concern each."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_config as config
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_keys as keys
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_rules as rules
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_startup as startup


def messaging_client_key(client_id, secret, generation=0):
    """HMAC-SHA256(secret, client_id) hex: the derived API key of a client (of a rotation generation)."""
    try:
        return keys.derive_client_key(secret, client_id, generation)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_api_key_header(key, client_id):
    """X-Api-Key header value base64("<id>:<key>")."""
    return keys.api_key_header(client_id, key)


def messaging_allowed_clients(clients, secret=None, generations=None):
    """Inventory client list -> hermod-conf.yml `allowed-clients` entries (rotated keys per generations)."""
    try:
        return config.allowed_clients(clients, secret or None, generations or None)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_set_path(data, path, value, skip_empty=False, optional_path=False):
    """Set value under a dotted key path (e.g. message-server.public-url). skip_empty: an empty
    value is not written; optional_path: an empty path (a profile without that key) writes nothing."""
    if (skip_empty and value in (None, "")) or (optional_path and path in (None, "")):
        return data
    try:
        return config.set_path(data, path, value)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_cacert_name(name):
    """Target file name of a CA certificate input: <stem>.cer."""
    try:
        return rules.cacert_target_name(name)
    except rules.RuleError as exc:
        raise AnsibleFilterError(str(exc)) from None


def messaging_analyze_log(log_text, expected_files, banner_regex=startup.DEFAULT_BANNER_REGEX):
    """Alias lines vs. cacerts files vs. banner; see messaging_startup.analyze_startup_log."""
    return startup.analyze_startup_log(log_text, expected_files, banner_regex)


def messaging_diagnose_cacerts(analysis, mounts, container_dir, host_dir, dir_stat, file_stats,
                               file_contents, uid, gid, container_running=True, health=None):
    """Findings that say which thing is wrong when the alias check fails."""
    return startup.diagnose_cacerts(analysis, mounts, container_dir, host_dir, dir_stat, file_stats,
                                 file_contents, uid, gid, container_running, health)


def messaging_new_key(_unused=None):
    """A fresh random key (64 hex); the input is ignored."""
    return keys.new_client_key()


def messaging_parse_generated_client(text, client_id):
    """The service's generateclient snippet -> {client_id, key, api_key}."""
    try:
        return keys.parse_generated_client(text, client_id)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """Messaging role filters."""

    def filters(self):
        return {
            "messaging_client_key": messaging_client_key,
            "messaging_api_key_header": messaging_api_key_header,
            "messaging_allowed_clients": messaging_allowed_clients,
            "messaging_set_path": messaging_set_path,
            "messaging_cacert_name": messaging_cacert_name,
            "messaging_analyze_log": messaging_analyze_log,
            "messaging_diagnose_cacerts": messaging_diagnose_cacerts,
            "messaging_new_key": messaging_new_key,
            "messaging_parse_generated_client": messaging_parse_generated_client,
        }
