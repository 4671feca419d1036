"""Negative tests: ansible-playbook refuses bad messaging settings before the host changes.

Each case starts from settings that pass (test_valid_settings_pass proves it), breaks one
thing, and checks that the run fails with a message naming the field or file, that the
throwaway SMARTIDHOME is byte-for-byte unchanged, and that no secret reached the output.
"""

from __future__ import annotations

import copy

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from conftest import DAY, NOW, cert_der, cert_pem, key_pem, make_cert, tree_checksum


def previous_deployment(h):
    """A SMARTIDHOME that already holds a messaging deployment, so "unchanged" means something."""
    base = h.home / "docker" / "compose" / "messaging"
    for sub in ("config", "cacerts", "certificates"):
        (base / sub).mkdir(parents=True)
    (base / "config" / "hermod-conf.yml").write_text("server:\n  port: 20400\n")
    (base / "config" / "hermod-conf.yml").chmod(0o640)
    (base / "docker-compose.yml").write_text("services: {}\n")
    _, old = make_cert("Previous CA")
    (base / "cacerts" / "previous.cer").write_bytes(cert_pem(old))
    return tree_checksum(h.home)


def refused(h, extra=None, expect=(), **kwargs):
    before = previous_deployment(h)
    proc = h.run(extra=extra, **kwargs)
    assert proc.returncode != 0, proc.output
    for text in expect:
        assert text in proc.output, proc.output
    assert "messaging settings are invalid" in proc.output, proc.output
    assert tree_checksum(h.home) == before, "SMARTIDHOME changed although validation failed"
    h.assert_no_secret(proc.output)
    return proc


def clients_with(h, index, **changes):
    clients = copy.deepcopy(h.vars["messaging_clients"])
    clients[index].update(changes)
    return {"messaging_clients": clients}


def test_valid_settings_pass(harness):
    _, cert = make_cert("Callback CA")
    harness.add_cert("callback-ca.pem", cert_pem(cert))
    proc = harness.run("validate_messaging.yml", args=["-vvv"])
    assert proc.returncode == 0, proc.output
    harness.assert_no_secret(proc.output)


def test_key_with_63_characters_is_refused(harness):
    refused(harness, clients_with(harness, 1, key=harness.da_key[:63]),
            ["messaging_clients[1] (client_id=da).key must be 64 hex characters (256 bit), it has 63"])


def test_non_hex_key_is_refused(harness):
    refused(harness, clients_with(harness, 1, key="z" + harness.da_key[1:]),
            ["messaging_clients[1] (client_id=da).key must be 64 hex characters (256 bit): "
             "it holds non-hex characters"])


def test_duplicate_client_id_is_refused(harness):
    refused(harness, clients_with(harness, 1, client_id="idm"),
            ["messaging_clients[1] (client_id=idm).client_id duplicates messaging_clients[0]"])


def test_idm_da_group_mismatch_is_refused(harness):
    refused(harness, clients_with(harness, 1, group="other"),
            ["idm and da must use the same group"])


def test_http_public_url_is_refused(harness):
    refused(harness, {"messaging_public_url": "http://messaging.test/ms"},
            ["messaging_public_url must use https"])


def test_http_callback_url_is_refused(harness):
    refused(harness, clients_with(harness, 0, callback_url="http://idm.test/cb"),
            ["messaging_clients[0] (client_id=idm).callback_url must use https"])


def test_missing_callback_url_is_refused(harness):
    clients = copy.deepcopy(harness.vars["messaging_clients"])
    del clients[1]["callback_url"]
    refused(harness, {"messaging_clients": clients},
            ["messaging_clients[1] (client_id=da).callback_url is missing"])


def test_cer_that_is_not_a_certificate_is_refused(harness):
    _, good = make_cert("Good CA")
    harness.add_cert("good.cer", cert_pem(good))
    harness.add_cert("notacert.cer", b"this is not a certificate\n")
    refused(harness, expect=["%s/notacert.cer is not a certificate" % harness.cacerts])


def test_private_key_in_cacerts_is_refused(harness):
    key, cert = make_cert("Leaky CA")
    harness.add_cert("leaky.pem", cert_pem(cert) + key_pem(key))
    refused(harness, expect=["%s/leaky.pem holds a private key" % harness.cacerts])


def test_expired_certificate_is_refused(harness):
    _, cert = make_cert("Old CA", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    harness.add_cert("old-ca.der", cert_der(cert))
    refused(harness, expect=["%s/old-ca.der expired on" % harness.cacerts,
                             "messaging_allow_expired_cacerts"])


def test_expired_certificate_in_variable_list_is_refused(harness):
    _, cert = make_cert("Old CA", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    refused(harness, {"messaging_cacerts": [{"name": "var-old", "content": cert_pem(cert).decode()}]},
            ["messaging_cacerts[0] (name=var-old) expired on"])


def test_wrong_keystore_password_is_refused(harness):
    key, cert = make_cert("messaging.test")
    store = harness.tmp / "messaging.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"messaging", key, cert, None, serialization.BestAvailableEncryption(b"the-right-one")))
    wrong = "wrong-" + harness.secret
    proc = refused(harness, {"messaging_tls_termination": "service",
                             "messaging_keystore_src": str(store),
                             "messaging_keystore_password": wrong},
                   ["messaging_keystore_src %s cannot be opened with messaging_keystore_password" % store])
    assert wrong not in proc.output


@pytest.mark.parametrize("changes, message", [
    ({"messaging_command_source_ranges": ["10.0.0.0/33", "nowhere"]},
     "messaging_command_source_ranges must be a non-empty list of addresses or networks; invalid: 10.0.0.0/33, nowhere"),
    ({"messaging_command_source_ranges": []}, "messaging_command_source_ranges must be a non-empty list"),
    ({"messaging_operator_port": 20400}, "messaging_operator_port (20400) and messaging_proxy_protocol_port (20402) must differ"),
])
def test_service_mode_listeners_and_source_ranges_are_checked(harness, changes, message):
    key, cert = make_cert("messaging.test")
    store = harness.tmp / "messaging.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"messaging", key, cert, None, serialization.BestAvailableEncryption(b"ks-password")))
    refused(harness, {"messaging_tls_termination": "service", "messaging_keystore_src": str(store),
                      "messaging_keystore_password": "ks-password", **changes}, [message])


@pytest.mark.parametrize("verbosity", ["-v", "-vvvv"])
def test_refusal_prints_no_secret_at_any_verbosity(harness, verbosity):
    refused(harness, clients_with(harness, 1, group="other"), ["idm and da must use the same group"],
            args=[verbosity])
