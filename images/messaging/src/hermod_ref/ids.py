"""Time-ordered ids (UUID version 7, RFC 9562) for commands and callbacks.

48 bits of Unix time in milliseconds, the version (7), the variant (binary 10) and 74
random bits. PostgreSQL compares uuid values byte by byte, so the primary key index of a
table with v7 ids is also an index on creation time: `id < uuid_bound(t)` selects the rows
created before t (see store/retention.py).
"""

from __future__ import annotations

import os
import time
import uuid

_MAX_MS = (1 << 48) - 1
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def _ms(seconds: float) -> int:
    ms = int(seconds * 1000)
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"time {seconds!r} is outside the 48-bit millisecond range of UUIDv7")
    return ms


def uuid7(now: float | None = None) -> uuid.UUID:
    """A fresh v7 uuid for `now` (Unix seconds; default: the current time)."""
    ms = _ms(time.time() if now is None else now)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    return uuid.UUID(int=(ms << 80) | _VERSION | (rand_a << 64) | _VARIANT | rand_b)


def uuid_bound(seconds: float) -> uuid.UUID:
    """The smallest v7 uuid of the millisecond `seconds` falls in: every v7 uuid made
    earlier sorts below it, every one made in that millisecond or later sorts at or above it."""
    return uuid.UUID(int=(_ms(seconds) << 80) | _VERSION | _VARIANT)
