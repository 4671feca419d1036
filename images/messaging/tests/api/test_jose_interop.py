"""The device-side JWS code (hermod_ref.api.jws) against an independent JOSE implementation (joserfc)
and the RFC 7515 appendix A examples: their tokens verified by us, ours verified by them.

The service's verification is taken the way api/device.py takes it: jws.parse, jws.public_key
of the JWK, jws.verify. It accepts ES256 and RS256 only (no symmetric algorithms, no `none`).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws as jose
from joserfc.errors import BadSignatureError, SecurityWarning
from joserfc.jwk import ECKey, OctKey, RSAKey

from hermod_ref.api import jws

# RFC 7515 A.1-A.5 share this payload (with its CR LF line breaks).
RFC_PAYLOAD = b'{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}'
RFC_CLAIMS = {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}
RFC_PAYLOAD64 = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

# A.1: HMAC SHA-256.
A1_KEY = {"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}
A1_TOKEN = f"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{RFC_PAYLOAD64}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

# A.2: RSASSA-PKCS1-v1_5 SHA-256 (the public half of the example's 2048-bit key).
A2_PUBLIC = {
    "kty": "RSA",
    "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS"
         "-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2C"
         "apHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb5"
         "4h4FRWyuXpoQ",
    "e": "AQAB",
}
A2_TOKEN = (
    f"eyJhbGciOiJSUzI1NiJ9.{RFC_PAYLOAD64}."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr"
    "7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--"
    "xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_Io"
    "ypGlUPQGe77Rw"
)

# A.3: ECDSA P-256 SHA-256.
A3_PUBLIC = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
A3_PRIVATE_D = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
A3_TOKEN = (f"eyJhbGciOiJFUzI1NiJ9.{RFC_PAYLOAD64}."
            "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q")

# A.4: ECDSA P-521 SHA-512 (its payload is the word "Payload"); A.5: unsecured JWS.
A4_TOKEN = ("eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
            "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJ"
            "ZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn")
A5_TOKEN = f"eyJhbGciOiJub25lIn0.{RFC_PAYLOAD64}."

# ES256 signatures are random: enough of them that r or s with leading zero bytes (1 in 128
# signatures) turns up, where a fixed-width encoding mistake would show.
ROUNDS = 300


def service_verify(token: str, jwk: dict) -> tuple[dict, dict]:
    """Header and payload of `token` when the service's code accepts it under `jwk`."""
    header, payload, signing_input, signature = jws.parse(token)
    jws.verify(header, signing_input, signature, jws.public_key(jwk))
    return header, payload


def header_jwk(token: str) -> dict:
    """The JWK a provisioning device sends in its header (what the service verifies against)."""
    return jws.parse(token)[0]["jwk"]


def library_verify(token: str, jwk: dict, algorithm: str) -> tuple[dict, bytes]:
    key = {"EC": ECKey, "RSA": RSAKey, "oct": OctKey}[jwk["kty"]].import_key(jwk)
    signed = jose.deserialize_compact(token, key, algorithms=[algorithm])
    return signed.headers(), signed.payload


def tamper(token: str, part: int) -> str:
    """The token with one character of header (0), payload (1) or signature (2) changed."""
    parts = token.split(".")
    text = parts[part]
    middle = len(text) // 2
    parts[part] = text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1:]
    return ".".join(parts)


# RFC 7515 examples, verified by the service --------------------------------------------------


@pytest.mark.parametrize("token, jwk, alg", [(A2_TOKEN, A2_PUBLIC, "RS256"), (A3_TOKEN, A3_PUBLIC, "ES256")],
                         ids=["A.2-RS256", "A.3-ES256"])
def test_rfc7515_example_verifies_with_the_service_and_the_library(token, jwk, alg):
    header, payload = service_verify(token, jwk)
    assert header == {"alg": alg}
    assert payload == RFC_CLAIMS
    # The same example through the independent implementation: the vector is copied right.
    lib_header, lib_payload = library_verify(token, jwk, alg)
    assert lib_header == {"alg": alg} and lib_payload == RFC_PAYLOAD


@pytest.mark.parametrize("token, jwk", [(A2_TOKEN, A2_PUBLIC), (A3_TOKEN, A3_PUBLIC)], ids=["A.2-RS256", "A.3-ES256"])
@pytest.mark.parametrize("part", [1, 2], ids=["payload", "signature"])
def test_rfc7515_example_changed_in_one_character_is_refused(token, jwk, part):
    changed = tamper(token, part)
    with pytest.raises(jws.JwsError, match="JWS signature does not verify|JWS header and payload must be JSON"):
        service_verify(changed, jwk)
    alg = "RS256" if jwk["kty"] == "RSA" else "ES256"
    with pytest.raises((BadSignatureError, ValueError)):
        library_verify(changed, jwk, alg)


def test_rfc7515_examples_under_the_other_example_key_are_refused():
    with pytest.raises(jws.JwsError, match="RS256 needs an RSA key"):
        service_verify(A2_TOKEN, A3_PUBLIC)
    with pytest.raises(jws.JwsError, match="ES256 needs an EC key"):
        service_verify(A3_TOKEN, A2_PUBLIC)


