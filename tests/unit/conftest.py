"""Fixtures shared by the database tests (test_database_flyway, test_database_baseline,
test_database_modules).

The helpers they build on stay in conftest_database.py, which the tests import by name.
"""

from __future__ import annotations

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils.database_client import DatabaseClient
from conftest_database import HAVE_PG, PG_BIN, PG_MISSING, PostgresCluster, require, write_fixture_sql


# Module scope: starting a cluster takes seconds, so each test file starts one and `db`
# empties it between tests.
@pytest.fixture(scope="module")
def database_cluster():
    require(HAVE_PG, PG_MISSING)
    pg = PostgresCluster().start()
    yield pg
    pg.stop()


@pytest.fixture
def db(database_cluster):
    database_cluster.reset()
    return database_cluster


@pytest.fixture
def client(db):
    return DatabaseClient("local", db.database, db.user, db.password, host="127.0.0.1", port=db.port,
                          client_bin_dir=str(PG_BIN))


@pytest.fixture
def sql_dir(tmp_path):
    return write_fixture_sql(tmp_path / "postgresql")
