"""Fixtures shared by the database tests (test_database_flyway, test_database_modules).

The helpers they build on stay in conftest_database.py, which the tests import by name.
"""

from __future__ import annotations

import pytest

from conftest_database import HAVE_PG, PG_MISSING, PostgresCluster, require


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
