"""The whole stack as deployed by site.yml: healthy components, the mission's log check, TLS
through Traefik, and one complete lifecycle (command -> device -> signed response -> HTTPS
callback with basic auth, trusted through cacerts/)."""
import asyncio
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
HOME = "/opt/smartid-molecule"
COMPOSE = HOME + "/docker/compose"
NETWORK = "smartid-molecule"
RECEIVER = "molecule-callbacks"
IDM_KEY = "4f1c2b3a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
PUBLIC = "https://localhost:28443"

sys.path.insert(0, os.path.join(PROJECT, "images", "messaging", "src"))
# The callback receiver is shared with the other scenarios' tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from engine_health import settled_health  # noqa: E402
from callback_receiver import (  # noqa: E402
    callback_receiver_records,
    callback_receiver_running,
    callback_receiver_wait_for_callback,
)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def traefik_ca():
    return COMPOSE + "/traefik/ca/smartid-local-ca.crt"


def tls_context():
    return ssl.create_default_context(cafile=traefik_ca())


def request(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=tls_context(), timeout=15) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


@pytest.mark.parametrize("component", ["database", "messaging", "traefik"])
def test_component_runs_healthy_and_compose_works_by_hand(host, component):
    def rows():
        ps = host.run("cd %s/%s && docker compose ps --format json" % (COMPOSE, component))
        assert ps.rc == 0, ps.stderr
        found = [json.loads(line) for line in ps.stdout.splitlines() if line.strip()]
        assert found, "docker compose ps in the %s folder lists nothing" % component
        return found

    assert all(row["State"] == "running" for row in rows()), rows()
    # Every component has a health check: once the engine's verdict has settled, anything but
    # "healthy" (unhealthy, none, still starting) fails.
    worst = settled_health(lambda: next((r.get("Health") or "none" for r in rows() if r.get("Health") != "healthy"),
                                        "healthy"))
    assert worst == "healthy", rows()


def test_messaging_readiness_reports_up_with_the_database():
    ids = docker("compose", "--project-directory", COMPOSE + "/messaging", "ps", "-q").stdout.split()
    assert len(ids) == 1, ids
    # Asked inside the container: the port is not published in this scenario.
    probe = ("import json, urllib.request; r = urllib.request.urlopen("
             "'http://127.0.0.1:20400/actuator/health/readiness', timeout=10); print(r.status, r.read().decode())")
    result = docker("exec", ids[0], "python3", "-c", probe, check=False)
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split(" ", 1)
    assert status == "200"
    assert json.loads(body)["status"] == "UP", body


def test_alias_line_for_the_callback_ca_comes_before_the_banner(host):
    # Input Callback-CA.pem: written as Callback-CA.cer, logged with the lower-case alias.
    cer = host.file(COMPOSE + "/messaging/cacerts/Callback-CA.cer")
    assert cer.exists and cer.mode == 0o644
    logs = docker("compose", "--project-directory", COMPOSE + "/messaging", "logs", "--no-log-prefix").stdout.splitlines()
    alias = [i for i, line in enumerate(logs) if "INFO: Adding certificate Callback-CA.cer using alias callback-ca" in line]
    banner = [i for i, line in enumerate(logs) if line.lstrip().startswith("::") and line.rstrip().endswith(")")]
    assert alias and banner, logs[:40]
    assert alias[0] < banner[0]


def test_https_with_hsts_and_http_redirect():
    status, headers, _ = request("GET", PUBLIC + "/ms/command/not-a-reference")
    assert status == 404
    assert headers["Strict-Transport-Security"].startswith("max-age=63072000")
    conn = http.client.HTTPConnection("localhost", 28080, timeout=10)
    conn.request("GET", "/ms")
    redirect = conn.getresponse()
    assert redirect.status in (301, 308)
    assert redirect.getheader("Location").startswith("https://localhost")


