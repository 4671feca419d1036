"""The operation playbooks against the stack site.yml deployed, in the order an operator meets
them (pytest runs the tests of this file in order; each builds on the state the previous one
left): backup; a restore refused by its precondition that leaves messaging running and every
compose file as it was; the tables of the running stack wiped and the newest dump restored with
the inventory's defaults alone, every row back; verify; client key rotation; stop/start;
uninstall refused without confirmation, then with it (data kept), then purged."""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from operator_run import backup, playbook  # noqa: E402

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = "/opt/smartid-molecule-restore"
COMPOSE = HOME + "/docker/compose"
COMPONENTS = ("database", "messaging", "traefik")
NETWORK = "smartid-molecule-restore"
DATABASE = "restore-database"
VOLUME = "restore-database-data"
SERVICE = "http://127.0.0.1:31400"
# molecule.yml: the key of idm is derived from this secret; da's is explicit.
KEY_SECRET = b"restore-molecule-kdf-1732"
DA_KEY = "7d1c2b3a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7bb"
# Tables and columns that a restore must bring back exactly. The pending callback's retry
# bookkeeping (attempts, next attempt, lease, last error) moves on while the service runs.
FINGERPRINT = {
    "hermod_command": "*",
    "hermod_device_key": "*",
    "hermod_callback": "id, command_id, client_id, callback_type, body, state, created_at",
    "flyway_schema_history": "*",
}

