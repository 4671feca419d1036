# -*- coding: utf-8 -*-
"""Pieces of hermod-conf.yml that Jinja should not hold: the allowed-clients list and
values set under a dotted key path. Overrides are merged with Ansible's combine."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.smartid.hermod.plugins.module_utils.messaging_keys import derive_client_key
from ansible_collections.smartid.hermod.plugins.module_utils.messaging_rules import normalize_client


def allowed_clients(clients, key_secret=None, generations=None):
    """The `allowed-clients` list of hermod-conf.yml, keys derived where not given.

    generations: {client-id: n} of the clients whose derived key was rotated.
    """
    result = []
    generations = generations or {}
    for raw in clients or []:
        client = normalize_client(raw)
        key = client.get("key")
        if not key and key_secret:
            cid = client.get("client_id", "")
            key = derive_client_key(key_secret, cid, generations.get(cid, 0))
        item = {"client-id": client.get("client_id"), "key": key, "group": client.get("group")}
        if client.get("callback_basic_auth"):
            item["callback-basic-auth"] = client["callback_basic_auth"]
        item["callback-url"] = client.get("callback_url")
        result.append(item)
    return result


def _copy_tree(value):
    """A copy of the dicts and lists of a tree, as plain dicts and lists; the leaves are shared.
    (copy.deepcopy of the lazy containers a filter gets from Ansible 2.19 copies their templating
    context with every node: about a second per deploy for hermod-conf.yml's two paths.)"""
    if isinstance(value, Mapping):
        return {key: _copy_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_tree(item) for item in value]
    return value


def set_path(data, path, value):
    """Copy of data with value set under the dotted path (dicts created as needed)."""
    if not path or not isinstance(path, str) or any(p == "" for p in path.split(".")):
        raise ValueError("key path %r must be dot-separated names" % (path,))
    result = _copy_tree(data) if isinstance(data, Mapping) else {}
    node = result
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return result