def test_traefik_bounds_the_dial_to_the_backend():
    # The lifecycle tests through Traefik show it accepted this file: a value it cannot parse
    # drops the whole file, and with it the messaging routes.
    import yaml
    dynamic = yaml.safe_load(open(COMPOSE + "/traefik/config/dynamic/http.yml", encoding="utf-8"))
    transport = dynamic["http"]["serversTransports"]["messaging"]
    assert transport["forwardingTimeouts"] == {"dialTimeout": "3s"}, transport
    assert transport["maxIdleConnsPerHost"] == 200, transport


def test_command_without_key_is_refused():
    status, _, _ = request("POST", PUBLIC + "/command/ping", {"pingCommand": {"nonce": "n" * 16, "userid": "u"}})
    assert status == 401


@pytest.fixture
def callback_receiver():
    image = docker("inspect", "--format", "{{.Config.Image}}",
                   docker("compose", "--project-directory", COMPOSE + "/messaging", "ps", "-q").stdout.split()[0]).stdout.strip()
    # The credentials of the client `idm` in molecule.yml (callback_basic_auth).
    with callback_receiver_running(RECEIVER, NETWORK, image, "idm-callbacks:molecule-callback-pw",
                                   os.path.join(EPHEMERAL, "pki")):
        yield


def test_complete_lifecycle_through_traefik(callback_receiver):
    import aiohttp  # noqa: PLC0415  (the controller venv has it; imported late for the path above)
    from hermod_ref.tools.devicesim import Device  # noqa: PLC0415

    api_key = base64.b64encode(b"idm:" + IDM_KEY.encode()).decode()
    body = {"commandHeader": {"lifespan": 120, "timeout": 60},
            "provCommand": {"nonce": "molecule-nonce-0001", "userid": "alice", "responseformat": "jws",
                            "profile": {"keys": [{"type": "EC", "curve": "P-256"}]}}}
    status, _, raw = request("POST", PUBLIC + "/command/provision", body, {"X-Api-Key": api_key})
    assert status == 202, raw
    accepted = json.loads(raw)
    assert accepted["deviceUrl"].startswith(PUBLIC + "/ms/command/")

    async def play_device():
        connector = aiohttp.TCPConnector(ssl=tls_context())
        async with aiohttp.ClientSession(connector=connector) as session:
            return await Device(session).handle(accepted["deviceUrl"])

    assert asyncio.run(play_device()) == 202

    stats = callback_receiver_wait_for_callback(RECEIVER, timeout=60)
    assert stats and stats.get("unique", 0) == 1, stats
    # The receiver takes only idm's basic-auth pair: the callback went to the client that sent the command.
    assert stats.get("unauthorized", 0) == 0, stats

    records = callback_receiver_records(RECEIVER)
    assert len(records) == 1, records
    record = records[0]
    assert record["type"] == "provision", record
    assert record["idempotencyKey"], record
    callback = record["body"]
    assert callback["messageId"] == accepted["messageId"], callback
    assert callback["type"] == "provision"
    assert callback["status"] == "answered"
    assert callback["nonce"] == "molecule-nonce-0001"
    assert callback["userid"] == "alice"
    assert callback["responseformat"] == "jws"
    # The result: the device's JWS over the command's nonce, and the key it registered.
    parts = callback["response"].split(".")
    assert len(parts) == 3, callback["response"]
    payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    assert payload["nonce"] == "molecule-nonce-0001", payload
    assert callback["deviceKey"]["kty"] == "EC" and callback["deviceKey"]["crv"] == "P-256", callback
    # The service marks the callback delivered once the receiver answered.
    deadline = time.monotonic() + 30
    while True:
        row = docker("exec", "molecule-database", "psql", "-X", "-At", "-U", "hermod", "-d", "hermod", "-c",
                     "SELECT client_id || ' ' || callback_type || ' ' || state FROM hermod_callback"
                     " WHERE command_id = '%s'" % accepted["messageId"]).stdout.strip()
        if row.endswith("delivered") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert row == "idm provision delivered", row
