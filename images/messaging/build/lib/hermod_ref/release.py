"""Which release this build is, and what that release may use.

The image is built as one release (Docker build-arg HERMOD_RELEASE, exported as an
environment variable). The release fixes the database schema version the code needs,
so that an upgrade 1.0.0 -> 1.1.0 can be tested with data written by a real 1.0.0.
"""

import os
from dataclasses import dataclass

from . import __version__

KNOWN_RELEASES = ("1.0.0", "1.1.0")


def parse_version(text: str) -> tuple[int, ...]:
    """'1.10.0' -> (1, 10, 0); raises ValueError on anything else."""
    parts = text.strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a dotted version: {text!r}")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class Release:
    version: str
    # Schema version (Flyway) this code requires at least.
    schema_version: str
    # 1.1.0: every callback delivery attempt is recorded (hermod_callback_attempt).
    records_attempts: bool


def current() -> Release:
    version = os.environ.get("HERMOD_RELEASE", "").strip() or __version__
    if version not in KNOWN_RELEASES:
        raise ValueError(f"HERMOD_RELEASE={version!r} is not one of {', '.join(KNOWN_RELEASES)}")
    return Release(version=version, schema_version=version, records_attempts=version != "1.0.0")
