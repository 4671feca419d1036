"""Compact JWS (RFC 7515) verification for ES256 and RS256, with JWK public keys.

Only what the device protocol needs: no JWE, no `none`, no symmetric algorithms.
"""

from __future__ import annotations

import base64
import binascii
import json

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ALGORITHMS = ("ES256", "RS256")
MAX_JWS = 64 * 1024


class JwsError(ValueError):
    """The JWS is malformed or its signature does not verify; str() says which."""


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c in text for c in "=+/ \n"):
        raise JwsError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("not base64url") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(jwk: dict, name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise JwsError(f"jwk.{name} missing")
    return int.from_bytes(b64url_decode(value), "big")


def public_key(jwk) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """A public key from a JWK (EC P-256 or RSA >= 2048 bit)."""
    if not isinstance(jwk, dict):
        raise JwsError("jwk must be an object")
    if "d" in jwk or "p" in jwk:
        raise JwsError("jwk must not contain private key material")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise JwsError("jwk.crv must be P-256")
            return ec.EllipticCurvePublicNumbers(_int(jwk, "x"), _int(jwk, "y"), ec.SECP256R1()).public_key()
        if kty == "RSA":
            key = rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n")).public_key()
            if key.key_size < 2048:
                raise JwsError("RSA keys must have at least 2048 bits")
            return key
    except ValueError as exc:  # point not on curve, bad RSA numbers
        if isinstance(exc, JwsError):
            raise
        raise JwsError(f"jwk is not a valid {kty} key") from None
    raise JwsError("jwk.kty must be EC or RSA")


def public_jwk(key) -> dict:
    """The JWK of a public key (used by the device simulator and tests)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        n = key.public_numbers()
        return {"kty": "EC", "crv": "P-256",
                "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}
    n = key.public_numbers()
    return {"kty": "RSA", "e": b64url(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big")),
            "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big"))}


def parse(token) -> tuple[dict, dict, bytes, bytes]:
    """(header, payload object, signing input, signature) of a compact JWS."""
    if not isinstance(token, str) or len(token) > MAX_JWS:
        raise JwsError("response must be a compact JWS string")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("compact JWS must have three parts")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        payload = orjson.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, JwsError):
            raise
        raise JwsError("JWS header and payload must be JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JwsError("JWS header and payload must be JSON objects")
    if header.get("alg") not in ALGORITHMS:
        raise JwsError(f"JWS alg must be one of {', '.join(ALGORITHMS)}")
    if "crit" in header:
        raise JwsError("JWS crit headers are not supported")
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2])


def verify(header: dict, signing_input: bytes, signature: bytes, key) -> None:
    alg = header["alg"]
    try:
        if alg == "ES256":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise JwsError("ES256 needs an EC key")
            if len(signature) != 64:
                raise JwsError("ES256 signature must be 64 bytes")
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise JwsError("RS256 needs an RSA key")
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise JwsError("JWS signature does not verify") from None


def sign(payload: dict, private_key, header_extra: dict | None = None) -> str:
    """Compact JWS (device simulator and tests)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        header = {"alg": "ES256"}
    else:
        header = {"alg": "RS256"}
    header.update(header_extra or {})
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    data = f"{h}.{p}".encode()
    if header["alg"] == "ES256":
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return f"{h}.{p}.{b64url(sig)}"
