"""Parsers of untrusted input: exact behaviour on examples, and no unexpected
exception on anything (hypothesis)."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hermod_ref.api import apikey, command_body, jws
from hermod_ref.config import Client

LIMITS = command_body.Limits(300, 3600, 60, 600)
KEY = "0f" * 32
CLIENTS = {"idm": Client("idm", KEY, "g", "https://x", None)}


def test_api_key_round_trip_and_refusals():
    assert apikey.authenticate(apikey.header_for("idm", KEY), CLIENTS).client_id == "idm"
    assert apikey.authenticate(apikey.header_for("idm", KEY.upper()), CLIENTS).client_id == "idm"
    assert apikey.authenticate(apikey.header_for("idm", "1f" * 32), CLIENTS) is None
    assert apikey.authenticate(apikey.header_for("other", KEY), CLIENTS) is None
    for bad in (None, "", "!!!", base64.b64encode(b"no-colon").decode(), base64.b64encode(b":x").decode()):
        assert apikey.authenticate(bad, CLIENTS) is None


def test_new_key_is_256_bit_hex():
    k = apikey.new_key()
    assert len(k) == 64 and int(k, 16) >= 0 and k != apikey.new_key()


@given(st.one_of(st.none(), st.text(max_size=600), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())))
def test_api_key_never_raises(header):
    assert apikey.authenticate(header, CLIENTS) is None


def body(**cmd):
    base = {"nonce": "n" * 16, "userid": "alice"}
    base.update(cmd)
    return base


def test_command_defaults_and_caps():
    c = command_body.parse("sign", json.dumps({"signCommand": body(responseformat="json")}).encode(), LIMITS)
    assert (c.lifespan, c.timeout, c.response_format) == (300, 60, "json")
    c = command_body.parse("provision", json.dumps({"commandHeader": {"lifespan": 10**9, "timeout": 5},
                                                "provCommand": body()}).encode(), LIMITS)
    assert (c.lifespan, c.timeout, c.response_format) == (3600, 5, "jws")
    assert json.loads(c.payload) == body()
    # Integers beyond 64 bits and 2.0 are JSON Schema integers: capped.
    c = command_body.parse("ping", b'{"commandHeader": {"lifespan": 2831653376034793324544, "timeout": 2.0},'
                               b'"pingCommand": ' + json.dumps(body()).encode() + b"}", LIMITS)
    assert (c.lifespan, c.timeout) == (3600, 2)
    # Numbers in the command object reach the device exactly.
    c = command_body.parse("ping", b'{"pingCommand": ' + json.dumps({**body(), "n": 2**70}).encode() + b"}", LIMITS)
    assert json.loads(c.payload)["n"] == 2**70


@pytest.mark.parametrize("ctype, doc, message", [
    ("ping", "[]", "body: must be a JSON object"),
    ("ping", "{", "body: is not valid JSON"),
    ("ping", {}, "pingCommand: is required"),
    ("ping", {"signCommand": body()}, "signCommand: unexpected property"),
    ("ping", {"pingCommand": body(nonce="short")}, "pingCommand.nonce: must be 8 to 128"),
    ("ping", {"pingCommand": body(userid=None)}, "pingCommand.userid: is required"),
    ("ping", {"pingCommand": body(userid="a\nb")}, "pingCommand.userid: must not contain control"),
    ("ping", {"pingCommand": body(responseformat="xml")}, "pingCommand.responseformat: must be one of"),
    ("provision", {"provCommand": body(responseformat="json")}, "provCommand.responseformat: provisioning requires jws"),
    ("provision", {"provCommand": body(profile=[])}, "provCommand.profile: must be an object"),
    ("ping", {"commandHeader": {"lifespan": 0}, "pingCommand": body()}, "commandHeader.lifespan: must be at least 1"),
    ("ping", {"commandHeader": {"timeout": "5"}, "pingCommand": body()}, "commandHeader.timeout: must be an integer"),
    ("ping", {"commandHeader": {"timeout": 1.5}, "pingCommand": body()}, "commandHeader.timeout: must be an integer"),
    ("ping", {"commandHeader": [], "pingCommand": body()}, "commandHeader: must be an object"),
])
def test_command_errors_name_the_field(ctype, doc, message):
    raw = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(command_body.BadCommand) as err:
        command_body.parse(ctype, raw.encode(), LIMITS)
    assert str(err.value).startswith(message), str(err.value)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=300)
@given(st.sampled_from(list(command_body.COMMAND_KEYS)), st.one_of(
    st.binary(max_size=200),
    JSONISH.map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"commandHeader": JSONISH, "pingCommand": JSONISH}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"pingCommand": st.dictionaries(st.sampled_from(["nonce", "userid", "responseformat"]),
                                                          JSONISH)}).map(lambda d: json.dumps(d).encode()),
))
def test_command_parser_only_raises_bad_command(ctype, raw):
    try:
        c = command_body.parse(ctype, raw, LIMITS)
    except command_body.BadCommand:
        return
    assert 1 <= c.lifespan <= 3600 and 1 <= c.timeout <= 600 and c.response_format in ("jws", "json")


@pytest.mark.parametrize("make", [lambda: ec.generate_private_key(ec.SECP256R1()),
                                  lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)],
                         ids=["ES256", "RS256"])
def test_jws_sign_verify_and_tamper(make):
    key = make()
    token = jws.sign({"nonce": "abc"}, key, {"jwk": jws.public_jwk(key.public_key())})
    header, payload, data, sig = jws.parse(token)
    pub = jws.public_key(header["jwk"])
    jws.verify(header, data, sig, pub)
    assert payload == {"nonce": "abc"}
    h, p, s = token.split(".")
    forged = jws.b64url(json.dumps({"nonce": "abd"}).encode())
    with pytest.raises(jws.JwsError, match="does not verify"):
        jws.verify(*_parts(jws.parse(f"{h}.{forged}.{s}")), pub)
    other = make()
    with pytest.raises(jws.JwsError, match="does not verify"):
        jws.verify(header, data, sig, other.public_key())


def _parts(parsed):
    header, _, data, sig = parsed
    return header, data, sig


def test_jws_refuses_none_alg_and_key_mismatch():
    none = jws.b64url(b'{"alg":"none"}') + "." + jws.b64url(b"{}") + "."
    with pytest.raises(jws.JwsError, match="alg"):
        jws.parse(none)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, _, data, sig = jws.parse(jws.sign({"a": 1}, rsa_key))
    with pytest.raises(jws.JwsError, match="RS256 needs an RSA key"):
        jws.verify(header, data, sig, ec_key.public_key())
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(jws.JwsError, match="2048"):
        jws.public_key(jws.public_jwk(small.public_key()))
    with pytest.raises(jws.JwsError, match="private"):
        jws.public_key({**jws.public_jwk(ec_key.public_key()), "d": "AAAA"})
    with pytest.raises(jws.JwsError, match="valid EC key"):
        jws.public_key({"kty": "EC", "crv": "P-256", "x": jws.b64url(b"\x01" * 32), "y": jws.b64url(b"\x02" * 32)})


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), JSONISH,
                 st.tuples(JSONISH, JSONISH, st.binary(max_size=80)).map(
                     lambda t: ".".join([jws.b64url(json.dumps(t[0]).encode()), jws.b64url(json.dumps(t[1]).encode()),
                                         jws.b64url(t[2])]))))
def test_jws_parse_only_raises_jws_error(token):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    try:
        header, _, data, sig = jws.parse(token)
        jws.verify(header, data, sig, key)
    except jws.JwsError:
        return
    raise AssertionError("a random token verified")


@settings(max_examples=200)
@given(JSONISH)
def test_jwk_parse_only_raises_jws_error(jwk):
    try:
        jws.public_key(jwk)
    except jws.JwsError:
        pass


@pytest.mark.parametrize("client_id", ["idm", "0", "true", "1e3", "null", "da-2"])
def test_generated_snippet_reads_back_the_same_id(client_id):
    import yaml

    from hermod_ref.api.admin import client_snippet

    text = client_snippet(client_id)
    entry = yaml.safe_load(text)[0]
    assert entry["client-id"] == client_id and len(entry["key"]) == 64
    header = text.splitlines()[0].split(": ", 1)[1]
    assert base64.b64decode(header).decode() == f"{client_id}:{entry['key']}"
