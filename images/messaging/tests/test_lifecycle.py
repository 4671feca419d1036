"""The whole protocol against a real service process, PostgreSQL and callback receiver."""

import time

import psycopg
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hermod_ref.api import jws
from helpers import DA, IDM, api_key

NONCE = "nonce-0123456789"


def cmd(kind, userid="alice", fmt="jws", header=None, **extra):
    key = {"provision": "provCommand", "sign": "signCommand", "authenticate": "authCommand",
           "ping": "pingCommand", "certificate": "certCommand"}[kind]
    body = {key: {"nonce": NONCE, "userid": userid, "responseformat": fmt, **extra}}
    if header:
        body["commandHeader"] = header
    return body


def start(service, kind, headers=IDM, **kw):
    r = service.command(kind, cmd(kind, **kw), headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def fetch(accepted):
    return requests.get(accepted["deviceUrl"], timeout=5)


def respond(accepted, response, nonce=NONCE):
    return requests.post(accepted["deviceUrl"] + "/response", json={"nonce": nonce, "response": response}, timeout=5)


def provision(service, key, userid="alice", headers=IDM):
    acc = start(service, "provision", userid=userid, headers=headers, profile={"keys": [{"alg": "ES256"}]})
    command = fetch(acc).json()
    token = jws.sign({"nonce": command["nonce"], "ok": True}, key, {"jwk": jws.public_jwk(key.public_key())})
    r = respond(acc, token)
    assert r.status_code == 202, r.text
    return acc


def test_provision_then_sign_with_callbacks(service, receiver):
    device = ec.generate_private_key(ec.SECP256R1())
    acc = provision(service, device)
    cbs = receiver.wait_for(lambda c: len(c) == 1)
    cb = cbs[0]
    assert cb["type"] == "provision" and cb["body"]["messageId"] == acc["messageId"]
    assert cb["body"]["status"] == "answered" and cb["body"]["deviceKey"] == jws.public_jwk(device.public_key())
    assert cb["idempotencyKey"] and receiver.receiver.unauthorized == 0
    # da is in the same group: it may use the device idm provisioned; its callback goes to da only
    acc2 = start(service, "sign", headers=DA, data="aGVsbG8=")
    command = fetch(acc2).json()
    assert command["command"]["data"] == "aGVsbG8=" and command["type"] == "sign"
    r = respond(acc2, jws.sign({"nonce": NONCE, "signature": "x"}, device))
    assert r.status_code == 202, r.text
    cbs = receiver.wait_for(lambda c: len(c) == 2)
    assert cbs[1]["type"] == "sign" and cbs[1]["body"]["messageId"] == acc2["messageId"]
    end = time.monotonic() + 5  # outcomes are recorded just after the receiver answered
    while time.monotonic() < end:
        with psycopg.connect(service.dsn) as conn:
            if conn.execute("SELECT count(*) FROM hermod_callback WHERE state = 'delivered'").fetchone()[0] == 2:
                break
        time.sleep(0.05)
    with psycopg.connect(service.dsn) as conn:
        rows = conn.execute("SELECT c.client_id, c.state, c.attempts, c.last_http_status FROM hermod_callback c "
                            "JOIN hermod_command m ON m.id = c.command_id ORDER BY c.created_at").fetchall()
    assert rows == [("idm", "delivered", 1, 204), ("da", "delivered", 1, 204)]


def test_rs256_device(service, receiver):
    device = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provision(service, device, userid="bob")
    acc = start(service, "authenticate", userid="bob")
    fetch(acc)
    assert respond(acc, jws.sign({"nonce": NONCE}, device)).status_code == 202
    receiver.wait_for(lambda c: len(c) == 2)


def test_device_side_refusals(service, receiver):
    device = ec.generate_private_key(ec.SECP256R1())
    provision(service, device)
    acc = start(service, "sign")
    # answer before fetch
    assert respond(acc, jws.sign({"nonce": NONCE}, device)).status_code == 409
    assert fetch(acc).status_code == 200
    assert fetch(acc).status_code == 409  # one-time reference
    assert respond(acc, jws.sign({"nonce": NONCE}, device), nonce="wrong-nonce-value").status_code == 403
    # signed by another key, or nonce not in the signed payload
    assert respond(acc, jws.sign({"nonce": NONCE}, ec.generate_private_key(ec.SECP256R1()))).status_code == 403
    assert respond(acc, jws.sign({"nonce": "other"}, device)).status_code == 403
    assert respond(acc, "not.a.jws").status_code == 400
    assert respond(acc, jws.sign({"nonce": NONCE}, device)).status_code == 202
    assert respond(acc, jws.sign({"nonce": NONCE}, device)).status_code == 409  # already answered
    bogus = acc["deviceUrl"].rsplit("/", 1)[0] + "/" + "A" * 43
    assert requests.get(bogus, timeout=5).status_code == 404
    # a user without a provisioned device cannot answer jws commands
    acc = start(service, "sign", userid="nobody")
    fetch(acc)
    r = respond(acc, jws.sign({"nonce": NONCE}, device))
    assert r.status_code == 422 and "provision" in r.json()["message"]


def test_json_format_and_expiry_timeout_callback(service, receiver):
    acc = start(service, "ping", fmt="json", header={"lifespan": 1})
    assert acc["lifespan"] == 1
    cbs = receiver.wait_for(lambda c: len(c) == 1, timeout=10)
    assert cbs[0]["body"]["status"] == "timeout" and cbs[0]["body"]["fetched"] is False
    assert fetch(acc).status_code == 410
    # fetched but not answered within the timeout
    acc = start(service, "ping", fmt="json", header={"timeout": 1})
    assert fetch(acc).status_code == 200
    cbs = receiver.wait_for(lambda c: len(c) == 2, timeout=10)
    assert cbs[1]["body"]["status"] == "timeout" and cbs[1]["body"]["fetched"] is True
    assert respond(acc, {"ok": True}).status_code == 410
    # json answered in time
    acc = start(service, "ping", fmt="json")
    fetch(acc)
    assert respond(acc, ["not", "an", "object"]).status_code == 400
    assert respond(acc, {"ok": True}).status_code == 202
    cbs = receiver.wait_for(lambda c: len(c) == 3)
    assert cbs[2]["body"]["response"] == {"ok": True}


def test_client_side_refusals(service):
    body = cmd("ping")
    for headers in ({}, {"X-Api-Key": "garbage"}, {"X-Api-Key": api_key("idm", "ab" * 32)},
                    {"X-Api-Key": api_key("nobody", "0123456789abcdef" * 4)}):
        r = service.command("ping", body, headers=headers)
        assert r.status_code == 401 and r.json()["message"].startswith("missing, malformed or unknown")
    r = service.command("ping", {"pingCommand": {"userid": "x"}})
    assert r.status_code == 400 and r.json()["message"] == "pingCommand.nonce: is required and must be a string"
    r = requests.post(f"{service.url}/command/ping", data=b"{" + b" " * 70000 + b"}", headers=IDM, timeout=5)
    assert r.status_code == 413
    assert requests.post(f"{service.url}/command/unknown", json=body, headers=IDM, timeout=5).status_code == 404
    assert requests.get(f"{service.url}/command/ping", headers=IDM, timeout=5).status_code == 405
    r = service.command("ping", cmd("ping", header={"lifespan": 10**9, "timeout": 10**9}))
    assert (r.json()["lifespan"], r.json()["timeout"]) == (86400, 3600)


def test_util_generateclient(service):
    import base64

    import yaml

    r = requests.get(f"{service.url}/util/generateclient/portal", timeout=5)
    assert r.status_code == 200
    first = r.text.splitlines()[0]
    assert first.startswith("# X-Api-Key: ")
    entry = yaml.safe_load(r.text)[0]
    assert entry["client-id"] == "portal" and len(entry["key"]) == 64 and int(entry["key"], 16) >= 0
    assert base64.b64decode(first.split(": ", 1)[1]).decode() == f"portal:{entry['key']}"
    assert requests.get(f"{service.url}/util/generateclient/portal", timeout=5).text != r.text
    assert requests.get(f"{service.url}/util/generateclient/bad%20id", timeout=5).status_code == 400


def test_actuator_metrics_and_docs(service, receiver):
    assert requests.get(f"{service.url}/actuator/health/liveness", timeout=5).json() == {"status": "UP"}
    assert requests.get(f"{service.url}/actuator/health/readiness", timeout=5).json()["status"] == "UP"
    acc = start(service, "ping", fmt="json")
    fetch(acc)
    respond(acc, {"ok": 1})
    receiver.wait_for(lambda c: len(c) == 1)
    time.sleep(0.3)
    text = requests.get(f"{service.url}/actuator/prometheus", timeout=5).text
    assert 'hermod_commands_accepted_total{type="ping"} 1.0' in text
    assert 'hermod_callbacks_delivered_total{type="ping"} 1.0' in text
    assert "hermod_command_accept_seconds_bucket" in text and "hermod_callbacks_retrying 0" in text
    spec = requests.get(f"{service.url}/v3/api-docs", timeout=5).json()
    assert "/command/provision" in spec["paths"] and "/ms/command/{reference}/response" in spec["paths"]
    ui = requests.get(f"{service.url}/swagger-ui/index.html", timeout=5)
    assert ui.status_code == 200 and "swagger-ui-bundle.js" in ui.text and "http" not in ui.text.split("<body>")[1]
    assert requests.get(f"{service.url}/swagger-ui/swagger-ui-bundle.js", timeout=5).status_code == 200


def test_base_path_and_swagger_off(database, receiver, services, tmp_path):
    from helpers import make_home

    dsn = database("V1.1.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, receiver.url,
                     extra={"hermod.base-path": "/hermod/rest", "springdoc": {"swagger-ui": {"enabled": False}}})
    proc = services(home)
    assert proc.command("ping", cmd("ping"), base="").status_code == 404
    r = proc.command("ping", cmd("ping", fmt="json"), base="/hermod/rest")
    assert r.status_code == 202
    ref = r.json()["deviceReference"]
    assert requests.get(f"{proc.url}/hermod/rest/ms/command/{ref}", timeout=5).status_code == 200
    assert requests.get(f"{proc.url}/util/generateclient/x", timeout=5).status_code == 200
    assert requests.get(f"{proc.url}/swagger-ui/index.html", timeout=5).status_code == 404
