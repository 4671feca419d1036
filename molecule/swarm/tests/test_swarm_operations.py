"""The operation playbooks on the swarm stack (smartid_orchestrator: swarm), as an operator runs
them, after test_swarm.py (pytest collects this file after it and runs its tests in order; each
builds on the state the previous one left): a backup taken from the manager while everything
runs; a restore refused by its precondition that leaves every replica running; the wiped database
restored from the newest dump with messaging scaled to 0 meanwhile and back to its replicas
afterwards, every row back; stop and start (messaging and the database scaled to 0 and back,
Traefik's stack removed and deployed again from its stack file); verify; uninstall refused without
confirmation, then done: the stacks go, the data volume, the secrets and the dumps stay, and the
engine is still a swarm."""
import base64
import glob
import json
import os
import re
import secrets
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from operator_run import backup, playbook  # noqa: E402

HOST = "hermod-swarm-test-instance"
HOME = "/opt/smartid-swarm-test"
PREFIX = "hermod-swarm-test-"
NETWORK = "hermod-swarm-test"
STACKS = [PREFIX + s for s in ("database", "messaging", "traefik")]
MESSAGING = PREFIX + "messaging_messaging"
DATABASE = PREFIX + "database_database"
TRAEFIK = PREFIX + "traefik_traefik"
VOLUME = PREFIX + "database-data"
REPLICAS = 3
IDM_KEY = "5e2d3c4b6a7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819"
PUBLIC = "https://localhost:32443"
CA = HOME + "/docker/compose/traefik/ca/smartid-local-ca.crt"
# Rows a restore must bring back exactly; the callbacks' retry bookkeeping moves on while the
# service runs, so only what a callback is.
FINGERPRINT = {
    "hermod_command": "*",
    "hermod_device_key": "*",
    "hermod_callback": "id, command_id, client_id, callback_type, body, state, created_at",
    "flyway_schema_history": "*",
    "ops_marker": "*",
}
ACTIVE = re.compile(r"^(New|Pending|Assigned|Accepted|Preparing|Ready|Starting|Running)\b")

state = {}


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def recap(run):
    match = re.search(re.escape(HOST) + r"\s+:\s+(.*)", run.stdout)
    assert match, run.output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def database_container():
    ids = docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + DATABASE).stdout.split()
    assert len(ids) == 1, ids
    return ids[0]


