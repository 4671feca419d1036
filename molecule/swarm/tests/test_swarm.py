"""The stack on a single-node swarm (smartid_orchestrator: swarm): three messaging replicas
behind Traefik on a host-mode port, PostgreSQL pinned to the labelled node, the configuration
in swarm secrets. Complete lifecycles through Traefik reach every replica, each one's own
metrics show it, and every accepted command comes back as exactly one callback."""
import asyncio
import base64
import json
import os
import re
import ssl
import subprocess
import sys
import time

import pytest

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
HOME = "/opt/smartid-swarm-test"
COMPOSE = HOME + "/docker/compose"
PREFIX = "hermod-swarm-test-"
NETWORK = "hermod-swarm-test"
MESSAGING = PREFIX + "messaging_messaging"
RECEIVER = PREFIX + "callbacks"
IDM_KEY = "5e2d3c4b6a7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819"
PUBLIC = "https://localhost:32443"
REPLICAS = 3
LIFECYCLES = 30

sys.path.insert(0, os.path.join(PROJECT, "images", "messaging", "src"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from callback_receiver import callback_receiver_records, callback_receiver_running, callback_receiver_stats  # noqa: E402


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def replicas():
    """Running messaging containers on this node: {task name: container id}."""
    out = docker("ps", "--filter", "label=com.docker.swarm.service.name=" + MESSAGING,
                 "--format", '{{.ID}} {{.Label "com.docker.swarm.task.name"}}').stdout
    return {name: cid for cid, name in (line.split() for line in out.splitlines())}


def metrics(cid):
    """The replica's own counters, asked inside its container (the replicas publish no port)."""
    probe = ("import urllib.request; print(urllib.request.urlopen("
             "'http://127.0.0.1:20400/actuator/prometheus', timeout=5).read().decode())")
    text = docker("exec", cid, "python3", "-c", probe).stdout
    found = {}
    for name in ("hermod_commands_accepted_total", "hermod_device_responses_total"):
        found[name] = sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? ([0-9.e+]+)$" % name, text, re.M))
    return found


def test_the_engine_is_a_swarm_with_the_node_labelled():
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.LiveRestoreEnabled}}").stdout.split() == ["active", "false"]
    labels = json.loads(docker("node", "inspect", "self", "--format", "{{json .Spec.Labels}}").stdout)
    assert labels.get("smartid.edge") == "true" and labels.get("smartid.database") == "true", labels


def test_every_replica_runs_with_dnsrr_and_start_first_updates():
    spec = json.loads(docker("service", "inspect", MESSAGING, "--format", "{{json .Spec}}").stdout)
    assert spec["Mode"]["Replicated"]["Replicas"] == REPLICAS
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][0] == "CMD"
    states = docker("service", "ps", MESSAGING, "--filter", "desired-state=running", "--format", "{{.CurrentState}}").stdout
    assert [s.split()[0] for s in states.splitlines()] == ["Running"] * REPLICAS, states
    assert len(replicas()) == REPLICAS


