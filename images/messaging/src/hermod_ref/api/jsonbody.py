"""Strict reading of the JSON that clients and devices send.

The standard parser, so that every number survives exactly (the command object is stored and
handed to the device, a json response is forwarded in the callback), made strict where it is
lenient by default, because what it lets through breaks a later, stricter reader:

- NaN, Infinity and -Infinity are not JSON (RFC 8259): a device's parser refuses them; nor is
  a number that only a double's infinity holds (1e999), which would be written back as one;
- a lone surrogate (`"\\ud800"`, or its bytes in the body) is not Unicode: PostgreSQL and
  UTF-8 encoders refuse it;
- nesting deeper than MAX_DEPTH: no message of the protocol comes close, and the standard
  parser's recursion limit must never be what answers (a RecursionError is a 500 and a
  traceback).
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 64


class BadJson(ValueError):
    """str() says what is wrong, for a 400."""


def _refuse_constant(name: str):
    raise BadJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: valid syntax, but it would be written back as Infinity
        raise BadJson(f"{text[:40]} is out of the range of a double")
    return value


_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def loads(body: bytes):
    try:
        text = body.decode("utf-8")  # strict: encoded surrogates and invalid UTF-8 are refused here
    except UnicodeDecodeError:
        raise BadJson("is not valid UTF-8") from None
    try:
        doc = _decoder.decode(text)
    except RecursionError:
        raise BadJson(f"nests deeper than {MAX_DEPTH} levels") from None
    except BadJson:
        raise
    except ValueError:
        raise BadJson("is not valid JSON") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:  # cheap: only then can it be too deep
        _check_depth(doc)
    if "\\u" in text:  # only an escape can make a lone surrogate now
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadJson("contains a lone surrogate (not a Unicode character)") from None
    return doc


def _check_depth(doc) -> None:
    """Refuse nesting deeper than MAX_DEPTH; visits containers only, without recursion."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadJson(f"nests deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