def psql(sql):
    result = docker("exec", database_container(), "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                    "-U", "hermod", "-d", "hermod", "-c", sql, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def fingerprint():
    prints = {}
    for table, columns in FINGERPRINT.items():
        count = psql("SELECT count(*) FROM %s" % table)
        digest = psql("SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM (SELECT %s FROM %s) r"
                      % (columns, table))
        prints[table] = (int(count), digest)
    return prints


def replicas_spec(service):
    return int(docker("service", "inspect", service, "--format", "{{.Spec.Mode.Replicated.Replicas}}").stdout)


def running_tasks(service):
    """IDs of the service's tasks that swarm reports Running (for messaging and the database:
    healthy), and of those still on their way up or down."""
    out = docker("service", "ps", service, "--no-trunc", "--format", "{{.ID}} {{.CurrentState}}").stdout
    tasks = [line.split(" ", 1) for line in out.splitlines()]
    return ({tid for tid, current in tasks if current.startswith("Running")},
            {tid for tid, current in tasks if ACTIVE.match(current)})


def stack_containers():
    out = docker("ps", "-a", "--filter", "label=com.docker.stack.namespace",
                 "--format", '{{.Label "com.docker.stack.namespace"}}').stdout
    return [name for name in out.splitlines() if name in STACKS]


def command_status(key=IDM_KEY, seconds=60):
    """Status of an empty ping command through Traefik: 400 for a known key (nothing is made).
    Retried while Traefik has no healthy replica yet (its swarm provider polls every 5 s)."""
    ctx = ssl.create_default_context(cafile=CA)
    header = base64.b64encode(("idm:" + key).encode()).decode()
    deadline = time.monotonic() + seconds
    while True:
        req = urllib.request.Request(PUBLIC + "/command/ping", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", "X-Api-Key": header})
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
                status = resp.status
        except urllib.error.HTTPError as err:
            status = err.code
        except OSError as err:
            status = repr(err)
        if status in (400, 401) or time.monotonic() > deadline:
            return status
        time.sleep(1)


def test_backup_dumps_the_running_database_from_the_manager():
    state["token"] = secrets.token_hex(16)
    psql("CREATE TABLE IF NOT EXISTS ops_marker (token text PRIMARY KEY, at timestamptz DEFAULT now())")
    psql("INSERT INTO ops_marker (token) VALUES ('%s')" % state["token"])
    state["replicas"], _ = running_tasks(MESSAGING)
    assert len(state["replicas"]) == REPLICAS

    dump = backup(HOME)

    state["prints"] = fingerprint()
    assert dump.endswith("-schema-1.1.0.dump"), dump
    assert stat.S_IMODE(os.stat(dump).st_mode) == 0o600
    with open(dump, "rb") as handle:
        assert handle.read(5) == b"PGDMP"
    assert state["prints"]["ops_marker"][0] == 1
    assert state["prints"]["flyway_schema_history"][0] > 0
    # The dump was taken with every replica serving: none was stopped or replaced.
    assert running_tasks(MESSAGING)[0] == state["replicas"]


def test_refused_restore_leaves_every_replica_running():
    run = playbook("restore")

    assert run.returncode != 0
    assert "restore refused, nothing was changed" in run.output, run.output[-3000:]
    assert re.search(r"database hermod already holds \d+ tables", run.output), run.output[-3000:]
    assert "Ensure the messaging service is scaled to 0" not in run.stdout
    assert replicas_spec(MESSAGING) == REPLICAS
    assert running_tasks(MESSAGING)[0] == state["replicas"]
    assert fingerprint() == state["prints"]


def test_restore_scales_messaging_to_0_and_back_and_brings_every_row_back():
    psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    assert psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"

    # The inventory's defaults and nothing else: the newest dump, messaging at 0 meanwhile.
    run = playbook("restore")

    assert run.returncode == 0, run.output[-3000:]
    out = run.stdout
    scaled = out.index("TASK [smartid.hermod.messaging : Ensure the messaging service is scaled to 0 and every replica has exited]")
    restored = out.index("TASK [smartid.hermod.database : Ensure the database holds the dump")
    back = out.index("TASK [smartid.hermod.messaging : Ensure the messaging service runs messaging_replicas replicas]")
    assert scaled < restored < back, "messaging was not at 0 while the dump was restored"
    assert fingerprint() == state["prints"]
    assert psql("SELECT token FROM ops_marker") == state["token"]
    assert replicas_spec(MESSAGING) == REPLICAS
    running, active = running_tasks(MESSAGING)
    # Every replica is a new task: the old ones were stopped before the restore, not left writing.
    assert len(running) == REPLICAS and running == active and not running & state["replicas"], (running, active)
    assert command_status() == 400


def test_stop_scales_to_0_and_start_brings_the_stack_back():
    stop = playbook("stop")

    assert stop.returncode == 0, stop.output[-3000:]
    assert replicas_spec(MESSAGING) == 0 and replicas_spec(DATABASE) == 0
    assert running_tasks(MESSAGING)[1] == set() and running_tasks(DATABASE)[1] == set()
    assert docker("service", "inspect", TRAEFIK, check=False).returncode != 0
    assert os.path.exists(HOME + "/docker/compose/traefik/traefik-stack.yml")
    again = playbook("stop")
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.output[-3000:]

    start = playbook("start")

    assert start.returncode == 0, start.output[-3000:]
    assert replicas_spec(MESSAGING) == REPLICAS and replicas_spec(DATABASE) == 1
    assert len(running_tasks(MESSAGING)[0]) == REPLICAS and len(running_tasks(DATABASE)[0]) == 1
    assert len(running_tasks(TRAEFIK)[0]) == 1
    # The same data on the same volume, the service reached through Traefik again.
    assert fingerprint() == state["prints"]
    assert command_status() == 400


def test_verify_passes_on_the_restarted_stack():
    run = playbook("verify")

    assert run.returncode == 0, run.output[-3000:]
    assert recap(run)["changed"] == 0
    assert "TASK [smartid.hermod.database : Check that the schema is at database_schema_version]" in run.stdout
    # The start-up check of every replica: each one's alias lines came before its banner.
    assert "TASK [smartid.hermod.messaging : Ensure every replica runs and logged every alias line before its banner]" in run.stdout


def test_uninstall_without_confirmation_changes_nothing():
    running = running_tasks(MESSAGING)[0]

    run = playbook("uninstall")

    assert run.returncode != 0
    assert "-e smartid_uninstall_confirm=%s" % HOST in run.output, run.output[-3000:]
    assert "Nothing was changed" in run.output
    assert running_tasks(MESSAGING)[0] == running


def test_uninstall_removes_the_stacks_and_keeps_data_secrets_dumps_and_the_swarm():
    dumps = sorted(glob.glob(HOME + "/backups/database-hermod-*.dump"))

    run = playbook("uninstall", "-e", "smartid_uninstall_confirm=" + HOST)

    assert run.returncode == 0, run.output[-3000:]
    listed = docker("stack", "ls", "--format", "{{.Name}}").stdout.split()
    assert not set(listed) & set(STACKS), listed
    assert stack_containers() == []
    assert docker("network", "inspect", NETWORK, check=False).returncode != 0
    # Data kept: the volume, the password and configuration secrets, the dumps.
    assert docker("volume", "inspect", VOLUME, check=False).returncode == 0
    secret_names = docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert any(n.startswith(PREFIX + "database-password") for n in secret_names), secret_names
    assert any(n.startswith(PREFIX + "messaging-conf") for n in secret_names), secret_names
    assert sorted(glob.glob(HOME + "/backups/database-hermod-*.dump")) == dumps
    # The swarm the docker role formed stays, with the node's labels.
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "active"
    labels = json.loads(docker("node", "inspect", "self", "--format", "{{json .Spec.Labels}}").stdout)
    assert labels.get("smartid.database") == "true", labels


def test_a_compose_run_on_an_engine_still_in_the_swarm_keeps_it_running():
    """The host is still a swarm member after uninstall. `make engine` on this machine (the
    docker role with the local inventory, which manages daemon.json) must not turn live-restore
    back on there: the engine would refuse to start again, taking every container with it."""
    project = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
    before = open("/etc/docker/daemon.json").read()
    run = playbook("docker", inventory=os.path.join(project, "inventories", "local"),
                   config=os.path.join(project, "ansible.cfg"))
    assert run.returncode == 0, run.output[-3000:]
    assert "still a swarm member (/var/lib/docker/swarm/docker-state.json)" in run.output, run.output[-3000:]
    assert "Changed: /etc/docker/daemon.json" not in run.output
    assert open("/etc/docker/daemon.json").read() == before
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.LiveRestoreEnabled}}").stdout.split() == ["active", "false"]
