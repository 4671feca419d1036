"""Parse and validate command bodies (`POST <base>/command/<type>`).

Hand-written rather than a JSON-schema engine: the accept path is the hot path, and
the messages name the field the way clients spell it. The OpenAPI document in
openapi.py describes the same rules.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from . import jsonbody

# command type (URL) -> name of the command object in the body
COMMAND_KEYS = {
    "provision": "provCommand",
    "certificate": "certCommand",
    "authenticate": "authCommand",
    "sign": "signCommand",
    "ping": "pingCommand",
}
RESPONSE_FORMATS = ("jws", "json")
MAX_NONCE = 128
MIN_NONCE = 8
MAX_USERID = 256
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


class BadCommand(ValueError):
    """400: str() says which field and why."""


@dataclass(frozen=True)
class Command:
    type: str
    nonce: str
    userid: str
    response_format: str
    lifespan: int
    timeout: int
    payload: str  # the command object as JSON text, handed to the device unchanged


@dataclass(frozen=True)
class Limits:
    default_lifespan: int
    max_lifespan: int
    default_timeout: int
    max_timeout: int


def _seconds(header: dict, name: str, default: int, cap: int) -> int:
    value = header.get(name, default)
    if value is None:
        return default
    # A JSON Schema integer is any number without a fractional part, 2.0 and 1e3 included.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadCommand(f"commandHeader.{name}: must be an integer number of seconds")
    if value < 1:
        raise BadCommand(f"commandHeader.{name}: must be at least 1")
    # Over the cap is not an error: the service shortens it (documented), as a server may.
    return min(value, cap)


def _text(obj: dict, where: str, name: str, lo: int, hi: int) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise BadCommand(f"{where}.{name}: is required and must be a string")
    if not lo <= len(value) <= hi:
        raise BadCommand(f"{where}.{name}: must be {lo} to {hi} characters")
    if _CONTROL_CHARACTER.search(value):
        raise BadCommand(f"{where}.{name}: must not contain control characters")
    return value


def parse(command_type: str, body: bytes, limits: Limits) -> Command:
    key = COMMAND_KEYS.get(command_type)
    if key is None:
        raise BadCommand(f"unknown command type {command_type!r}")
    try:
        # The standard parser, strict (jsonbody.py): the command object is stored and handed to
        # the device, so every number must survive exactly (orjson reads integers beyond 64 bits
        # as floats) and nothing a device's parser refuses may pass.
        doc = jsonbody.loads(body)
    except jsonbody.BadJson as exc:
        raise BadCommand(f"body: {exc}") from None
    if not isinstance(doc, dict):
        raise BadCommand("body: must be a JSON object")
    extra = set(doc) - {"commandHeader", key}
    if extra:
        raise BadCommand(f"{sorted(extra)[0]}: unexpected property (a {command_type} command carries {key})")
    header = doc.get("commandHeader", {})
    if not isinstance(header, dict):
        raise BadCommand("commandHeader: must be an object")
    lifespan = _seconds(header, "lifespan", limits.default_lifespan, limits.max_lifespan)
    timeout = _seconds(header, "timeout", limits.default_timeout, limits.max_timeout)
    cmd = doc.get(key)
    if not isinstance(cmd, dict):
        raise BadCommand(f"{key}: is required and must be an object")
    nonce = _text(cmd, key, "nonce", MIN_NONCE, MAX_NONCE)
    userid = _text(cmd, key, "userid", 1, MAX_USERID)
    fmt = cmd.get("responseformat", "jws")
    if fmt not in RESPONSE_FORMATS:
        raise BadCommand(f"{key}.responseformat: must be one of {', '.join(RESPONSE_FORMATS)}")
    if command_type == "provision":
        # Provisioning registers the device key, which only a signed response can carry.
        if fmt != "jws":
            raise BadCommand(f"{key}.responseformat: provisioning requires jws")
        profile = cmd.get("profile")
        if profile is not None and not isinstance(profile, dict):
            raise BadCommand(f"{key}.profile: must be an object")
    return Command(command_type, nonce, userid, fmt, lifespan, timeout,
                   json.dumps(cmd, separators=(",", ":"), ensure_ascii=False))
