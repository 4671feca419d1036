"""After converge: the stack deployed at release 1.0.0 / schema 1.0.0 with data (prepare.yml)
was upgraded to release 1.1.0 / schema 1.1.0. Schema history, a pre-upgrade dump, the data,
a healthy 1.1.0 service, and the callback that was pending since 1.0.0 delivered once the
receiver runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

# The callback receiver is shared with the other scenarios' tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from callback_receiver import callback_receiver_running, callback_receiver_wait_for_callback  # noqa: E402
from engine_health import settled_health  # noqa: E402

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
HOME = "/opt/smartid-upgrade"
COMPOSE = HOME + "/docker/compose"
NETWORK = "smartid-upgrade"
DATABASE = "upgrade-database"
RECEIVER = "upgrade-callbacks"
SERVICE = "http://127.0.0.1:29400"


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def psql(sql):
    return docker("exec", DATABASE, "psql", "-X", "-At", "-U", "hermod", "-d", "hermod", "-c", sql).stdout.strip()


@pytest.fixture(scope="module")
def data():
    with open(os.path.join(EPHEMERAL, "upgrade_data.json"), encoding="utf-8") as made:
        return json.load(made)


def messaging_container():
    ids = docker("compose", "--project-directory", COMPOSE + "/messaging", "ps", "-q").stdout.split()
    assert len(ids) == 1, ids
    return json.loads(docker("inspect", ids[0]).stdout)[0]


def test_history_shows_base_install_then_incremental_upgrade():
    rows = psql("SELECT installed_rank || ' ' || version || ' ' || script || ' ' || success"
                " FROM flyway_schema_history ORDER BY installed_rank").splitlines()
    assert rows == [
        "1 1.0.0 V1.0.0__base_version.sql true",
        "2 1.1.0 V1.1.0__callback_attempts.sql true",
    ]


def test_one_dump_of_the_1_0_0_database_was_taken(host):
    dumps = host.run("ls %s/backups", HOME).stdout.split()
    pre = [d for d in dumps if d.startswith("database-hermod-") and d.endswith("-schema-1.0.0.dump")]
    assert len(pre) == 1, dumps
    dump = host.file("%s/backups/%s" % (HOME, pre[0]))
    assert dump.mode == 0o600 and dump.size > 1000
    assert host.run("head -c 5 %s", dump.path).stdout == "PGDMP"


def test_commands_accepted_at_1_0_0_survive(data):
    ids = ", ".join("'%s'" % i for i in data["waiting"] + [data["answered"]])
    rows = psql("SELECT id || ' ' || state FROM hermod_command WHERE id IN (%s) ORDER BY id" % ids).splitlines()
    expected = sorted(["%s pending" % i for i in data["waiting"]] + ["%s answered" % data["answered"]])
    assert sorted(rows) == expected
    assert psql("SELECT count(*) FROM hermod_callback WHERE command_id = '%s'" % data["answered"]) == "1"


def test_messaging_container_runs_the_1_1_0_image_and_is_healthy():
    info = messaging_container()
    assert "HERMOD_RELEASE=1.1.0" in info["Config"]["Env"]
    assert settled_health(lambda: messaging_container()["State"]["Health"]["Status"]) == "healthy"
    assert settled_health(lambda: docker("inspect", "--format", "{{.State.Health.Status}}",
                                         DATABASE).stdout.strip()) == "healthy"


def test_service_reports_release_1_1_0():
    with urllib.request.urlopen(SERVICE + "/actuator/health/readiness", timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(SERVICE + "/v3/api-docs", timeout=10) as resp:
        assert json.loads(resp.read())["info"]["version"] == "1.1.0"
    logs = docker("compose", "--project-directory", COMPOSE + "/messaging", "logs", "--no-log-prefix").stdout
    assert "(v1.1.0)" in logs


@pytest.fixture
def callback_receiver():
    image = messaging_container()["Config"]["Image"]
    # The credentials of the client `idm` in molecule.yml (callback_basic_auth).
    with callback_receiver_running(RECEIVER, NETWORK, image, "idm-callbacks:upgrade-callback-pw",
                                   os.path.join(EPHEMERAL, "pki")):
        yield


def test_callback_pending_since_1_0_0_is_delivered_after_the_upgrade(data, callback_receiver):
    stats = callback_receiver_wait_for_callback(RECEIVER, timeout=90)
    assert stats and stats.get("unique", 0) >= 1, stats
    assert stats.get("unauthorized", 0) == 0, stats
    deadline = time.monotonic() + 30
    state = ""
    while time.monotonic() < deadline:
        state = psql("SELECT state FROM hermod_callback WHERE command_id = '%s'" % data["answered"])
        if state == "delivered":
            break
        time.sleep(1)
    assert state == "delivered"
