"""Bad input is refused before the host changes, with a message naming the variable or file.

One ansible-playbook run validates every case at once (one inventory host per case, each with
its own SMARTIDHOME that already holds a deployment), then deploys whatever passed. Each case
then checks: the host failed at the validation, its errors are exactly the expected messages,
its SMARTIDHOME is byte-for-byte unchanged, and no secret reached the output (run at -vvv).

docs/validation.md lists every case (input, message); test_docs_table_is_current keeps it
in step: `UPDATE_DOCS=1 pytest tests/playbook/test_messaging_validation.py -k docs` rewrites it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from conftest import (DA_CALLBACK, DAY, HERE, NOW, ROOT, VENV_BIN, Harness, cert_der, cert_pem,
                      key_pem, make_cert, tree_checksum)

DOC = os.path.join(ROOT, "docs", "validation.md")
KEY_X = "ab" * 32


@dataclass
class Case:
    name: str
    input: str
    change: Callable
    messages: list = field(default_factory=list)
    # "spec": refused by the role's meta/argument_specs.yml (types, required keys, choices),
    # which Ansible checks before the rule functions run.
    by: str = "rules"
    # Which role's validation refuses it (the "<title> settings are invalid" of the message).
    title: str = "messaging"


def clients(h, index, **changes):
    result = copy.deepcopy(h.vars["messaging_clients"])
    for key, value in changes.items():
        if value is None:
            result[index].pop(key, None)
        else:
            result[index][key] = value
    return {"messaging_clients": result}


def add_client(h, **entry):
    result = copy.deepcopy(h.vars["messaging_clients"])
    result.append(entry)
    return {"messaging_clients": result}


def write_cert(h, name, data):
    (h.cacerts / name).write_bytes(data)
    return {}


def good_pem(cn="Another CA"):
    return cert_pem(make_cert(cn)[1])


def p12(h, password):
    key, cert = make_cert("messaging.test")
    store = h.tmp / "messaging.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"messaging", key, cert, None, serialization.BestAvailableEncryption(password.encode())))
    return str(store)


def service_mode(h):
    """Settings that pass with TLS ending in the service (a keystore that opens)."""
    return {"messaging_tls_termination": "service", "messaging_keystore_src": p12(h, "ks-pw"),
            "messaging_keystore_password": "ks-pw"}


def pem_pair(h, matching):
    key, cert = make_cert("messaging.test")
    other, _ = make_cert("other")
    (h.tmp / "tls.key").write_bytes(key_pem(key if matching else other))
    (h.tmp / "tls.crt").write_bytes(cert_pem(cert))
    return str(h.tmp / "tls.key"), str(h.tmp / "tls.crt")


def standin(h, **changes):
    """The callback stand-in turned on with usable settings, then the case's change."""
    values = {"callback_standin_enabled": True, "callback_standin_hosts": ["idm.test", "da.test"],
              "callback_standin_basic_auth": "hermod:standin-pw",
              "callback_standin_pki_dir": str(h.tmp / "standin-pki")}
    values.update(changes)
    return values


C0 = "messaging_clients[0] (client_id=idm)"
C1 = "messaging_clients[1] (client_id=da)"
C2 = "messaging_clients[2] (client_id=%s)"
ID65 = "a" * 65
NOT_SERVED = ("messaging_public_url names host %s, which Traefik does not serve (traefik_hostname: "
              "messaging.test); set messaging_public_url_served_elsewhere: true if another proxy "
              "serves it")

