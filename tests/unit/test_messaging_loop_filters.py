"""The callback preflight's targets and verdicts, and the lifecycle table."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smartid.hermod.plugins.filter.messaging_lifecycle import messaging_lifecycle_table
from ansible_collections.smartid.hermod.plugins.filter.messaging_preflight import (
    messaging_callback_targets,
    messaging_callback_verdicts,
)

CLIENTS = [
    {"client_id": "idm", "callback_url": "https://idm.example.test/ws/hermod"},
    {"client-id": "da", "callback-url": "https://da.example.test:8443/https/api/rest/v3.0/personalmessaging",
     "callback_reachable": False},
    {"client_id": "web", "callback_url": "http://web.example.test/cb"},
]


def test_targets_take_scheme_host_and_default_ports_from_either_spelling():
    assert messaging_callback_targets(CLIENTS) == [
        {"client": "idm", "scheme": "https", "host": "idm.example.test", "port": 443},
        {"client": "da", "scheme": "https", "host": "da.example.test", "port": 8443},
        {"client": "web", "scheme": "http", "host": "web.example.test", "port": 80},
    ]


def test_target_with_a_bad_port_names_the_client():
    with pytest.raises(AnsibleFilterError, match="messaging_clients x: callback_url"):
        messaging_callback_targets([{"client_id": "x", "callback_url": "https://h:99999/"}])


def probe(*results):
    return {"trusted": ["corp-ca.cer"], "results": list(results)}


def test_untrusted_is_an_error_naming_client_issuer_and_the_tried_set():
    verdict = messaging_callback_verdicts(probe(
        {"client": "idm", "host": "idm.example.test", "port": 443, "address": "10.0.0.5", "verdict": "untrusted",
         "error": "unable to get local issuer certificate", "subject": "commonName=idm.example.test",
         "issuer": "commonName=IDM Issuing CA", "not_after": "Jan  1 00:00:00 2030 GMT"}), CLIENTS)
    assert verdict["warnings"] == []
    assert verdict["errors"] == [
        "client idm: the callback server idm.example.test:443 presents 'commonName=idm.example.test' issued by "
        "'commonName=IDM Issuing CA', which does not verify against the deployed cacerts/ (corp-ca.cer): unable to "
        "get local issuer certificate. The CA that issued it ('commonName=IDM Issuing CA') is missing: add it to "
        "messaging_cacerts_dir or messaging_cacerts"]
    assert "10.0.0.5" in verdict["lines"][1] and "untrusted" in verdict["lines"][1]


def test_client_marked_not_reachable_gets_a_warning_and_ok_gets_nothing():
    verdict = messaging_callback_verdicts(probe(
        {"client": "da", "host": "da.example.test", "port": 8443, "address": None, "verdict": "unresolved",
         "error": "da.example.test does not resolve: Name or service not known"},
        {"client": "web", "host": "web.example.test", "port": 80, "address": "10.0.0.7", "verdict": "ok",
         "error": None}), CLIENTS)
    assert verdict["errors"] == []
    assert verdict["warnings"] == ["client da: callback da.example.test:8443 unresolved: da.example.test does not "
                                   "resolve: Name or service not known"]
    assert len(verdict["lines"]) == 3


def run(cid, ok=True, message_id="m-1", url="https://idm.smartid.test/ws/hermod"):
    steps = [{"step": s, "ok": ok if s == "signed answer" else True, "seconds": 0.1, "detail": s}
             for s in ("command", "device fetch", "signed answer")]
    return {"item": {"client-id": cid, "callback-url": url}, "steps": steps, "message_id": message_id,
            "ok": ok}


def wait(message_id, rc=0, entry=None):
    return {"item": {"message_id": message_id}, "rc": rc, "delta": "0:00:00.250000",
            "stdout": json.dumps(entry) if entry else ""}


GOOD = {"type": "provision", "host": "idm.smartid.test", "path": "/ws/hermod/callback/provision",
        "body": {"status": "answered"}}


def test_lifecycle_passes_when_the_callback_reached_the_clients_path_and_host():
    table = messaging_lifecycle_table([run("idm")], [wait("m-1", entry=GOOD)], None, True, 60)
    assert table["failed"] == []
    assert [(r["step"], r["ok"]) for r in table["rows"]] == [
        ("command", True), ("device fetch", True), ("signed answer", True), ("callback", True)]
    assert table["rows"][-1]["seconds"] == 0.25
    assert table["lines"][0].split()[:4] == ["client", "step", "result", "time"]


@pytest.mark.parametrize("entry, rc, problem", [
    (dict(GOOD, path="/other/callback/provision"), 0, "path /other/callback/provision, expected /ws/hermod/callback/provision"),
    (dict(GOOD, host="da.smartid.test"), 0, "host da.smartid.test, expected idm.smartid.test"),
    (dict(GOOD, body={"status": "timeout"}), 0, "status timeout"),
    (None, 124, "no callback with messageId m-1 within 60s"),
])
def test_lifecycle_fails_on_a_wrong_or_missing_callback(entry, rc, problem):
    table = messaging_lifecycle_table([run("idm")], [wait("m-1", rc=rc, entry=entry)], None, True, 60)
    assert table["failed"] == ["idm"] and problem in table["rows"][-1]["detail"]


def test_failed_step_fails_the_client_and_callback_is_not_awaited():
    table = messaging_lifecycle_table([run("da", ok=False)], [], None, True, 60)
    assert table["failed"] == ["da"]
    assert table["rows"][-1]["detail"] == "not waited for (an earlier step failed)"


def test_without_a_stand_in_the_callback_is_reported_as_not_observed():
    table = messaging_lifecycle_table([run("idm")], [], None, False, 60)
    assert table["failed"] == [] and table["rows"][-1]["ok"] is None
    assert " - " in table["lines"][-1]
