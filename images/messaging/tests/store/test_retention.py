"""Retention against a real database: which finished commands a sweep deletes (with their
callbacks and attempts), and what it never touches."""

import asyncio
import time
import uuid

import asyncpg
import pytest

from hermod_ref.ids import uuid7, uuid_bound
from hermod_ref.store import queries, retention

PERIOD = 3600
OLD = 2 * PERIOD
YOUNG = 60


@pytest.fixture
def dsn(database):
    return database("V1.1.0__base_version.sql")


def run(dsn, body):
    async def main():
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            return await body(pool)
        finally:
            await pool.close()
    return asyncio.run(main())


async def add(pool, state, age, callback=None, attempts=0, command_id=None):
    """A command created `age` seconds ago (its id made then, as the service would have), with
    a callback in state `callback` and `attempts` attempt rows; returns the command id."""
    command_id = command_id or uuid7(time.time() - age)
    await pool.execute(
        "INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce, userid,"
        " response_format, payload, state, timeout_seconds, created_at, expires_at)"
        " VALUES ($1, 'idm', 'g', 'ping', $2, 'nonce-0123456789', 'alice', 'json', '{}', $3, 60,"
        " now() - make_interval(secs => $4), now() - make_interval(secs => $4) + interval '5 minutes')",
        command_id, uuid.uuid4().hex, state, float(age))
    if callback:
        callback_id = uuid7(time.time() - age)
        await pool.execute(
            "INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body, state, created_at)"
            " VALUES ($1, $2, 'idm', 'ping', '{}', $3, now() - make_interval(secs => $4))",
            callback_id, command_id, callback, float(age))
        for n in range(1, attempts + 1):
            await pool.execute("INSERT INTO hermod_callback_attempt (callback_id, attempt, node, duration_ms)"
                               " VALUES ($1, $2, 'n1', 5)", callback_id, n)
    return command_id


async def ids(pool, table="hermod_command"):
    return {r["id"] for r in await pool.fetch(f"SELECT id FROM {table}")}


def test_old_finished_commands_go_with_their_callbacks_and_attempts(dsn):
    async def body(pool):
        gone = [await add(pool, "answered", OLD, "delivered", attempts=2),
                await add(pool, "answered", OLD, "failed", attempts=3),
                await add(pool, "expired", OLD, "delivered", attempts=1)]
        kept = [await add(pool, "pending", OLD), await add(pool, "fetched", OLD),
                await add(pool, "answered", OLD, "pending", attempts=2),
                await add(pool, "expired", OLD, "pending"),
                await add(pool, "answered", YOUNG, "delivered", attempts=1),
                await add(pool, "expired", YOUNG, "failed")]
        await pool.execute("INSERT INTO hermod_device_key (client_group, userid, jwk, command_id, registered_at)"
                           " VALUES ('g', 'alice', '{}', $1, now() - interval '400 days')", gone[0])
        deleted = await retention.purge(pool, PERIOD)
        return gone, kept, deleted, await ids(pool), await pool.fetch(
            "SELECT b.command_id, count(a.id) AS attempts FROM hermod_callback b"
            " LEFT JOIN hermod_callback_attempt a ON a.callback_id = b.id GROUP BY b.command_id"), \
            await pool.fetchval("SELECT count(*) FROM hermod_device_key")

    gone, kept, deleted, left, callbacks, keys = run(dsn, body)
    assert deleted == 3 and left == set(kept)
    assert {r["command_id"] for r in callbacks} == set(kept[2:])  # no orphans: the cascade took them
    assert sum(r["attempts"] for r in callbacks) == 3  # the kept callbacks' attempts stay
    assert keys == 1  # device keys are long-lived state


def test_period_zero_deletes_nothing(dsn):
    async def body(pool):
        await add(pool, "answered", 400 * 86400, "delivered")
        return await retention.purge(pool, 0), len(await ids(pool))

    assert run(dsn, body) == (0, 1)


@pytest.mark.parametrize("batch, rows", [(10, 25), (retention.BATCH, 2 * retention.BATCH + 5)])
def test_every_batch_is_deleted_while_batches_come_back_full(dsn, batch, rows):
    async def body(pool):
        # set-based: old answered commands with delivered callbacks
        await pool.execute(
            "INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce, userid,"
            " response_format, payload, state, timeout_seconds, created_at, expires_at)"
            " SELECT id, 'idm', 'g', 'ping', id::text, 'n', 'u', 'json', '{}', 'answered', 60,"
            "        now() - interval '2 hours', now() - interval '2 hours'"
            "   FROM unnest($1::uuid[]) AS id", [uuid7(time.time() - OLD - i) for i in range(rows)])
        await pool.execute(
            "INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body, state)"
            " SELECT gen_random_uuid(), id, 'idm', 'ping', '{}', 'delivered' FROM hermod_command")
        young = await add(pool, "answered", YOUNG, "delivered")
        deleted = await retention.purge(pool, PERIOD, batch=batch)
        return deleted, await ids(pool), await pool.fetchval("SELECT count(*) FROM hermod_callback"), young

    deleted, left, callbacks, young = run(dsn, body)
    assert deleted == rows and left == {young} and callbacks == 1


LOW_V4 = uuid.UUID("00000000-0000-4000-8000-000000000001")  # a random id that happens to sort first
HIGH_V4 = uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")  # and one above every v7 id


def test_legacy_v4_ids_are_judged_by_created_at_when_below_the_bound(dsn):
    async def body(pool):
        old_low = await add(pool, "answered", OLD, "delivered", command_id=LOW_V4)
        young_low = await add(pool, "answered", YOUNG, "delivered",
                              command_id=uuid.UUID("00000000-0000-4000-8000-000000000002"))
        old_high = await add(pool, "answered", OLD, "delivered", command_id=HIGH_V4)
        assert LOW_V4 < uuid_bound(time.time() - PERIOD) < HIGH_V4
        deleted = await retention.purge(pool, PERIOD)
        return old_low, young_low, old_high, deleted, await ids(pool)

    old_low, young_low, old_high, deleted, left = run(dsn, body)
    # below the bound: the old one goes, the young one stays (created_at decides);
    # above the bound: not reached by the index range (README.md: one-off statement)
    assert deleted == 1 and left == {young_low, old_high}


def test_the_readme_statement_for_legacy_rows_deletes_them(dsn):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    statement = re.search(r"```sql\n(DELETE FROM hermod_command.*?)```", readme, re.S).group(1)

    async def body(pool):
        await add(pool, "answered", OLD, "delivered", command_id=HIGH_V4)
        kept = [await add(pool, "answered", OLD, "pending"), await add(pool, "fetched", OLD),
                await add(pool, "answered", YOUNG, "delivered")]
        await pool.execute(statement.replace(":period", str(PERIOD)))
        return kept, await ids(pool)

    kept, left = run(dsn, body)
    assert left == set(kept)


def test_timeout_callbacks_get_time_ordered_ids(dsn):
    async def body(pool):
        command = await add(pool, "pending", OLD)
        before = uuid_bound(time.time() - 1)
        await pool.fetch(queries.EXPIRE, 500)
        return command, before, await pool.fetchrow("SELECT id, command_id FROM hermod_callback"), \
            uuid_bound(time.time() + 1)

    command, before, callback, after = run(dsn, body)
    assert callback["command_id"] == command
    assert callback["id"].version == 7 and callback["id"].variant == uuid.RFC_4122
    assert before < callback["id"] < after