CASES = [
    # ------------------------------------------------------------ client ids
    Case("id-65-characters", "a client id of 65 characters",
         lambda h: add_client(h, client_id=ID65, group="g", key=KEY_X, callback_url=DA_CALLBACK),
         [C2 % ID65 + ".client_id has 65 characters: at most 64 are allowed"]),
    Case("id-with-space", "client id `da prod`",
         lambda h: clients(h, 1, client_id="da prod"),
         ["messaging_clients[1] (client_id=da prod).client_id may contain only letters, digits, "
          "'.', '_' and '-' and must start with a letter or digit"]),
    Case("id-leading-dash", "client id `-da`",
         lambda h: clients(h, 1, client_id="-da"),
         ["messaging_clients[1] (client_id=-da).client_id may contain only letters, digits, "
          "'.', '_' and '-' and must start with a letter or digit"]),
    Case("id-missing", "a client without client_id",
         lambda h: clients(h, 1, client_id=None),
         ["missing required arguments: client_id found in messaging_clients"], by="spec"),
    Case("id-duplicate", "two clients with id `idm`",
         lambda h: clients(h, 1, client_id="idm", callback_basic_auth="u:p",
                           callback_url="https://idm.test/ws/hermod"),
         ["messaging_clients[1] (client_id=idm).client_id duplicates messaging_clients[0]: client "
          "ids must be unique (compared without case)"]),
    Case("id-duplicate-case", "client ids `idm` and `IDM`",
         lambda h: clients(h, 1, client_id="IDM", callback_basic_auth="u:p",
                           callback_url="https://idm.test/ws/hermod"),
         ["messaging_clients[1] (client_id=IDM).client_id duplicates messaging_clients[0]: client "
          "ids must be unique (compared without case)"]),
    Case("clients-empty", "an empty client list",
         lambda h: {"messaging_clients": []},
         ["messaging_clients is empty: at least one client (e.g. idm or da) must be allowed, or "
          "nobody can send a command"]),
    Case("clients-not-list", "messaging_clients a string",
         lambda h: {"messaging_clients": "idm"},
         ["dictionary requested, could not parse JSON or key=value",
          "Elements value for option 'messaging_clients' is of type str and we were unable to "
          "convert to dict: dictionary requested, could not parse JSON or key=value"], by="spec"),
    Case("client-not-mapping", "a client that is a string",
         lambda h: {"messaging_clients": h.vars["messaging_clients"] + ["portal"]},
         ["dictionary requested, could not parse JSON or key=value",
          "Elements value for option 'messaging_clients' is of type str and we were unable to "
          "convert to dict: dictionary requested, could not parse JSON or key=value"], by="spec"),
    Case("kind-unknown", "kind `sso`",
         lambda h: clients(h, 1, kind="sso"),
         ["value of kind must be one of: idm, da, other, got: sso found in messaging_clients"],
         by="spec"),
    # ------------------------------------------------------------------ keys
    Case("key-63", "a key of 63 hex characters",
         lambda h: clients(h, 1, key=h.da_key[:63]),
         [C1 + ".key must be 64 hex characters (256 bit), it has 63"]),
    Case("key-65", "a key of 65 hex characters",
         lambda h: clients(h, 1, key=h.da_key + "a"),
         [C1 + ".key must be 64 hex characters (256 bit), it has 65"]),
    Case("key-non-hex", "a key with a non-hex character",
         lambda h: clients(h, 1, key="z" + h.da_key[1:]),
         [C1 + ".key must be 64 hex characters (256 bit): it holds non-hex characters"]),
    Case("key-number", "a key that YAML reads as a number",
         lambda h: clients(h, 1, key=12345),
         [C1 + ".key must be a string of 64 hex characters"]),
    Case("key-duplicate", "two clients with the same key",
         lambda h: add_client(h, client_id="portal", group="web", key=h.da_key.upper(),
                              callback_url="https://portal.test/cb"),
         [C2 % "portal" + ".key is the same as the key of messaging_clients[1]: every client "
          "needs its own key"]),
    Case("key-no-secret", "no key and an empty messaging_client_key_secret",
         lambda h: {"messaging_client_key_secret": ""},
         [C0 + ".key is not set and messaging_client_key_secret is empty: set one of them"]),
    # ---------------------------------------------------------- groups, kinds
    Case("group-missing", "a client without group",
         lambda h: clients(h, 1, group=None),
         [C1 + ".group is missing"]),
    Case("group-blank", "a group of only spaces",
         lambda h: clients(h, 0, group=" "),
         [C0 + ".group is missing"]),
    Case("group-idm-da", "idm and da in different groups",
         lambda h: clients(h, 1, group="other"),
         ["messaging_clients: all IDM and DA clients must use the same group, so devices are "
          "shared (group other: da; group smartid: idm)"]),
    Case("group-inferred-kinds", "`idm-prod` and `da2` in different groups",
         lambda h: {"messaging_clients": [
             dict(h.vars["messaging_clients"][0], client_id="idm-prod"),
             dict(h.vars["messaging_clients"][1], client_id="da2", group="devices")]},
         ["messaging_clients: all IDM and DA clients must use the same group, so devices are "
          "shared (group devices: da2; group smartid: idm-prod)"]),
    Case("group-declared-kind", "`portal` declared kind da, in another group",
         lambda h: add_client(h, client_id="portal", kind="da", group="web", key=KEY_X,
                              callback_url=DA_CALLBACK),
         ["messaging_clients: all IDM and DA clients must use the same group, so devices are "
          "shared (group smartid: idm, da; group web: portal)"]),
    # ------------------------------------------------------- callbacks, auth
    Case("idm-no-basic-auth", "an IDM client without callback_basic_auth",
         lambda h: clients(h, 0, callback_basic_auth=None),
         [C0 + ".callback_basic_auth is missing: Identity Manager requires basic auth on its "
          "callback (user:password)"]),
    Case("idm-inferred-no-basic-auth", "client `IDM2` without callback_basic_auth",
         lambda h: add_client(h, client_id="IDM2", group="smartid", key=KEY_X,
                              callback_url="https://idm2.test/ws/hermod"),
         [C2 % "IDM2" + ".callback_basic_auth is missing: Identity Manager requires basic auth on "
          "its callback (user:password)"]),
    Case("basic-auth-no-colon", "callback_basic_auth without `:`",
         lambda h: clients(h, 1, callback_basic_auth="justapassword"),
         [C1 + ".callback_basic_auth must have the form user:password"]),
    Case("callback-missing", "a client without callback_url",
         lambda h: clients(h, 1, callback_url=None),
         [C1 + ".callback_url is missing (the service calls the client back there)"]),
    Case("callback-http", "an http callback_url",
         lambda h: clients(h, 0, callback_url="http://idm.test/ws/hermod"),
         [C0 + ".callback_url must use https (got scheme 'http') (set "
          "messaging_allow_http_callbacks: true only for test setups)"]),
    Case("callback-ftp", "an ftp callback_url, http allowed",
         lambda h: dict(clients(h, 1, callback_url="ftp://da.test/x"),
                        messaging_allow_http_callbacks=True),
         [C1 + ".callback_url must use http or https (got scheme 'ftp')"]),
    Case("callback-space", "a callback_url with a space",
         lambda h: clients(h, 1, callback_url="https://da.test/a b"),
         [C1 + ".callback_url must not contain whitespace or control characters"]),
    Case("callback-no-host", "callback_url `https:///ws/hermod`",
         lambda h: clients(h, 0, callback_url="https:///ws/hermod"),
         [C0 + ".callback_url has no host"]),
    Case("callback-credentials", "a callback_url with user:password@",
         lambda h: clients(h, 1, callback_url="https://u:p@da.test/x"),
         [C1 + ".callback_url must not carry credentials (use callback_basic_auth)"]),
    Case("callback-bad-port", "a callback_url with port 99999",
         lambda h: clients(h, 1, callback_url="https://da.test:99999/x"),
         [C1 + ".callback_url has an invalid port"]),
    # ------------------------------------------------------------ public URL
    Case("public-http", "an http public URL",
         lambda h: {"messaging_public_url": "http://messaging.test/ms"},
         ["messaging_public_url must use https (got scheme 'http')"]),
    Case("public-other-path", "a public URL ending in /other",
         lambda h: {"messaging_public_url": "https://messaging.test/other"},
         ["messaging_public_url must end in /ms (https://<host>[:port]/ms), its path is '/other'"]),
    Case("public-no-path", "a public URL without /ms",
         lambda h: {"messaging_public_url": "https://messaging.test"},
         ["messaging_public_url must end in /ms (https://<host>[:port]/ms), its path is ''"]),
    Case("public-base-path", "base path /hermod/rest, public URL .../ms",
         lambda h: {"messaging_base_path": "/hermod/rest"},
         ["messaging_public_url must end in /hermod/rest/ms (https://<host>[:port]/hermod/rest/ms), "
          "its path is '/ms'"]),
    Case("public-host-not-served", "a public URL host Traefik does not serve",
         lambda h: {"messaging_public_url": "https://elsewhere.test/ms"},
         [NOT_SERVED % "elsewhere.test"]),
    Case("public-query", "a public URL with a query string",
         lambda h: {"messaging_public_url": "https://messaging.test/ms?x=1"},
         ["messaging_public_url must not have a query string"]),
    Case("public-empty", "an empty public URL",
         lambda h: {"messaging_public_url": ""},
         ["messaging_public_url is empty"]),
    Case("base-path-relative", "base path `hermod`",
         lambda h: {"messaging_base_path": "hermod", "messaging_public_url": "https://messaging.test/hermod/ms"},
         ["messaging_base_path must be empty or start with '/' and not end with '/' (e.g. "
          "/hermod/rest)"]),
    # --------------------------------------------------------------- cacerts
    Case("cacerts-dir-missing", "messaging_cacerts_dir that does not exist",
         lambda h: {"messaging_cacerts_dir": str(h.tmp / "cacerts-typo")},
         ["messaging_cacerts_dir {dir}/cacerts-typo does not exist (set it to the folder of the "
          "callback CA certificates, or to \"\" for none)"]),
    Case("cacerts-dir-file", "messaging_cacerts_dir that is a file",
         lambda h: (h.tmp / "a-file").write_text("x") and {"messaging_cacerts_dir": str(h.tmp / "a-file")},
         ["messaging_cacerts_dir {dir}/a-file is not a folder"]),
    Case("cacert-not-cert", "a .cer that is not a certificate",
         lambda h: write_cert(h, "notacert.cer", b"this is not a certificate\n"),
         ["{cacerts}/notacert.cer is not a certificate (neither PEM nor DER X.509)"]),
    Case("cacert-empty", "an empty .cer",
         lambda h: write_cert(h, "empty.cer", b""),
         ["{cacerts}/empty.cer is empty"]),
    Case("cacert-private-key", "a certificate file that holds a private key",
         lambda h: write_cert(h, "leaky.pem", good_pem() + key_pem(make_cert("k")[0])),
         ["{cacerts}/leaky.pem holds a private key: refusing to deploy it as a CA certificate"]),
    Case("cacert-bundle", "two certificates in one file",
         lambda h: write_cert(h, "bundle.pem", good_pem("one") + good_pem("two")),
         ["{cacerts}/bundle.pem holds 2 certificates: put each in its own file"]),
    Case("cacert-expired", "an expired certificate (DER)",
         lambda h: write_cert(h, "old-ca.der", cert_der(make_cert(
             "Old CA", not_before=NOW - 400 * DAY, not_after=NOW - DAY)[1])),
         ["{cacerts}/old-ca.der expired on <date> (set messaging_allow_expired_cacerts: true to "
          "deploy it anyway)"]),
    Case("cacert-expires-in-run", "a certificate that expires within the run (10 minutes)",
         lambda h: write_cert(h, "short.pem", cert_pem(make_cert(
             "Short CA", not_after=minutes_from_now(10))[1])),
         ["{cacerts}/short.pem expires within this run, on <date> (set "
          "messaging_allow_expired_cacerts: true to deploy it anyway)"]),
    Case("cacert-alias-case", "`My-Corp-CA.cer` beside `my-corp-ca.cer`",
         lambda h: write_cert(h, "My-Corp-CA.cer", good_pem("one"))
         or write_cert(h, "my-corp-ca.cer", good_pem("two")),
         ["{cacerts}/My-Corp-CA.cer and {cacerts}/my-corp-ca.cer would both get the certificate "
          "alias my-corp-ca (cacerts/my-corp-ca.cer): rename one"]),
    Case("cacert-alias-suffix", "`corp.pem` beside `corp.der`",
         lambda h: write_cert(h, "corp.der", cert_der(make_cert("one")[1]))
         or write_cert(h, "corp.pem", good_pem("two")),
         ["{cacerts}/corp.der and {cacerts}/corp.pem would both get the certificate alias corp "
          "(cacerts/corp.cer): rename one"]),
    Case("cacert-alias-variable", "folder `corp.pem` and messaging_cacerts name `CORP`",
         lambda h: write_cert(h, "corp.pem", good_pem("one"))
         or {"messaging_cacerts": [{"name": "CORP", "content": good_pem("two").decode()}]},
         ["{cacerts}/corp.pem and messaging_cacerts[0] (name=CORP) would both get the certificate "
          "alias corp (cacerts/CORP.cer): rename one"]),
    Case("cacert-bad-name", "a certificate file named `corp ca.pem`",
         lambda h: write_cert(h, "corp ca.pem", good_pem()),
         ["{cacerts}/corp ca.pem: certificate name 'corp ca.pem' may contain only letters, "
          "digits, '.', '_' and '-'"]),
    Case("cacert-var-no-content", "a messaging_cacerts entry without content or src",
         lambda h: {"messaging_cacerts": [{"name": "corp"}]},
         ["messaging_cacerts[0] (name=corp) needs content or src"]),
    Case("cacert-var-src-missing", "a messaging_cacerts src that does not exist",
         lambda h: {"messaging_cacerts": [{"name": "corp", "src": str(h.tmp / "nope.pem")}]},
         ["messaging_cacerts[0] (name=corp).src {dir}/nope.pem cannot be read: No such file or "
          "directory"]),
    Case("cacert-var-expired", "an expired certificate in messaging_cacerts",
         lambda h: {"messaging_cacerts": [{"name": "var-old", "content": cert_pem(make_cert(
             "Old CA", not_before=NOW - 400 * DAY, not_after=NOW - DAY)[1]).decode()}]},
         ["messaging_cacerts[0] (name=var-old) expired on <date> (set "
          "messaging_allow_expired_cacerts: true to deploy it anyway)"]),
    # ---------------------------------------------------- profile and registry
    Case("profile-unknown", "messaging_profile `vendor`",
         lambda h: {"messaging_profile": "vendor"},
         ["value of messaging_profile must be one of: reference, nexus, got: vendor"], by="spec"),
    Case("profile-nexus-no-image", "profile nexus without messaging_image",
         lambda h: {"messaging_profile": "nexus"},
         ["messaging_image: set the registry reference of the image to pull "
          "(messaging_image_source is registry)"]),
    Case("profile-nexus-build", "profile nexus with messaging_image_source `build`",
         lambda h: {"messaging_profile": "nexus", "messaging_image_source": "build"},
         ["messaging_profile nexus runs the vendor's image: set messaging_image_source to "
          "registry or archive, not build"]),
    Case("registry-user-no-password", "a registry user without password",
         lambda h: {"messaging_profile": "nexus", "messaging_image": "reg.test/hermod:1",
                    "messaging_registry": "reg.test", "messaging_registry_username": "ci"},
         ["messaging_registry_username and messaging_registry_password: set both or neither"]),
    Case("registry-credentials-no-host", "registry credentials without messaging_registry",
         lambda h: {"messaging_profile": "nexus", "messaging_image": "reg.test/hermod:1",
                    "messaging_registry_username": "ci",
                    "messaging_registry_password": "reg-" + h.secret},
         ["messaging_registry: set the registry host[:port] the credentials are for"]),
    Case("registry-image-elsewhere", "messaging_image outside messaging_registry",
         lambda h: {"messaging_profile": "nexus", "messaging_image": "other.test/hermod:1",
                    "messaging_registry": "reg.test", "messaging_registry_username": "ci",
                    "messaging_registry_password": "reg-" + h.secret},
         ["messaging_image 'other.test/hermod:1' is not in messaging_registry 'reg.test': it "
          "must start with 'reg.test/'"]),
    # -------------------------------------------------------------- keystore
    Case("keystore-wrong-password", "a keystore and the wrong password",
         lambda h: {"messaging_tls_termination": "service",
                    "messaging_keystore_src": p12(h, "the-right-one"),
                    "messaging_keystore_password": "wrong-" + h.secret},
         ["messaging_keystore_src {dir}/messaging.p12 cannot be opened with "
          "messaging_keystore_password: wrong password or not a PKCS#12 file"]),
    Case("keystore-missing", "TLS in the service without a keystore",
         lambda h: {"messaging_tls_termination": "service"},
         ["messaging_tls_termination is service: set messaging_keystore_src (a .p12) or both "
          "messaging_keystore_key_src and messaging_keystore_cert_src (PEM)"]),
    Case("keystore-no-password", "a keystore without password",
         lambda h: {"messaging_tls_termination": "service",
                    "messaging_keystore_src": p12(h, "pw")},
         ["messaging_keystore_password is empty: the keystore needs a password"]),
    Case("keystore-src-unreadable", "a keystore path that does not exist",
         lambda h: {"messaging_tls_termination": "service",
                    "messaging_keystore_src": str(h.tmp / "none.p12"),
                    "messaging_keystore_password": "pw-" + h.secret},
         ["messaging_keystore_src {dir}/none.p12 cannot be read: No such file or directory"]),
    Case("keystore-both", "a keystore and a PEM pair",
         lambda h: {"messaging_tls_termination": "service", "messaging_keystore_src": p12(h, "pw"),
                    "messaging_keystore_key_src": "k.pem", "messaging_keystore_cert_src": "c.pem",
                    "messaging_keystore_password": "pw"},
         ["set either messaging_keystore_src or messaging_keystore_key_src/cert_src, not both"]),
    Case("service-ranges-invalid", "TLS in the service, allow-list `10.0.0.0/33`, `nowhere`",
         lambda h: dict(service_mode(h), messaging_command_source_ranges=["10.0.0.0/33", "nowhere"]),
         ["messaging_command_source_ranges must be a non-empty list of addresses or networks; "
          "invalid: 10.0.0.0/33, nowhere"]),
    Case("service-ranges-empty", "TLS in the service, an empty allow-list",
         lambda h: dict(service_mode(h), messaging_command_source_ranges=[]),
         ["messaging_command_source_ranges must be a non-empty list of addresses or networks; "
          "invalid: "]),
    Case("service-ports-clash", "TLS in the service, operator port = service port",
         lambda h: dict(service_mode(h), messaging_operator_port=20400),
         ["messaging_server_port (20400), messaging_operator_port (20400) and "
          "messaging_proxy_protocol_port (20402) must differ"]),
    Case("keystore-pair-mismatch", "a PEM certificate that does not belong to the key",
         lambda h: dict(zip(("messaging_keystore_key_src", "messaging_keystore_cert_src"),
                            pem_pair(h, matching=False)),
                        messaging_tls_termination="service",
                        messaging_keystore_password="pw-" + h.secret),
         ["messaging_keystore_cert_src {dir}/tls.crt does not belong to the private key "
          "messaging_keystore_key_src {dir}/tls.key"]),
    # ---------------------------------------------- TLS to an external database (wired)
    Case("database-tls-no-ca", "an external database, verify-full (default) without a CA file",
         lambda h: {"database_external": True, "database_host": "pg.example.test"},
         ["messaging_database_ca_file must name the database provider's CA file (PEM, on the "
          "controller) when messaging_database_sslmode is verify-full"]),
    Case("database-tls-sslmode", "an external database with database_external_sslmode `prefer`",
         lambda h: {"database_external": True, "database_host": "pg.example.test",
                    "database_external_sslmode": "prefer"},
         ["messaging_database_sslmode must be one of disable, require, verify-ca, verify-full "
          "(is 'prefer')"]),
    # ------------------------------------------------------------ callback preflight, stand-in
    Case("callback-reachable-not-bool", "callback_reachable `later`",
         lambda h: clients(h, 1, callback_reachable="later"),
         # Ansible lists the valid booleans from a set: their order varies from run to run.
         ["argument 'callback_reachable' is of type str found in 'messaging_clients'. and we were "
          "unable to convert to bool: The value 'later' is not a valid boolean. Valid booleans "
          "include: <any>"], by="spec"),
    Case("standin-basic-auth-no-colon", "the callback stand-in on, basic auth without `:`",
         lambda h: standin(h, callback_standin_basic_auth="hermod"),
         ["callback_standin_basic_auth must have the form user:password (no spaces, a non-empty "
          "user and password)"], title="callback stand-in"),
    Case("standin-host-not-dns", "the callback stand-in on, host `idm_smartid.test`",
         lambda h: standin(h, callback_standin_hosts=["idm_smartid.test"]),
         ["callback_standin_hosts: not DNS names: idm_smartid.test"], title="callback stand-in"),
    Case("standin-pki-relative", "the callback stand-in on, a relative PKI folder",
         lambda h: standin(h, callback_standin_pki_dir="pki"),
         ["callback_standin_pki_dir must be an absolute path (is 'pki')"],
         title="callback stand-in"),
]


