"""X-Api-Key: base64("<client-id>:<key>"), checked in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from ..config import Client

# Compared against when the client id is unknown, so that an unknown id and a wrong
# key take the same time.
_DUMMY_KEY = secrets.token_hex(32)


def parse(header: str | None) -> tuple[str, str] | None:
    """Return (client_id, key) or None for anything malformed."""
    if not header or len(header) > 512:
        return None
    try:
        raw = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    client_id, sep, key = raw.partition(":")
    if not sep or not client_id or not key:
        return None
    return client_id, key


def authenticate(header: str | None, clients: dict[str, Client]) -> Client | None:
    parsed = parse(header)
    if parsed is None:
        return None
    client_id, key = parsed
    client = clients.get(client_id)
    expected = client.key if client else _DUMMY_KEY
    # Keys are hex: compare case-insensitively, as bytes of equal meaning.
    ok = hmac.compare_digest(key.lower().encode(), expected.encode())
    return client if ok and client else None


def header_for(client_id: str, key: str) -> str:
    return base64.b64encode(f"{client_id}:{key}".encode()).decode()


def new_key() -> str:
    """A fresh 256-bit key, 64 hex characters."""
    return secrets.token_hex(32)
