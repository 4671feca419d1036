"""Fixtures: a real PostgreSQL (throwaway cluster, or HERMOD_TEST_DSN), databases at a
chosen schema version, the service as a real process, and a callback receiver."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[2] / "collections"))

# hermod_ref/rules.py is the collection's messaging_rules.py (images/messaging/shared-files),
# not kept in git here: bring the copy up to date before anything imports the package.
from ansible_collections.smartid.hermod.plugins.module_utils.images_build import (  # noqa: E402
    images_sync_shared,
)

images_sync_shared(str(HERE.parent))

import pgtools  # noqa: E402
from helpers import ReceiverThread, ServiceProcess, make_home  # noqa: E402


@pytest.fixture(scope="session")
def pg_admin_dsn():
    dsn = os.environ.get("HERMOD_TEST_DSN")
    if dsn:
        yield dsn
        return
    cluster = pgtools.Cluster().start()
    try:
        yield cluster.dsn()
    finally:
        cluster.stop()


@pytest.fixture
def database(pg_admin_dsn):
    """factory: database(*sql_files) -> dsn of a fresh database with those files applied."""
    made = []

    def make(*files: str) -> str:
        name = f"hermod_t_{uuid.uuid4().hex[:10]}"
        dsn = pgtools.create_database(pg_admin_dsn, name)
        made.append(name)
        for f in files:
            pgtools.apply(dsn, f)
        return dsn

    yield make
    import psycopg

    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def receiver():
    r = ReceiverThread(basic_auth="cbuser:cb-secret-pw")
    yield r
    r.stop()


@pytest.fixture
def services(tmp_path):
    """factory: services(home, release=..., **env) -> a started ServiceProcess; all stopped at the end."""
    started = []

    def start(home, release="1.1.0", wait=True, **env):
        proc = ServiceProcess(home, release=release, env=env)
        started.append(proc)
        proc.start(wait=wait)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def service(database, receiver, services, tmp_path):
    """A 1.1.0 service on a fresh 1.1.0 database with client idm -> the receiver."""
    dsn = database("V1.1.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, receiver.url)
    proc = services(home)
    proc.dsn = dsn
    return proc
