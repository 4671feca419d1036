"""PostgreSQL restarted in its container under load (what a deployment's database restart is):
the service answers every command 202 or 503, never 500, and takes commands again without a
restart of its own. A halted local server (test_database_outage.py) does not show everything a
container restart does: asyncpg reports some connections that die mid-operation as an
InternalClientError ("cannot switch to state ..."), which was answered 500."""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

import pgtools
from helpers import make_home

ROOT = Path(__file__).resolve().parents[4]
IMAGE = os.environ.get("DBTEST_POSTGRES_IMAGE", "smartid/postgres:dbtest")
PASSWORD = "db-secret-pw"  # the password make_home writes into hermod-conf.yml

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def docker(*args, **kw):
    return subprocess.run(["docker", *args], capture_output=True, text=True, **kw)


@pytest.fixture
def pg_container():
    if docker("info").returncode != 0:
        pytest.fail("needs a running Docker engine")
    if docker("image", "inspect", IMAGE).returncode != 0:
        docker("build", "-q", "--build-arg", "BASE_IMAGE=smartid/base:bookworm", "-t", IMAGE,
               str(ROOT / "images" / "postgres"), check=True)
    name = "hermod-restart-test-%s" % uuid.uuid4().hex[:8]
    docker("run", "-d", "--name", name, "-e", "POSTGRES_PASSWORD=" + PASSWORD, IMAGE, check=True)
    try:
        address = docker("inspect", name, "--format",
                         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.strip()
        admin = f"postgresql://postgres:{PASSWORD}@{address}:5432/postgres"
        deadline = time.monotonic() + 90
        while True:
            try:
                psycopg.connect(admin, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, docker("logs", name).stderr
                time.sleep(1)
        yield name, admin
    finally:
        docker("rm", "-f", "-v", name)


def ping():
    return {"pingCommand": {"nonce": "nonce-0123456789", "userid": "alice", "responseformat": "jws"}}


def test_a_database_restart_under_load_gets_503_never_500(pg_container, receiver, services, tmp_path):
    name, admin = pg_container
    dsn = pgtools.create_database(admin, f"hermod_t_{uuid.uuid4().hex[:10]}")
    pgtools.apply(dsn, "V1.1.0__base_version.sql")
    proc = services(make_home(tmp_path / "home", dsn, receiver.url, workers=2))
    statuses = collections.Counter()
    stop = time.monotonic() + 20

    def load():
        while time.monotonic() < stop:
            statuses[proc.command("ping", ping()).status_code] += 1

    threads = [threading.Thread(target=load) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    docker("restart", name, check=True)
    for thread in threads:
        thread.join()

    log = proc.log_path.read_text()
    assert "Unhandled error" not in log, log[log.find("Unhandled error"):][:3000]
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[503] > 0, statuses       # the restart was seen
    assert proc.command("ping", ping()).status_code == 202
