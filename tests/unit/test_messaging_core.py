"""Unit tests of the messaging role's logic (module_utils/messaging_{rules,keys,certs,keystore,
config,startup}.py, the filters and the validate action's concerns)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.smartid.hermod.plugins.filter import messaging_filters
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_certs as mcerts
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_config as config
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_keys as keys
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_keystore as keystore
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_rules as rules
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_startup as startup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
KEY_A = "0123456789abcdef" * 4
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_cert(cn="Test CA", not_before=NOW - 10 * DAY, not_after=NOW + 365 * DAY):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def client(cid="idm", group="g", key="own", url="https://cb.example.test/base", **extra):
    entry = {"client_id": cid, "group": group, "callback_url": url}
    if key == "own":
        key = hashlib.sha256(cid.encode()).hexdigest()
    if key is not None:
        entry["key"] = key
    if rules.client_kind(cid) == "idm":
        # Identity Manager callbacks need basic auth.
        entry["callback_basic_auth"] = "u:p"
    entry.update(extra)
    return entry


def client_errors(clients, **kwargs):
    return rules.check_clients(clients, **kwargs)[0]


# ------------------------------------------------------------------ keys


def test_derived_key_is_hmac_sha256_hex_of_client_id():
    expected = hmac.new(b"s3cret", b"idm", hashlib.sha256).hexdigest()
    assert keys.derive_client_key("s3cret", "idm") == expected
    assert rules.KEY_RE.match(expected)


def test_derived_keys_differ_per_client_and_secret():
    assert keys.derive_client_key("s", "idm") != keys.derive_client_key("s", "da")
    assert keys.derive_client_key("s", "idm") != keys.derive_client_key("t", "idm")


def test_derive_refuses_empty_secret():
    with pytest.raises(ValueError):
        keys.derive_client_key("", "idm")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_derived_key_always_valid(secret, cid):
    assert rules.KEY_RE.match(keys.derive_client_key(secret, cid))


def test_rotated_generation_is_hmac_of_id_and_generation():
    # Generation 0 is the key every client starts with; rotation n uses "<id>#<n>".
    assert keys.derive_client_key("s", "idm", 0) == keys.derive_client_key("s", "idm")
    assert keys.derive_client_key("s", "idm", 2) == hmac.new(b"s", b"idm#2", hashlib.sha256).hexdigest()
    derived = {keys.derive_client_key("s", "idm", n) for n in range(5)}
    assert len(derived) == 5
    with pytest.raises(ValueError):
        keys.derive_client_key("s", "idm", -1)


def test_allowed_clients_uses_the_rotated_generation_of_derived_keys_only():
    out = config.allowed_clients([client("idm", key=None), client("da", key=None), client("x", key=KEY_A)],
                               "sec", {"idm": 3, "x": 7})
    assert out[0]["key"] == keys.derive_client_key("sec", "idm", 3)
    assert out[1]["key"] == keys.derive_client_key("sec", "da")
    # An explicit key is the inventory's; a recorded generation does not change it.
    assert out[2]["key"] == KEY_A
    assert messaging_filters.messaging_client_key("idm", "sec", 3) == out[0]["key"]


def test_api_key_header_is_base64_of_id_colon_key():
    import base64
    assert base64.b64decode(keys.api_key_header("idm", KEY_A)).decode() == "idm:" + KEY_A


def test_allowed_clients_derives_missing_keys_and_keeps_explicit_ones():
    out = config.allowed_clients([client("idm", key=None, callback_basic_auth=None), client("da", key=KEY_A,
                                                                callback_basic_auth="u:p")], "sec")
    assert out[0] == {"client-id": "idm", "key": keys.derive_client_key("sec", "idm"), "group": "g",
                      "callback-url": "https://cb.example.test/base"}
    assert out[1]["key"] == KEY_A
    assert out[1]["callback-basic-auth"] == "u:p"
    assert list(out[1]) == ["client-id", "key", "group", "callback-basic-auth", "callback-url"]


def test_allowed_clients_accepts_kebab_case_input():
    out = config.allowed_clients([{"client-id": "x", "key": KEY_A, "group": "g",
                                 "callback-url": "https://a.test/"}])
    assert out[0]["client-id"] == "x"
    assert out[0]["callback-url"] == "https://a.test/"


# --------------------------------------------------------------- clients


def test_valid_clients_pass():
    assert client_errors([client("idm"), client("da", key=None)], key_secret="s") == []


def test_key_with_63_characters_is_refused_naming_the_field():
    errors = client_errors([client(key=KEY_A[:-1])])
    assert len(errors) == 1
    assert "messaging_clients[0] (client_id=idm).key" in errors[0]
    assert "63" in errors[0]


def test_non_hex_key_is_refused_without_echoing_it():
    bad = "g" * 64
    errors = client_errors([client(key=bad)])
    assert len(errors) == 1 and "non-hex" in errors[0]
    assert bad not in errors[0]


def test_uppercase_hex_key_is_accepted():
    assert client_errors([client(key=KEY_A.upper())]) == []


def test_missing_key_without_secret_is_refused():
    errors = client_errors([client(key=None)])
    assert any("messaging_client_key_secret" in e for e in errors)


def test_duplicate_client_id_is_refused():
    errors = client_errors([client("idm"), client("idm", key=KEY_A)])
    assert errors == [
        "messaging_clients[1] (client_id=idm).client_id duplicates messaging_clients[0]: "
        "client ids must be unique (compared without case)"]


def test_idm_da_group_mismatch_is_refused():
    errors = client_errors([client("idm", group="a"), client("da", group="b")])
    assert errors == ["messaging_clients: all IDM and DA clients must use the same group, so devices "
                      "are shared (group a: idm; group b: da)"]


def test_group_only_compared_when_both_idm_and_da_exist():
    assert client_errors([client("idm", group="a"), client("other", group="b")]) == []


def test_missing_callback_url_is_refused():
    entry = client()
    del entry["callback_url"]
    errors = client_errors([entry])
    assert errors == ["messaging_clients[0] (client_id=idm).callback_url is missing "
                      "(the service calls the client back there)"]


def test_http_callback_refused_unless_allowed():
    entry = [client(url="http://cb.test/")]
    assert "must use https" in client_errors(entry)[0]
    assert client_errors(entry, allow_http_callbacks=True) == []


def test_ftp_callback_refused_even_when_http_allowed():
    assert client_errors([client(url="ftp://cb.test/")], allow_http_callbacks=True)


def test_callback_url_with_whitespace_is_refused():
    # The service refuses such a URL at start-up; the role must say so before deploying it.
    errors = client_errors([client(url="https://cb.test/a b")])
    assert errors == ["messaging_clients[0] (client_id=idm).callback_url must not contain whitespace "
                      "or control characters"]


def test_missing_group_and_client_id_are_named():
    errors = client_errors([{"key": KEY_A, "callback_url": "https://x.test"},
                                    client(group="")])
    assert errors == ["messaging_clients[0].client_id is missing",
                      "messaging_clients[1] (client_id=idm).group is missing"]


def test_basic_auth_needs_user_colon_password_and_is_not_echoed():
    errors = client_errors([client(callback_basic_auth="justapassword")])
    assert len(errors) == 1 and "user:password" in errors[0]
    assert "justapassword" not in errors[0]


def test_clients_must_be_list_of_mappings():
    assert client_errors("idm") == ["messaging_clients must be a list"]
    assert client_errors(["idm"]) == ["messaging_clients[0] must be a mapping"]


@pytest.mark.parametrize("url,ok", [
    ("https://messaging.example.com/ms", True),
    ("HTTPS://messaging.example.com/ms/", True),
    ("https://messaging.example.com", False),
    ("https://messaging.example.com/other", False),
    ("http://messaging.example.com/ms", False),
    ("https:///ms", False),
    ("", False),
    (None, False),
])
def test_public_url_must_be_https(url, ok):
    errors = rules.check_public_url(url)
    assert (errors == []) is ok
    if not ok:
        assert errors[0].startswith("messaging_public_url ")


@pytest.mark.parametrize("path,ok", [("", True), ("/hermod/rest", True), ("hermod", False),
                                     ("/hermod/", False), ("//x", False)])
def test_base_path(path, ok):
    assert (rules.check_base_path(path) == []) is ok


# ----------------------------------------------------------- certificates


def test_pem_and_der_inputs_become_pem_cer_files():
    _, c1 = make_cert("one")
    _, c2 = make_cert("two")
    certs, errors, warnings = mcerts.check_cacerts(
        [{"name": "b-root.pem", "data": pem(c1)}, {"name": "a-root.der", "data": der(c2)}], now=NOW)
    assert errors == [] and warnings == []
    assert [c["name"] for c in certs] == ["a-root.cer", "b-root.cer"]
    assert certs[0]["content"] == pem(c2).decode()
    assert certs[0]["subject"] == "CN=two"


def test_any_input_name_is_accepted():
    _, c = make_cert()
    certs, errors, _ = mcerts.check_cacerts([{"name": "corp_root", "data": pem(c)}], now=NOW)
    assert errors == [] and certs[0]["name"] == "corp_root.cer"


def test_not_a_certificate_is_refused_naming_the_file():
    certs, errors, _ = mcerts.check_cacerts(
        [{"name": "junk.cer", "data": b"hello world", "origin": "files/cacerts/junk.cer"}], now=NOW)
    assert certs == []
    assert errors == ["files/cacerts/junk.cer is not a certificate (neither PEM nor DER X.509)"]


def test_broken_pem_is_refused():
    _, c = make_cert()
    data = pem(c).replace(b"M", b"*", 3)
    _, errors, _ = mcerts.check_cacerts([{"name": "x.cer", "data": data}], now=NOW)
    assert len(errors) == 1 and "x.cer is not a valid PEM certificate" in errors[0]


def test_private_key_is_refused_in_pem_and_der():
    key, c = make_cert()
    bundle = pem(c) + key_pem(key)
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _, errors, _ = mcerts.check_cacerts([{"name": "a.pem", "data": bundle},
                                       {"name": "b.der", "data": der_key}], now=NOW)
    assert len(errors) == 2
    assert all("holds a private key" in e for e in errors)


def test_two_certificates_in_one_file_are_refused():
    _, c1 = make_cert("one")
    _, c2 = make_cert("two")
    _, errors, _ = mcerts.check_cacerts([{"name": "both.pem", "data": pem(c1) + pem(c2)}], now=NOW)
    assert errors == ["both.pem holds 2 certificates: put each in its own file"]


def test_expired_certificate_is_an_error_unless_allowed():
    _, c = make_cert(not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    items = [{"name": "old.cer", "data": pem(c)}]
    certs, errors, _ = mcerts.check_cacerts(items, now=NOW)
    assert len(errors) == 1 and "old.cer expired on" in errors[0]
    certs, errors, warnings = mcerts.check_cacerts(items, now=NOW, allow_expired=True)
    assert errors == [] and len(certs) == 1 and "expired" in warnings[0]


def test_certificate_expiring_within_30_days_warns():
    _, c = make_cert(not_after=NOW + 10 * DAY)
    certs, errors, warnings = mcerts.check_cacerts([{"name": "soon.cer", "data": pem(c)}], now=NOW)
    assert errors == [] and len(certs) == 1
    assert warnings == ["soon.cer expires in 10 days, on %s" % (NOW + 10 * DAY).isoformat()]


def test_two_inputs_with_the_same_target_name_are_refused():
    _, c = make_cert()
    _, errors, _ = mcerts.check_cacerts([{"name": "x.pem", "data": pem(c)},
                                       {"name": "x.der", "data": der(c)}], now=NOW)
    assert errors == ["x.pem and x.der would both get the certificate alias x (cacerts/x.cer): rename one"]


@pytest.mark.parametrize("name,target", [("a.pem", "a.cer"), ("a.CRT", "a.cer"), ("a", "a.cer"),
                                         ("dir/a.cer", "a.cer"), ("a.b.der", "a.b.cer")])
def test_cacert_target_name(name, target):
    assert rules.cacert_target_name(name) == target


@pytest.mark.parametrize("name", ["", ".pem", "a b.pem", "ä.cer", "-x.cer"])
def test_cacert_bad_names(name):
    with pytest.raises(rules.RuleError):
        rules.cacert_target_name(name)


def test_pem_problem():
    _, c = make_cert()
    assert mcerts.pem_problem(pem(c).decode()) is None
    assert "not PEM" in mcerts.pem_problem(der(c))
    assert "not a valid PEM" in mcerts.pem_problem(pem(c).replace(b"M", b"!", 5))


# ------------------------------------------------------------- keystore


def make_p12(password=b"right"):
    key, c = make_cert("service")
    return pkcs12.serialize_key_and_certificates(
        b"messaging", key, c, None, serialization.BestAvailableEncryption(password))


def test_keystore_opens_with_the_right_password():
    assert keystore.check_keystore(make_p12(), "right", "ks.p12") == []


def test_keystore_wrong_password_is_refused_without_echoing_it():
    errors = keystore.check_keystore(make_p12(), "wrong-one", "ks.p12")
    assert errors == ["ks.p12 cannot be opened with messaging_keystore_password: wrong password or "
                      "not a PKCS#12 file"]


def test_keystore_empty_password_is_refused():
    assert "empty" in keystore.check_keystore(make_p12(), "", "ks.p12")[0]


def test_key_pair_match_and_mismatch():
    key, c = make_cert()
    other, _ = make_cert()
    assert keystore.check_key_pair(key_pem(key), pem(c), "k", "c") == []
    assert keystore.check_key_pair(key_pem(other), pem(c), "k", "c") == [
        "c does not belong to the private key k"]
    assert "not a readable PEM private key" in keystore.check_key_pair(b"x", pem(c), "k", "c")[0]


# --------------------------------------------------------------- config


def combine(base, over):
    """Ansible's combine as the role's vars/main.yml calls it (recursive, lists replaced)."""
    from ansible.plugins.filter.core import combine as ansible_combine
    return ansible_combine(base, over, recursive=True)


def test_combine_merges_dicts_and_replaces_lists():
    base = {"server": {"port": 1, "ssl": {"enabled": False}}, "list": [1, 2], "keep": "x"}
    over = {"server": {"ssl": {"enabled": True}}, "list": [3], "new": {"a": 1}}
    merged = combine(base, over)
    assert merged == {"server": {"port": 1, "ssl": {"enabled": True}}, "list": [3], "keep": "x",
                      "new": {"a": 1}}
    assert base["server"]["ssl"]["enabled"] is False  # inputs untouched


json_values = st.recursive(st.none() | st.integers() | st.text(max_size=5),
                           lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=3), children, max_size=3),
                           max_leaves=10)


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=4),
       st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_combine_properties_the_overrides_rely_on(base, over):
    merged = combine(base, over)
    assert combine(merged, over) == merged  # idempotent
    for key, value in over.items():
        if not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == value
    assert set(merged) == set(base) | set(over)
    assert combine(base, {}) == base


def test_set_path_creates_and_replaces():
    data = {"message-server": "scalar", "x": 1}
    out = config.set_path(data, "message-server.public-url", "https://a")
    assert out == {"message-server": {"public-url": "https://a"}, "x": 1}
    assert config.set_path({}, "public-url", "u") == {"public-url": "u"}
    with pytest.raises(ValueError):
        config.set_path({}, "a..b", 1)


def test_set_path_copies_the_tree_and_leaves_the_input_as_it_was():
    data = {"server": {"port": 20400, "ranges": ["10.0.0.0/8"]}, "x": 1}
    out = config.set_path(data, "server.ssl.enabled", True)
    assert out == {"server": {"port": 20400, "ranges": ["10.0.0.0/8"], "ssl": {"enabled": True}}, "x": 1}
    assert data == {"server": {"port": 20400, "ranges": ["10.0.0.0/8"]}, "x": 1}
    out["server"]["ranges"].append("192.168.0.0/16")
    assert data["server"]["ranges"] == ["10.0.0.0/8"]
    # Any mapping (Ansible hands filters lazy ones) comes back as plain dicts.
    frozen = types.MappingProxyType({"a": types.MappingProxyType({"b": 1})})
    out = config.set_path(frozen, "a.c", 2)
    assert out == {"a": {"b": 1, "c": 2}} and type(out["a"]) is dict


def test_filters_build_the_documented_config_shape():
    cfg = messaging_filters.messaging_set_path({"server": {"port": 20400}},
                                               "message-server.public-url", "https://p/ms")
    cfg = messaging_filters.messaging_set_path(cfg, "hermod.base-path", "", skip_empty=True)
    cfg = messaging_filters.messaging_set_path(cfg, "", 604800, optional_path=True)  # a profile without the key
    cfg = combine(cfg, {"message-server": {"extra": 1}})
    assert cfg == {"server": {"port": 20400},
                   "message-server": {"public-url": "https://p/ms", "extra": 1}}


def test_filter_errors_are_ansible_filter_errors():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError):
        messaging_filters.messaging_client_key("idm", "")
    with pytest.raises(AnsibleFilterError):
        messaging_filters.messaging_cacert_name("a b")
    assert set(messaging_filters.FilterModule().filters()) >= {
        "messaging_client_key", "messaging_allowed_clients", "messaging_analyze_log",
        "messaging_diagnose_cacerts", "messaging_set_path"}


# ------------------------------------------------------------- log check

BANNER = [
    " _   _ _____ ____  __  __  ___  ____",
    "| | | | ____|  _ \\|  \\/  |/ _ \\|  _ \\",
    "| |_| |  _| | |_) | |\\/| | | | | | | |",
    "|  _  | |___|  _ <| |  | | |_| | |_| |",
    "|_| |_|_____|_| \\_\\_|  |_|\\___/|____/",
]

# The vendor guide's example start-up: the alias line of the callback CA, then the banner.
GUIDE_LOG = "\n".join(
    ["INFO: Adding certificate idm-ca.cer using alias idm-ca"] + BANNER
    + ["", "INFO: Started Hermod in 14.2 seconds"]) + "\n"


def _reference_banner():
    """hermod_ref/banner.py by path: the package's other modules need the service's dependencies."""
    import importlib.util
    path = os.path.join(ROOT, "images", "messaging", "src", "hermod_ref", "banner.py")
    spec = importlib.util.spec_from_file_location("hermod_ref_banner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log(*lines):
    return "\n".join(lines) + "\n"


def test_log_with_every_alias_before_the_banner_passes():
    text = log("2026-06-01 INFO: Adding certificate a.cer using alias a",
               "2026-06-01 INFO: Adding certificate b.cer using alias b", *BANNER,
               "Started in 1.2 s")
    result = startup.analyze_startup_log(text, ["a.cer", "b.cer"])
    assert result["ok"] and result["order"] == ["a.cer", "b.cer"]
    assert result["aliases"] == {"a.cer": "a", "b.cer": "b"}
    assert result["banner_line"] == 7


def test_guide_example_log_passes_with_the_default_pattern():
    result = startup.analyze_startup_log(GUIDE_LOG, ["idm-ca.cer"])
    assert result["ok"] and result["order"] == ["idm-ca.cer"] and result["banner_line"] == 6


def test_guide_example_log_with_compose_prefixes_passes():
    prefixed = "".join("messaging-1  | 2026-06-01T10:00:00Z " + line + "\n" for line in GUIDE_LOG.splitlines())
    assert startup.analyze_startup_log(prefixed, ["idm-ca.cer"])["ok"]


def test_reference_service_banner_matches_the_default_pattern():
    banner = _reference_banner()
    rendered = banner.render("1.1.0").splitlines()
    assert [line.rstrip() for line in rendered[1:6]] == BANNER
    text = log("INFO: Adding certificate a.cer using alias a", *rendered)
    assert startup.analyze_startup_log(text, ["a.cer"])["ok"]


def test_banner_before_the_alias_lines_fails_with_a_clear_message():
    text = log(*BANNER, "INFO: Adding certificate idm-ca.cer using alias idm-ca")
    result = startup.analyze_startup_log(text, ["idm-ca.cer"])
    assert not result["ok"] and result["late"] == ["idm-ca.cer"] and result["banner_line"] == 5
    findings = startup.diagnose_cacerts(result, GOOD_MOUNTS, CONT, HOST, DIR_OK,
                                     {"idm-ca.cer": FILE_OK}, {}, 1000, 1000)
    assert findings == ["the start-up banner (log line 5) came before the alias line for "
                        "idm-ca.cer: the certificate was not loaded at start-up"]


def test_log_without_alias_lines_names_the_cacerts_mount():
    result = startup.analyze_startup_log(log(*BANNER), ["idm-ca.cer"])
    assert not result["ok"] and result["missing"] == ["idm-ca.cer"]
    findings = startup.diagnose_cacerts(result, GOOD_MOUNTS, CONT, HOST, DIR_OK,
                                     {"idm-ca.cer": FILE_OK}, {}, 1000, 1000)
    assert findings[0] == (
        "no 'INFO: Adding certificate' line at all since the container started: the service read "
        "no certificate from %s; check the cacerts mount (%s:%s:ro in docker-compose.yml) and that "
        "the image reads cacerts/ from that folder" % (CONT, HOST, CONT))


def test_old_colon_banner_no_longer_counts_as_the_banner():
    text = log("INFO: Adding certificate a.cer using alias a",
               " :: Smart ID Messaging reference ::  (v1.1.0)")
    assert not startup.analyze_startup_log(text, ["a.cer"])["banner_found"]


def test_alias_with_full_path_counts_for_the_file():
    text = log("INFO: Adding certificate /home/docker/cacerts/a.cer using alias x", *BANNER)
    assert startup.analyze_startup_log(text, ["a.cer"])["ok"]


def test_missing_alias_fails():
    text = log("INFO: Adding certificate a.cer using alias a", *BANNER)
    result = startup.analyze_startup_log(text, ["a.cer", "b.cer"])
    assert not result["ok"] and result["missing"] == ["b.cer"]


def test_alias_after_banner_fails_as_late():
    text = log("INFO: Adding certificate a.cer using alias a", *BANNER,
               "INFO: Adding certificate b.cer using alias b")
    result = startup.analyze_startup_log(text, ["a.cer", "b.cer"])
    assert not result["ok"] and result["late"] == ["b.cer"] and result["missing"] == []


def test_no_banner_fails():
    result = startup.analyze_startup_log(log("INFO: Adding certificate a.cer using alias a"), ["a.cer"])
    assert not result["ok"] and not result["banner_found"]


def test_empty_cacerts_with_banner_passes():
    assert startup.analyze_startup_log(log(*BANNER), [])["ok"]


def test_unexpected_alias_is_reported_but_not_fatal():
    text = log("INFO: Adding certificate old.cer using alias old", *BANNER)
    result = startup.analyze_startup_log(text, [])
    assert result["ok"] and result["unexpected"] == ["old.cer"]


def test_custom_banner_regex():
    text = log("INFO: Adding certificate a.cer using alias a", "Started HermodApplication in 3 s")
    assert startup.analyze_startup_log(text, ["a.cer"], r"^Started \w+")["ok"]
    assert not startup.analyze_startup_log(text, ["a.cer"])["ok"]


# ------------------------------------------------------------- diagnosis

HOST = "/opt/smartid/docker/compose/messaging/cacerts"
CONT = "/home/docker/cacerts"
GOOD_MOUNTS = [{"Type": "bind", "Source": HOST, "Destination": CONT, "RW": False}]
DIR_OK = {"exists": True, "mode": "0755", "uid": 0, "gid": 0}
FILE_OK = {"mode": "0644", "uid": 0, "gid": 0}


def test_diagnose_folder_not_mounted():
    findings = startup.diagnose_cacerts(None, [], CONT, HOST, DIR_OK, {}, {}, 1000, 1000)
    assert findings[0].startswith("cacerts folder not mounted")


def test_diagnose_wrong_mount_source():
    mounts = [{"Source": "/elsewhere", "Destination": CONT}]
    findings = startup.diagnose_cacerts(None, mounts, CONT, HOST, DIR_OK, {}, {}, 1000, 1000)
    assert "mounted from the wrong place" in findings[0]


def test_diagnose_folder_permissions():
    findings = startup.diagnose_cacerts(None, GOOD_MOUNTS, CONT, HOST, dict(DIR_OK, mode="0700"),
                                     {}, {}, 1000, 1000)
    assert findings[0].startswith("cacerts folder permissions")


def test_diagnose_folder_readable_through_group():
    stat = dict(DIR_OK, mode="0750", gid=1000)
    assert startup.diagnose_cacerts(None, GOOD_MOUNTS, CONT, HOST, stat, {}, {}, 1000, 1000) == [
        "the alias check failed but mounts, permissions and PEM files look right: read the container log"]


def test_diagnose_file_permissions():
    findings = startup.diagnose_cacerts(None, GOOD_MOUNTS, CONT, HOST, DIR_OK,
                                     {"a.cer": dict(FILE_OK, mode="0600")}, {}, 1000, 1000)
    assert findings == ["cacerts file permissions: %s/a.cer (mode 0600, owner 0:0) is not readable by "
                        "the container user 1000:1000 (needs 0644)" % HOST]


def test_diagnose_invalid_pem_and_missing_alias():
    _, c = make_cert()
    analysis = startup.analyze_startup_log(log(*BANNER), ["a.cer", "b.cer"])
    findings = startup.diagnose_cacerts(analysis, GOOD_MOUNTS, CONT, HOST, DIR_OK,
                                     {"a.cer": FILE_OK, "b.cer": FILE_OK},
                                     {"a.cer": pem(c).decode(), "b.cer": "garbage"}, 1000, 1000)
    assert findings[0] == "cacerts file %s/b.cer is not PEM (no BEGIN CERTIFICATE line)" % HOST
    assert any("'INFO: Adding certificate b.cer using alias ...'" in f for f in findings)


def test_diagnose_container_not_running_first():
    findings = startup.diagnose_cacerts(None, GOOD_MOUNTS, CONT, HOST, DIR_OK, {}, {}, 1000, 1000,
                                     container_running=False)
    assert "not running" in findings[0]


# ------------------------------------------------- the validate action's concerns


def test_cacerts_concern_collects_folder_and_variable_inputs(tmp_path):
    _, c1 = make_cert("one")
    _, c2 = make_cert("two")
    folder = tmp_path / "cacerts"
    folder.mkdir()
    (folder / "one.crt").write_bytes(der(c1))
    (folder / "README.md").write_text("how to")
    (tmp_path / "two.pem").write_bytes(pem(c2))
    found, errors, warnings = mcerts.managed_cacerts(
        cacerts_dir="cacerts", cacerts=[{"src": "two.pem"}], base_dir=str(tmp_path))
    assert errors == [] and warnings == []
    assert [c["name"] for c in found] == ["one.cer", "two.cer"]
    json.dumps(found)  # serialisable as a lookup result


def test_cacerts_concern_refuses_a_missing_folder(tmp_path):
    _, errors, _ = mcerts.managed_cacerts(cacerts_dir=str(tmp_path / "typo"))
    assert errors == ["messaging_cacerts_dir %s does not exist (set it to the folder of the "
                      "callback CA certificates, or to \"\" for none)" % (tmp_path / "typo")]
    assert mcerts.managed_cacerts(cacerts_dir="")[1] == []


def test_cacerts_concern_refuses_names_that_share_an_alias(tmp_path):
    _, c1 = make_cert("one")
    _, c2 = make_cert("two")
    (tmp_path / "My-Corp-CA.cer").write_bytes(pem(c1))
    (tmp_path / "my-corp-ca.pem").write_bytes(pem(c2))
    _, errors, _ = mcerts.managed_cacerts(cacerts_dir=str(tmp_path))
    assert errors == ["%s/My-Corp-CA.cer and %s/my-corp-ca.pem would both get the certificate "
                      "alias my-corp-ca (cacerts/my-corp-ca.cer): rename one" % (tmp_path, tmp_path)]


def test_validate_action_concerns_cover_the_keystore(tmp_path):
    from ansible_collections.smartid.hermod.plugins.action.validate import CONCERNS
    ks = tmp_path / "ks.p12"
    ks.write_bytes(make_p12(b"right"))
    args = {"tls_termination": "service", "keystore_src": "ks.p12", "keystore_password": "wrong",
            "base_dir": str(tmp_path)}
    errors, _ = CONCERNS["keystore"](**args)
    assert errors == ["messaging_keystore_src %s cannot be opened with messaging_keystore_password: "
                      "wrong password or not a PKCS#12 file" % ks]
    assert CONCERNS["keystore"](**dict(args, keystore_password="right"))[0] == []
    assert "set messaging_keystore_src" in CONCERNS["keystore"](**dict(args, keystore_src=""))[0][0]
    assert CONCERNS["keystore"](tls_termination="traefik") == ([], [])
    assert set(CONCERNS) == {"images", "profile", "clients", "public_url", "base_path", "cacerts", "keystore",
                             "service_mode", "smartid_home", "docker_install", "docker_versions", "traefik_settings",
                             "traefik_certificate", "database_password", "database_connection",
                             "database_container", "database_sql", "database_tls", "database_baseline",
                             "callback_standin", "swarm_topology", "swarm_live_restore", "swarm_service"}


# ------------------------------------------------------------ new clients


def test_new_client_key_is_random_64_hex():
    made = {keys.new_client_key() for _ in range(20)}
    assert len(made) == 20 and all(rules.KEY_RE.match(k) and k == k.lower() for k in made)


def reference_snippet(cid, key):
    return ("# X-Api-Key: %s\n- client-id: %s\n  key: %s\n"
            "  # group: <same group>\n  # callback-url: https://x\n" % (keys.api_key_header(cid, key), cid, key))


def test_parse_generated_client_reads_the_reference_snippet():
    out = keys.parse_generated_client(reference_snippet("idm", KEY_A), "idm")
    assert out == {"client_id": "idm", "key": KEY_A, "api_key": keys.api_key_header("idm", KEY_A)}


def test_parse_generated_client_rejects_mismatching_header_without_echoing_key():
    text = reference_snippet("other", KEY_A).replace("client-id: other", "client-id: idm")
    with pytest.raises(ValueError) as info:
        keys.parse_generated_client(text, "idm")
    assert KEY_A not in str(info.value)


@pytest.mark.parametrize("text", ["", "- client-id: idm\n", "- client-id: idm\n  key: abc\n"])
def test_parse_generated_client_rejects_bad_answers(text):
    with pytest.raises(ValueError):
        keys.parse_generated_client(text, "idm")


def test_diagnose_not_ready_when_aliases_are_fine():
    analysis = startup.analyze_startup_log(log(*BANNER), [])
    findings = startup.diagnose_cacerts(analysis, GOOD_MOUNTS, CONT, HOST, DIR_OK, {}, {}, 1000, 1000,
                                     health="unhealthy")
    assert findings == [
        "the service is not ready (health check: unhealthy): readiness includes the database "
        "connection; see `docker compose logs` in the messaging folder and the database component"]


# ------------------------------------------------- rules shared with the service


def test_client_kind_is_declared_or_inferred_from_the_id():
    assert rules.client_kind("idm") == "idm"
    assert rules.client_kind("IDM-prod") == "idm"
    assert rules.client_kind("da2") == "da"
    assert rules.client_kind("data") == "other"
    assert rules.client_kind("portal", "idm") == "idm"


def test_client_id_of_65_characters_is_refused_and_64_pass():
    assert client_errors([client("a" * 64)]) == []
    assert client_errors([client("a" * 65)]) == [
        "messaging_clients[0] (client_id=%s).client_id has 65 characters: at most 64 are allowed"
        % ("a" * 65)]


def test_same_key_twice_is_refused_without_echoing_it():
    errors = client_errors([client("idm", key=KEY_A), client("da", key=KEY_A.upper())])
    assert errors == ["messaging_clients[1] (client_id=da).key is the same as the key of "
                      "messaging_clients[0]: every client needs its own key"]


def test_idm_without_basic_auth_is_refused_da_is_not():
    errors = client_errors([client("idm-2", callback_basic_auth=None), client("da")])
    assert errors == ["messaging_clients[0] (client_id=idm-2).callback_basic_auth is missing: "
                      "Identity Manager requires basic auth on its callback (user:password)"]


def test_guide_shape_of_callback_urls_warns_only():
    good = [client("idm", url="https://idm.test/ws/hermod"),
            client("da", url="https://da.test/https/api/rest/v3.0/personalmessaging")]
    assert rules.check_clients(good) == ([], [])
    errors, warnings = rules.check_clients([client("idm", url="https://idm.test/cb")])
    assert errors == [] and warnings == [
        "messaging_clients[0] (client_id=idm).callback_url does not have the integration guide's "
        "shape for a IDM client: https://<IDM-HOST>/ws/hermod"]


def test_empty_client_list_is_refused():
    assert client_errors([]) == ["messaging_clients is empty: at least one client (e.g. idm or da) "
                                 "must be allowed, or nobody can send a command"]


def test_public_url_host_must_be_served_unless_served_elsewhere():
    assert rules.check_public_url("https://ms.test/ms", served_hosts=["ms.test"]) == []
    assert rules.check_public_url("https://other.test/ms", served_hosts=["ms.test"]) == [
        "messaging_public_url names host other.test, which Traefik does not serve (traefik_hostname: "
        "ms.test); set messaging_public_url_served_elsewhere: true if another proxy serves it"]
    assert rules.check_public_url("https://other.test/ms", served_hosts=["ms.test"],
                                  served_elsewhere=True) == []
    assert rules.check_public_url("https://ms.test:8443/hermod/rest/ms", "/hermod/rest") == []


def test_rules_module_needs_only_the_standard_library():
    # The service image carries this file as hermod_ref/rules.py, without Ansible.
    import ast
    import sys
    tree = ast.parse(open(rules.__file__, encoding="utf-8").read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# ------------------------------------------------------------- profile and registry

PROFILES = ["reference", "nexus"]
NEXUS_OK = dict(profile="nexus", profiles=PROFILES, image_source="registry",
                image="registry.test:5000/smartid-digitalaccess/hermod:1.0",
                health_probe="outside", key_store_type_key="keyStoreType",
                registry="registry.test:5000", registry_username="ci", registry_password_set=True)


def test_profile_reference_defaults_pass():
    assert rules.check_profile("reference", PROFILES) == []


def test_profile_nexus_with_registry_login_passes():
    assert rules.check_profile(**NEXUS_OK) == []


@pytest.mark.parametrize("changes, message", [
    ({"profile": "vendor"}, "messaging_profile 'vendor': use one of reference, nexus"),
    ({"health_probe": "inside"}, "messaging_health_probe 'inside': use container or outside"),
    ({"key_store_type_key": "keystoretype"},
     "messaging_key_store_type_key 'keystoretype': use key-store-type or keyStoreType"),
    ({"image_source": "build", "registry": "", "registry_username": "",
      "registry_password_set": False},
     "messaging_profile nexus runs the vendor's image: set messaging_image_source to registry or "
     "archive, not build"),
    ({"image": "smartid/messaging:dev", "registry": "", "registry_username": "",
      "registry_password_set": False},
     "messaging_image: set the registry reference of the image to pull (messaging_image_source "
     "is registry)"),
    ({"registry_password_set": False},
     "messaging_registry_username and messaging_registry_password: set both or neither"),
    ({"registry": "", "image": "hermod:1"},
     "messaging_registry: set the registry host[:port] the credentials are for"),
    ({"registry": "other.test"},
     "messaging_image 'registry.test:5000/smartid-digitalaccess/hermod:1.0' is not in "
     "messaging_registry 'other.test': it must start with 'other.test/'"),
])
def test_profile_rule_names_the_variable(changes, message):
    assert rules.check_profile(**dict(NEXUS_OK, **changes)) == [message]


def test_an_empty_key_path_is_refused_unless_the_key_is_optional():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match="dot-separated"):
        messaging_filters.messaging_set_path({"a": 1}, "", 5)
    assert messaging_filters.messaging_set_path({"a": 1}, "", 5, optional_path=True) == {"a": 1}