def test_the_configuration_is_a_swarm_secret_not_a_file():
    spec = json.loads(docker("service", "inspect", MESSAGING, "--format", "{{json .Spec.TaskTemplate.ContainerSpec}}").stdout)
    targets = {s["File"]["Name"]: s["SecretName"] for s in spec.get("Secrets", [])}
    assert re.fullmatch(PREFIX + r"messaging-conf_v[0-9]+", targets.get("/home/docker/config/hermod-conf.yml", "")), targets
    # Neither the client key nor the database password is anywhere under SMARTIDHOME.
    found = subprocess.run(["grep", "-rlE", IDM_KEY + "|molecule-swarm-db-1414|molecule-swarm-pw", HOME],
                           capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == "", found.stdout


def test_the_database_is_pinned_to_the_labelled_node_with_its_volume():
    spec = json.loads(docker("service", "inspect", PREFIX + "database_database", "--format", "{{json .Spec}}").stdout)
    assert "node.labels.smartid.database == true" in spec["TaskTemplate"]["Placement"]["Constraints"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["Source"] == PREFIX + "database-data"
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/database_password" in spec["TaskTemplate"]["ContainerSpec"]["Env"]


def test_traefik_has_no_docker_socket_and_the_gate_refuses_writes():
    spec = json.loads(docker("service", "inspect", PREFIX + "traefik_traefik", "--format", "{{json .Spec}}").stdout)
    mounts = [m["Source"] for m in spec["TaskTemplate"]["ContainerSpec"].get("Mounts", [])]
    assert not any("docker.sock" in m for m in mounts), mounts
    assert [p["PublishMode"] for p in spec["EndpointSpec"]["Ports"]] == ["host", "host"]
    # The gate runs in the bundle's base image, not in Traefik's (an upstream one has no python3).
    gate = json.loads(docker("service", "inspect", PREFIX + "traefik_docker-api", "--format", "{{json .Spec}}").stdout)
    gate_image = gate["TaskTemplate"]["ContainerSpec"]["Image"]
    assert gate_image.split("@")[0] == "smartid/base:bookworm", gate_image
    assert gate["TaskTemplate"]["ContainerSpec"]["ReadOnly"] is True
    assert gate["TaskTemplate"]["ContainerSpec"]["CapabilityDrop"] == ["ALL"]
    traefik = docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + PREFIX + "traefik_traefik").stdout.split()[0]
    ask = ("import http.client,sys; c=http.client.HTTPConnection('docker-api',2375,timeout=5); "
           "c.request(sys.argv[1],sys.argv[2]); print(c.getresponse().status)")

    # Asked from inside Traefik's own network namespace, by a client in the base image: nothing
    # here needs python3 in Traefik's image.
    def status(method, path):
        return docker("run", "--rm", "--network", "container:" + traefik, gate_image,
                      "python3", "-c", ask, method, path).stdout.strip()

    assert status("GET", "/v1.41/services") == "200"
    assert status("POST", "/v1.41/containers/create") == "403"
    assert status("GET", "/v1.41/secrets") == "403"


@pytest.fixture
def callback_receiver():
    image = docker("service", "inspect", MESSAGING, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}").stdout.strip()
    with callback_receiver_running(RECEIVER, NETWORK, image, "idm-callbacks:molecule-swarm-pw",
                                   os.path.join(EPHEMERAL, "pki")):
        yield


def test_lifecycles_through_traefik_reach_every_replica(callback_receiver):
    import aiohttp  # noqa: PLC0415
    from hermod_ref.tools.devicesim import Device  # noqa: PLC0415

    before = {name: metrics(cid) for name, cid in replicas().items()}
    api_key = base64.b64encode(b"idm:" + IDM_KEY.encode()).decode()
    ctx = ssl.create_default_context(cafile=COMPOSE + "/traefik/ca/smartid-local-ca.crt")

    async def lifecycles():
        # A connection per lifecycle, as separate clients and phones do: Traefik picks a replica per request.
        message_ids = []
        for n in range(LIFECYCLES):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, force_close=True)) as session:
                body = {"commandHeader": {"lifespan": 120, "timeout": 60},
                        "provCommand": {"nonce": "swarm-nonce-%04d" % n, "userid": "alice", "responseformat": "jws",
                                        "profile": {"keys": [{"type": "EC", "curve": "P-256"}]}}}
                async with session.post(PUBLIC + "/command/provision", json=body, headers={"X-Api-Key": api_key}) as r:
                    assert r.status == 202, await r.text()
                    accepted = await r.json()
                assert await Device(session).handle(accepted["deviceUrl"]) == 202
                message_ids.append(accepted["messageId"])
        return message_ids

    message_ids = asyncio.run(lifecycles())

    deadline = time.monotonic() + 90
    stats = None
    while time.monotonic() < deadline:
        stats = callback_receiver_stats(RECEIVER)
        if stats and stats.get("unique", 0) >= LIFECYCLES:
            break
        time.sleep(1)
    assert stats and stats.get("unique") == LIFECYCLES and stats.get("unauthorized", 0) == 0, stats
    records = callback_receiver_records(RECEIVER)
    # At-least-once delivery: a retried callback carries the same idempotency key; each command is answered once.
    assert sorted({r["body"]["messageId"] for r in records}) == sorted(message_ids)
    assert all(r["body"]["status"] == "answered" for r in records)

    after = {name: metrics(cid) for name, cid in replicas().items()}
    served = {name: {k: after[name][k] - before.get(name, {}).get(k, 0) for k in after[name]} for name in after}
    assert len(served) == REPLICAS
    for name, counts in served.items():
        assert counts["hermod_commands_accepted_total"] > 0 or counts["hermod_device_responses_total"] > 0, served
    assert sum(c["hermod_commands_accepted_total"] for c in served.values()) == LIFECYCLES, served
