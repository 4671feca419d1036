"""Messaging on the swarm against an external PostgreSQL over TLS verify-full, the managed
database case (database_external). A second messaging stack on the scenario's swarm, on an
overlay network of its own, reaches a PostgreSQL with ssl=on and a certificate for pg-tls.test
from a test CA (tests/playbook/pg_tls.py, shared with the compose end-to-end test): the schema
comes through the database role's client container, the server's CA is a swarm config where
the JDBC URL's sslrootcert points, every connection the server sees (one or more from each
replica) is TLS, and another CA is refused before the stack changes."""
import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(PROJECT, "tests", "playbook"))
from pg_tls import HOST, docker, network_connections, server_sql, start_server  # noqa: E402

SCENARIO_PREFIX = "hermod-swarm-test-"
# Under the scenario's SMARTIDHOME: the instance sees it at the same path, cleanup empties it.
HOME = "/opt/smartid-swarm-test/external-database"
PREFIX = "hermod-swarm-tls-"
NETWORK = "hermod-swarm-tls"
STACK = PREFIX + "messaging"
SERVICE = STACK + "_messaging"
SERVER = PREFIX + "pgtls"
REPLICAS = 2
CA_TARGET = "/home/docker/certificates/database-ca.pem"


def service_spec():
    return json.loads(docker("service", "inspect", SERVICE, "--format", "{{json .}}").stdout)


def running_replicas():
    """{container id: its address on NETWORK} of the stack's running replicas."""
    ids = docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + SERVICE).stdout.split()
    found = {}
    for cid in ids:
        nets = json.loads(docker("inspect", cid, "--format", "{{json .NetworkSettings.Networks}}").stdout)
        found[cid] = nets[NETWORK]["IPAddress"]
    return found


def wait_until(what, check, timeout=120):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(2)


@pytest.fixture
def external_server(tmp_path):
    images = {name: docker("service", "inspect", SCENARIO_PREFIX + name + "_" + name, "--format",
                           "{{.Spec.TaskTemplate.ContainerSpec.Image}}").stdout.strip()
              for name in ("database", "messaging")}
    assert all(images.values()), images
    made = docker("network", "create", "--driver", "overlay", "--attachable", NETWORK)
    assert made.returncode == 0, made.stderr
    password = "pgtls-" + secrets.token_hex(12)
    try:
        provider_ca = start_server(SERVER, NETWORK, images["database"], password, tmp_path)
        yield {"images": images, "password": password, "provider_ca": provider_ca}
    finally:
        docker("stack", "rm", STACK)
        wait_until("the stack's containers are gone", lambda: docker(
            "ps", "-aq", "--filter", "label=com.docker.stack.namespace=" + STACK).stdout.strip() == "")
        docker("rm", "-f", "-v", SERVER)
        for kind in ("secret", "config"):
            names = docker(kind, "ls", "--format", "{{.Name}}").stdout.split()
            for name in names:
                if name.startswith(PREFIX):
                    docker(kind, "rm", name)
        wait_until("the network is removed", lambda: docker("network", "rm", NETWORK).returncode == 0
                   or NETWORK not in docker("network", "ls", "--format", "{{.Name}}").stdout.split())


def deploy(tmp_path, settings):
    vars_file = tmp_path / "external-database-vars.yml"
    vars_file.write_text(json.dumps(settings))
    bindir = os.path.dirname(sys.executable)
    return subprocess.run([os.path.join(bindir, "ansible-playbook"), "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                           os.path.join(PROJECT, "molecule", "swarm", "external_database.yml"),
                           "-e", "@" + str(vars_file)],
                          capture_output=True, text=True, check=False, timeout=900,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                                   PATH=bindir + os.pathsep + os.environ.get("PATH", "")))


def test_replicas_reach_an_external_database_only_over_tls(external_server, tmp_path):
    settings = {
        "smartid_home": HOME,
        "smartid_network_name": NETWORK,
        "smartid_compose_project_prefix": PREFIX,
        "database_external": True,
        "database_host": HOST,
        "database_external_ca_file": str(tmp_path / "provider-ca.pem"),
        "database_password": external_server["password"],
        "database_image": external_server["images"]["database"],
        "messaging_image": external_server["images"]["messaging"],
        "messaging_replicas": REPLICAS,
        # The scenario's Traefik must not route to this stack: no labels for its swarm provider.
        "messaging_swarm_service_labels": {},
    }
    first = deploy(tmp_path, settings)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-6000:]
    assert external_server["password"] not in output
    # The per-replica start-up check (alias lines before the banner) ran and passed.
    assert "Report the certificates each replica loaded" in output, output[-3000:]

    # The provider's CA is a swarm config, mounted where the JDBC URL's sslrootcert points.
    spec = service_spec()
    container = spec["Spec"]["TaskTemplate"]["ContainerSpec"]
    configs = {c["File"]["Name"]: c["ConfigName"] for c in container.get("Configs", [])}
    assert re.fullmatch(PREFIX + r"messaging-database-ca_v[0-9]+", configs.get(CA_TARGET, "")), configs
    data = json.loads(docker("config", "inspect", configs[CA_TARGET], "--format", "{{json .Spec.Data}}").stdout)
    assert base64.b64decode(data) == external_server["provider_ca"]
    assert spec["Spec"]["Mode"]["Replicated"]["Replicas"] == REPLICAS

    wait_until("%d replicas running" % REPLICAS, lambda: len(running_replicas()) == REPLICAS)
    replicas = running_replicas()

    # The schema came through the client container; each replica holds connections, all of them TLS.
    assert server_sql(SERVER, "SELECT max(version) FROM flyway_schema_history").stdout.strip() == "1.1.0"
    seen = network_connections(SERVER)
    assert seen and all(ssl for _, ssl in seen), seen
    assert set(replicas.values()) <= {addr for addr, _ in seen}, (replicas, seen)

    # Another CA: the migration client refuses the server before the stack is touched.
    version = spec["Version"]["Index"]
    wrong = deploy(tmp_path, dict(settings, database_external_ca_file=str(tmp_path / "other-ca.pem")))
    output = wrong.stdout + wrong.stderr
    assert wrong.returncode != 0
    assert "certificate verify failed" in output, output[-4000:]
    assert external_server["password"] not in output
    assert service_spec()["Version"]["Index"] == version
    assert set(running_replicas()) == set(replicas)