def datetime_minutes(minutes):
    return __import__("datetime").timedelta(minutes=minutes)


def minutes_from_now(minutes):
    """From when the case is set up, not from the suite's start: a long suite before the batch
    would otherwise let the certificate expire before the run it should expire within."""
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    return now + datetime_minutes(minutes)


def previous_deployment(h):
    """A SMARTIDHOME that already holds a messaging deployment, so "unchanged" means something."""
    base = h.home / "docker" / "compose" / "messaging"
    for sub in ("config", "cacerts", "certificates"):
        (base / sub).mkdir(parents=True)
    (base / "config" / "hermod-conf.yml").write_text("server:\n  port: 20400\n")
    (base / "config" / "hermod-conf.yml").chmod(0o640)
    (base / "docker-compose.yml").write_text("services: {}\n")
    (base / "cacerts" / "previous.cer").write_bytes(good_pem("Previous CA"))


def expected(case, h):
    return [m.replace("{cacerts}", str(h.cacerts)).replace("{dir}", str(h.tmp))
            for m in case.messages]


def matches(want, got):
    """<date> (a certificate's expiry) and <any> (text Ansible words differently per run) match
    any text; the rest must be equal."""
    for wildcard in ("<date>", "<any>"):
        if wildcard in want:
            head, tail = want.split(wildcard)
            return got.startswith(head) and got.endswith(tail)
    return want == got


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Run every case (and one reference case that must pass) in one ansible-playbook."""
    root = tmp_path_factory.mktemp("refusals")
    hosts, harnesses, before = {}, {}, {}
    for case in [Case("reference", "valid settings", lambda h: {})] + CASES:
        case_dir = root / case.name
        case_dir.mkdir()
        h = Harness(case_dir, "msgrefuse-" + case.name)
        h.add_cert("callback-ca.pem", good_pem("Callback CA"))
        previous_deployment(h)
        values = dict(h.vars)
        values.update(case.change(h) or {})
        values.update(ansible_connection="local", ansible_python_interpreter=str(
            os.path.join(VENV_BIN, "python")))
        hosts[case.name] = values
        harnesses[case.name] = h
        before[case.name] = tree_checksum(h.home)
    inventory = root / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory),
                           os.path.join(HERE, "refusals.yml"), "-f", "8", "-vvv"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    results = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if "Ensure the messaging settings are valid (" in task["task"]["name"] \
                        or result.get("failed"):
                    results.setdefault(host, result)
    return {"proc": proc, "results": results, "harnesses": harnesses, "before": before,
            "stats": report["stats"]}


def test_reference_case_passes(batch):
    result = batch["results"].get("reference")
    assert result is not None, batch["proc"].stdout[-3000:] + batch["proc"].stderr[-3000:]
    assert not result.get("failed"), result.get("msg")
    assert result["errors"] == [] and result["warnings_found"] == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_before_any_change(batch, case):
    h = batch["harnesses"][case.name]
    result = batch["results"].get(case.name)
    assert result is not None, "no validation result for %s" % case.name
    assert result.get("failed") is True, result
    want = expected(case, h)
    if case.by == "spec":
        assert result["action"] == "ansible.builtin.validate_argument_spec", result
        got = result["argument_errors"]
    else:
        got = result["errors"]
        assert result["msg"].startswith("%s settings are invalid:\n- " % case.title)
    assert len(got) == len(want) and all(matches(w, g) for w, g in zip(want, got)), got
    assert batch["stats"][case.name]["failures"] == 1
    assert tree_checksum(h.home) == batch["before"][case.name], \
        "SMARTIDHOME changed although validation failed"
    output = batch["proc"].stdout + batch["proc"].stderr
    for value in h.secret_values:
        assert value not in output, "a secret value appeared in the output"


def test_at_least_forty_refusals():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def docs_table():
    lines = ["| # | Input | Refused by | Message |", "|---|---|---|---|"]
    for number, case in enumerate(CASES, start=1):
        message = "<br>".join("`%s`" % m.replace("|", "\\|").replace("`", "'")
                              for m in case.messages)
        lines.append("| %d | %s | %s | %s |" % (
            number, case.input.replace("|", "\\|"),
            "argument spec" if case.by == "spec" else "rules", message))
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- refusals:begin -->\n", "<!-- refusals:end -->\n"


def test_docs_table_is_current():
    text = open(DOC, encoding="utf-8").read()
    assert BEGIN in text and END in text, "%s lacks the refusals markers" % DOC
    head, rest = text.split(BEGIN)
    current, tail = rest.split(END)
    if os.environ.get("UPDATE_DOCS") == "1":
        with open(DOC, "w", encoding="utf-8") as handle:
            handle.write(head + BEGIN + docs_table() + END + tail)
        return
    assert current == docs_table(), ("docs/validation.md is stale: run UPDATE_DOCS=1 pytest "
                                     "tests/playbook/test_messaging_validation.py -k docs")


def test_valid_settings_pass_quietly_at_vvv(harness):
    harness.add_cert("callback-ca.pem", good_pem("Callback CA"))
    proc = harness.run("validate_messaging.yml", args=["-vvv"])
    assert proc.returncode == 0, proc.output
    harness.assert_no_secret(proc.output)


@pytest.mark.parametrize("verbosity", ["-v", "-vvvv"])
def test_refusal_prints_no_secret_at_any_verbosity(harness, verbosity):
    before = tree_checksum(harness.home)
    proc = harness.run(extra=clients(harness, 1, group="other"), args=[verbosity])
    assert proc.returncode != 0
    assert "all IDM and DA clients must use the same group" in proc.output, proc.output
    assert tree_checksum(harness.home) == before
    harness.assert_no_secret(proc.output)