state = {}


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def psql(sql):
    result = docker("exec", DATABASE, "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "hermod", "-d", "hermod",
                    "-c", sql, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def output(run):
    """Everything the run printed: the default callback writes failed tasks to stderr."""
    return run.stdout + run.stderr


def recap(run):
    """{'ok': n, 'changed': n, 'failed': n, ...} of the one host, from PLAY RECAP."""
    match = re.search(r"restore-molecule\s+:\s+(.*)", run.stdout)
    assert match, run.stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def compose_checksums():
    sums = {}
    for component in COMPONENTS:
        with open("%s/%s/docker-compose.yml" % (COMPOSE, component), "rb") as handle:
            sums[component] = hashlib.sha256(handle.read()).hexdigest()
    return sums


def container(component):
    ids = docker("compose", "--project-directory", "%s/%s" % (COMPOSE, component), "ps", "--all", "-q").stdout.split()
    assert len(ids) == 1, (component, ids)
    return json.loads(docker("inspect", ids[0]).stdout)[0]


def wait_healthy(component, seconds=240):
    deadline = time.monotonic() + seconds
    while True:
        info = container(component)
        health = info["State"].get("Health", {}).get("Status")
        if info["State"]["Running"] and health == "healthy":
            return info
        assert time.monotonic() < deadline, (component, info["State"])
        time.sleep(2)


def readiness():
    with urllib.request.urlopen(SERVICE + "/actuator/health/readiness", timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def fingerprint():
    prints = {}
    for table, columns in FINGERPRINT.items():
        count = psql("SELECT count(*) FROM %s" % table)
        digest = psql("SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM (SELECT %s FROM %s) r"
                      % (columns, table))
        prints[table] = (int(count), digest)
    return prints


def api_key(client_id, key):
    return base64.b64encode(("%s:%s" % (client_id, key)).encode()).decode()


def derived_key(client_id, generation=0):
    message = client_id if generation == 0 else "%s#%d" % (client_id, generation)
    return hmac.new(KEY_SECRET, message.encode(), hashlib.sha256).hexdigest()


def command_status(header):
    """Status of an empty ping command: 401 for an unknown key, 400 for a known one (nothing is made)."""
    req = urllib.request.Request(SERVICE + "/command/ping", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json", "X-Api-Key": header})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_stack_is_healthy_after_deploy():
    for component in COMPONENTS:
        assert wait_healthy(component)["State"]["Health"]["Status"] == "healthy"
    status, body = readiness()
    assert status == 200 and body["status"] == "UP", body
    state["checksums"] = compose_checksums()


def test_backup_dumps_the_running_database():
    made = os.path.join(EPHEMERAL, "restore_data.json")
    if os.path.exists(made):
        os.unlink(made)
    create = subprocess.run([sys.executable, os.path.join(SCENARIO, "..", "upgrade", "create_data.py"),
                             "--service", SERVICE, "--public-url", "https://localhost:31443/ms",
                             "--client", "idm:" + derived_key("idm"),
                             "--src", os.path.join(PROJECT, "images", "messaging", "src"), "--out", made],
                            capture_output=True, text=True, timeout=300)
    assert create.returncode == 0, create.stderr
    with open(made, encoding="utf-8") as handle:
        state["data"] = json.load(handle)

    dump = backup(HOME)

    state["prints"] = fingerprint()
    assert dump.endswith("-schema-1.1.0.dump")
    assert stat.S_IMODE(os.stat(dump).st_mode) == 0o600
    with open(dump, "rb") as handle:
        assert handle.read(5) == b"PGDMP"
    # Three commands (two waiting, one answered), its callback and the device key of alice.
    assert state["prints"]["hermod_command"][0] == 3
    assert state["prints"]["hermod_callback"][0] == 1
    assert state["prints"]["hermod_device_key"][0] == 1
    assert compose_checksums() == state["checksums"]


def test_refused_restore_leaves_messaging_running_and_compose_files_unchanged():
    started = container("messaging")["State"]["StartedAt"]

    run = playbook("restore")

    assert run.returncode != 0
    assert "restore refused, nothing was changed" in output(run), output(run)[-3000:]
    assert re.search(r"database hermod already holds \d+ tables", output(run)), output(run)[-3000:]
    info = container("messaging")
    # Never stopped: the same start, still healthy.
    assert info["State"]["Running"] and info["State"]["StartedAt"] == started
    assert info["State"]["Health"]["Status"] == "healthy"
    assert compose_checksums() == state["checksums"]
    assert fingerprint() == state["prints"]


def test_restore_of_the_newest_dump_into_the_wiped_database_brings_every_row_back():
    tables = psql("SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables WHERE schemaname = 'public'")
    assert "hermod_command" in tables and "flyway_schema_history" in tables
    psql("DROP TABLE %s CASCADE" % tables)
    assert psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"

    # The inventory's defaults and nothing else: the newest dump, messaging stopped meanwhile.
    run = playbook("restore")

    assert run.returncode == 0, run.stdout[-3000:]
    assert fingerprint() == state["prints"]
    ids = state["data"]["waiting"] + [state["data"]["answered"]]
    rows = psql("SELECT id || ' ' || state FROM hermod_command ORDER BY id").splitlines()
    assert sorted(rows) == sorted(["%s pending" % i for i in state["data"]["waiting"]]
                                  + ["%s answered" % state["data"]["answered"]]), (rows, ids)
    wait_healthy("messaging")
    status, body = readiness()
    assert status == 200 and body["status"] == "UP", body
    assert compose_checksums() == state["checksums"]
    # The service works on the restored data: a known key is still known.
    assert command_status(api_key("idm", derived_key("idm"))) == 400


def test_verify_playbook_passes_on_the_restored_stack():
    run = playbook("verify")

    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run)["changed"] == 0
    assert "messaging is healthy; certificates loaded before the banner: Callback-CA.cer" in run.stdout


def test_rotate_client_key_refuses_an_unknown_client_and_an_explicit_key():
    unknown = playbook("rotate_client_key", "-e", "client_id=nobody")
    assert unknown.returncode != 0
    assert "Give -e client_id=<id> of one of messaging_clients (idm, da)" in output(unknown)
    explicit = playbook("rotate_client_key", "-e", "client_id=da")
    assert explicit.returncode != 0
    assert "client da has an explicit key in messaging_clients" in output(explicit)
    assert command_status(api_key("da", DA_KEY)) == 400


def test_rotate_client_key_deploys_a_new_key_and_refuses_the_old_one():
    old = api_key("idm", derived_key("idm"))
    new = api_key("idm", derived_key("idm", 1))
    assert command_status(old) == 400

    run = playbook("rotate_client_key", "-e", "client_id=idm")

    assert run.returncode == 0, run.stdout[-3000:]
    assert command_status(old) == 401
    assert command_status(new) == 400
    # Shown once, in a private file on the controller; never in the output.
    match = re.search(r"SECRET: the new X-Api-Key is in (\S+) on the controller", run.stdout)
    assert match, run.stdout[-3000:]
    path = match.group(1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path, encoding="utf-8") as handle:
        assert "X-Api-Key: %s\n" % new in handle.read()
    os.unlink(path)
    for secret in (new, derived_key("idm", 1), old, derived_key("idm")):
        assert secret not in run.stdout and secret not in run.stderr
    generations = HOME + "/docker/compose/messaging/client-key-generations.json"
    with open(generations, encoding="utf-8") as handle:
        assert json.load(handle) == {"idm": 1}
    assert stat.S_IMODE(os.stat(generations).st_mode) == 0o600
    assert compose_checksums() == state["checksums"]


def test_a_later_deployment_keeps_the_rotated_key_and_changes_nothing():
    run = playbook("site")

    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run)["changed"] == 0, run.stdout[-3000:]
    assert command_status(api_key("idm", derived_key("idm", 1))) == 400
    assert command_status(api_key("idm", derived_key("idm"))) == 401


def test_stop_and_start_keep_containers_files_and_data():
    stop = playbook("stop")

    assert stop.returncode == 0, stop.stdout[-3000:]
    for component in COMPONENTS:
        assert not container(component)["State"]["Running"], component
    assert compose_checksums() == state["checksums"]
    again = playbook("stop")
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]

    start = playbook("start")

    assert start.returncode == 0, start.stdout[-3000:]
    for component in COMPONENTS:
        assert wait_healthy(component)["State"]["Health"]["Status"] == "healthy"
    assert compose_checksums() == state["checksums"]
    assert fingerprint() == state["prints"]
    assert command_status(api_key("idm", derived_key("idm", 1))) == 400


