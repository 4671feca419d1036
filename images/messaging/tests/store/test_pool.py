"""The worker's connection pool against a real database: with hermod.database.pool-warm every
connection opened at start-up, each with the hot statements of its release prepared, no more
connections under a burst, and a start that goes on with fewer when the server refuses some;
without it, one connection until the load asks for more."""

import asyncio
import logging
import uuid
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from hermod_ref.config import Database
from hermod_ref.store import db, queries

POOL_SIZE = 4


def database_config(dsn: str, warm: bool = True) -> Database:
    url = urlsplit(dsn)
    return Database(url.hostname, url.port, url.path.lstrip("/"), url.username, url.password or "",
                    pool_size=POOL_SIZE, pool_warm=warm)


def backends(admin_dsn: str, name: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]


@pytest.mark.parametrize("release_sql, records_attempts", [
    (("V1.1.0__base_version.sql",), True),
    (("V1.0.0__base_version.sql",), False),
])
def test_every_connection_is_open_and_prepared_before_the_first_request(database, pg_admin_dsn, release_sql,
                                                                         records_attempts):
    dsn = database(*release_sql)
    cfg = database_config(dsn)
    prepared = []

    async def main():
        statements = queries.hot_statements(records_attempts)
        pool = await db.create_pool(cfg, prepare=statements)
        try:
            opened = await asyncio.to_thread(backends, pg_admin_dsn, cfg.name)
            # a burst of three times the pool's size in flight: queued, no connection added
            await asyncio.gather(*(pool.fetchval("SELECT pg_sleep(0.05)") for _ in range(3 * POOL_SIZE)))
            after_burst = await asyncio.to_thread(backends, pg_admin_dsn, cfg.name)
            # each connection knows the statements' parameter types: the introspection is done
            async with pool.acquire() as conn:
                for sql in statements:
                    prepared.append(await conn.prepare(sql))
            return opened, after_burst
        finally:
            await pool.close()

    opened, after_burst = asyncio.run(main())
    assert opened == POOL_SIZE
    assert after_burst == POOL_SIZE
    assert len(prepared) == len(queries.hot_statements(records_attempts)) >= 9


def test_a_statement_the_schema_cannot_run_fails_the_pool_at_start_up(database):
    """The preparation runs for real: 1.1.0's statements on a 1.0.0 schema (no attempts table)."""
    cfg = database_config(database("V1.0.0__base_version.sql"))

    async def main():
        pool = await db.create_pool(cfg, prepare=queries.hot_statements(True))
        await pool.close()

    with pytest.raises((asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError)):
        asyncio.run(main())


def test_a_server_at_its_connection_limit_leaves_the_pool_smaller_not_the_start_failed(database, pg_admin_dsn,
                                                                                      caplog):
    """As on a swarm during a rolling update: old and new replicas side by side near the server's
    limit (here a role limited to 2 connections). The pool starts with what it got and says so."""
    dsn = database("V1.1.0__base_version.sql")
    cfg = database_config(dsn)
    role = f"hermod_lim_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 2')
        conn.execute(f'GRANT ALL ON DATABASE "{cfg.name}" TO "{role}"')
    limited = Database(cfg.host, cfg.port, cfg.name, role, "", pool_size=POOL_SIZE, pool_warm=True)

    async def main():
        pool = await db.create_pool(limited)
        try:
            opened = await asyncio.to_thread(backends, pg_admin_dsn, cfg.name)
            return opened, await pool.fetchval("SELECT 1")
        finally:
            await pool.close()

    try:
        with caplog.at_level(logging.WARNING, logger="hermod.db"):
            opened, answer = asyncio.run(main())
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{cfg.name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE "{role}"')
    assert (opened, answer) == (2, 1)
    assert "2 of 4 connections opened at start-up (TooManyConnectionsError)" in caplog.text


def test_without_warm_up_the_pool_starts_with_one_connection_and_grows_on_demand(database, pg_admin_dsn):
    cfg = database_config(database("V1.1.0__base_version.sql"), warm=False)

    async def main():
        pool = await db.create_pool(cfg, prepare=queries.hot_statements(True))
        try:
            at_start = await asyncio.to_thread(backends, pg_admin_dsn, cfg.name)
            await asyncio.gather(*(pool.fetchval("SELECT pg_sleep(0.05)") for _ in range(POOL_SIZE)))
            return at_start, await asyncio.to_thread(backends, pg_admin_dsn, cfg.name)
        finally:
            await pool.close()

    assert asyncio.run(main()) == (1, POOL_SIZE)
