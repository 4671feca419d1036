# -*- coding: utf-8 -*-
"""Client API keys: derived keys, fresh keys, the X-Api-Key header, generateclient snippets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from ansible_collections.smartid.hermod.plugins.module_utils.messaging_rules import KEY_RE


def derive_client_key(secret, client_id, generation=0):
    """HMAC-SHA256(secret, client-id) as 64 lowercase hex characters.

    Each rotation of a client's key raises its generation; generation 0 is the key every client
    starts with, generation n > 0 is HMAC-SHA256(secret, "<client-id>#<n>").
    """
    if not secret:
        raise ValueError("messaging_client_key_secret is empty")
    generation = int(generation or 0)
    if generation < 0:
        raise ValueError("key generation of %s must not be negative" % client_id)
    message = client_id if generation == 0 else "%s#%d" % (client_id, generation)
    return hmac.new(_b(secret), _b(message), hashlib.sha256).hexdigest()


def api_key_header(client_id, key):
    """The X-Api-Key header value a client sends: base64("<id>:<key>")."""
    return base64.b64encode(_b("%s:%s" % (client_id, key))).decode("ascii")


def _b(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


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