def test_uninstall_without_confirmation_changes_nothing():
    started = container("messaging")["State"]["StartedAt"]

    run = playbook("uninstall")

    assert run.returncode != 0
    assert "Refusing to uninstall Smart ID Messaging from restore-molecule" in output(run)
    assert "-e smartid_uninstall_confirm=restore-molecule" in output(run)
    wrong = playbook("uninstall", "-e", "smartid_uninstall_confirm=another-host")
    assert wrong.returncode != 0
    assert "Nothing was changed" in output(wrong)
    assert container("messaging")["State"]["StartedAt"] == started
    assert compose_checksums() == state["checksums"]


def test_uninstall_keeps_the_data_and_a_deployment_brings_the_same_stack_back():
    run = playbook("uninstall", "-e", "smartid_uninstall_confirm=restore-molecule")

    assert run.returncode == 0, run.stdout[-3000:]
    for component in COMPONENTS:
        ids = docker("compose", "--project-directory", "%s/%s" % (COMPOSE, component), "ps", "--all", "-q").stdout.split()
        assert ids == [], component
    assert docker("network", "inspect", NETWORK, check=False).returncode != 0
    assert docker("volume", "inspect", VOLUME, check=False).returncode == 0
    assert glob.glob(HOME + "/backups/database-hermod-*.dump")

    deploy = playbook("site")

    assert deploy.returncode == 0, deploy.stdout[-3000:]
    wait_healthy("messaging")
    assert fingerprint() == state["prints"]
    assert command_status(api_key("idm", derived_key("idm", 1))) == 400


def test_uninstall_with_purge_removes_data_and_smartid_home():
    run = playbook("uninstall", "-e", "smartid_uninstall_confirm=restore-molecule", "-e", "purge=true")

    assert run.returncode == 0, run.stdout[-3000:]
    assert docker("volume", "inspect", VOLUME, check=False).returncode != 0
    assert docker("network", "inspect", NETWORK, check=False).returncode != 0
    # SMARTIDHOME is the instance's mount point here: emptied, not removed.
    assert not os.path.exists(HOME + "/docker") and not os.path.exists(HOME + "/backups")
    for component in COMPONENTS:
        project = "label=com.docker.compose.project=restore-" + component
        assert docker("ps", "-a", "-q", "--filter", project).stdout.split() == [], component