def test_rfc7515_hs256_example_is_genuine_but_refused_by_the_service():
    # The library verifies it with the example's key ...
    assert library_verify(A1_TOKEN, A1_KEY, "HS256")[1] == RFC_PAYLOAD
    # ... the service accepts no symmetric algorithm: a device key is a public key.
    with pytest.raises(jws.JwsError, match="JWS alg must be one of ES256, RS256"):
        jws.parse(A1_TOKEN)


def test_rfc7515_es512_and_unsecured_examples_are_refused():
    # A.4's payload is the bare word "Payload": refused before its algorithm is looked at.
    with pytest.raises(jws.JwsError, match="JWS header and payload must be JSON"):
        jws.parse(A4_TOKEN)
    with pytest.raises(jws.JwsError, match="JWS alg must be one of ES256, RS256"):
        jws.parse(A5_TOKEN)


@pytest.mark.parametrize("alg, key", [
    ("ES512", lambda: ECKey.generate_key("P-521")),
    ("ES384", lambda: ECKey.generate_key("P-384")),
    ("PS256", lambda: RSAKey.generate_key(2048)),
    ("HS256", lambda: OctKey.generate_key(256)),
])
def test_library_tokens_of_algorithms_the_service_does_not_accept_are_refused(alg, key):
    token = jose.serialize_compact({"alg": alg}, '{"nonce":"n"}', key(), algorithms=[alg])
    with pytest.raises(jws.JwsError, match="JWS alg must be one of ES256, RS256"):
        jws.parse(token)


def test_a_jwk_with_private_key_material_is_refused():
    with pytest.raises(jws.JwsError, match="jwk must not contain private key material"):
        jws.public_key(dict(A3_PUBLIC, d=A3_PRIVATE_D))


# Tokens of the library, verified by the service ----------------------------------------------


def test_library_es256_tokens_verify_with_the_service():
    for i in range(ROUNDS):
        key = ECKey.generate_key("P-256")
        jwk = key.as_dict(private=False)
        payload = {"nonce": f"n-{i}", "signature": "x" * (i % 7)}
        token = jose.serialize_compact({"alg": "ES256", "jwk": jwk}, json.dumps(payload), key)
        header, claims = service_verify(token, header_jwk(token))
        assert claims == payload and header["jwk"] == jwk
        # The key the service registers from the header is the library's key.
        assert jws.public_jwk(jws.public_key(header["jwk"])) == {n: jwk[n] for n in ("kty", "crv", "x", "y")}


def test_library_rs256_tokens_verify_with_the_service():
    for bits in (2048, 3072):
        key = RSAKey.generate_key(bits)
        jwk = key.as_dict(private=False)
        payload = {"nonce": f"rsa-{bits}", "ok": True}
        token = jose.serialize_compact({"alg": "RS256", "jwk": jwk}, json.dumps(payload), key)
        assert service_verify(token, header_jwk(token))[1] == payload
        assert jws.public_jwk(jws.public_key(jwk)) == {n: jwk[n] for n in ("kty", "e", "n")}


def test_library_token_signed_by_another_key_is_refused():
    signer, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    token = jose.serialize_compact({"alg": "ES256"}, '{"nonce":"n"}', signer)
    with pytest.raises(jws.JwsError, match="JWS signature does not verify"):
        service_verify(token, other.as_dict(private=False))


def test_library_rsa_key_below_2048_bits_is_refused():
    with pytest.warns(SecurityWarning):  # the library warns about such a key too
        key = RSAKey.generate_key(1024)
    with pytest.raises(jws.JwsError, match="RSA keys must have at least 2048 bits"):
        jws.public_key(key.as_dict(private=False))


# Tokens of the service, verified by the library ----------------------------------------------


def test_service_es256_tokens_verify_with_the_library():
    for i in range(ROUNDS):
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = jws.public_jwk(private.public_key())
        payload = {"nonce": f"n-{i}", "answer": i}
        token = jws.sign(payload, private, {"jwk": jwk})
        header, body = library_verify(token, jwk, "ES256")
        assert header == {"alg": "ES256", "jwk": jwk}
        assert json.loads(body) == payload


def test_service_rs256_tokens_verify_with_the_library():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jws.public_jwk(private.public_key())
    token = jws.sign({"nonce": "rsa"}, private)
    header, body = library_verify(token, jwk, "RS256")
    assert header == {"alg": "RS256"} and json.loads(body) == {"nonce": "rsa"}


def test_service_public_jwk_is_the_library_jwk_of_the_same_key():
    ec_private = ec.generate_private_key(ec.SECP256R1())
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for private in (ec_private, rsa_private):
        ours = jws.public_jwk(private.public_key())
        cls = ECKey if isinstance(private, ec.EllipticCurvePrivateKey) else RSAKey
        theirs = cls.import_key(private.public_key()).as_dict(private=False)
        assert ours == {name: theirs[name] for name in ours}
        assert set(theirs) - set(ours) <= {"kid"}


def test_service_token_changed_in_one_character_is_refused_by_the_library():
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = jws.public_jwk(private.public_key())
    token = jws.sign({"nonce": "n"}, private)
    assert library_verify(token, jwk, "ES256")[1] == b'{"nonce":"n"}'
    with pytest.raises(BadSignatureError):
        library_verify(tamper(token, 2), jwk, "ES256")
