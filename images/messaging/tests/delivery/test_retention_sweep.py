"""The retention sweep of the background loop (Sweeper): deletes, counts, logs, survives errors."""

import asyncio
import dataclasses
import logging
import time

import asyncpg

from hermod_ref import config, metrics
from hermod_ref.delivery.dispatcher import Sweeper
from hermod_ref.ids import uuid7

CFG = config.from_tree({
    "spring": {"datasource": {"url": "jdbc:postgresql://db/hermod", "username": "u", "password": "pw-SECRET"}},
    "public-url": "https://example.test/ms",
    "hermod": {"retention": {"period": 3600, "poll-interval": 1}},
})


def test_a_sweep_deletes_counts_and_logs(database, caplog):
    dsn = database("V1.1.0__base_version.sql")

    async def main():
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            await pool.execute(
                "INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce, userid,"
                " response_format, payload, state, timeout_seconds, created_at, expires_at)"
                " SELECT id, 'idm', 'g', 'ping', id::text, 'n', 'u', 'json', '{}', 'expired', 60,"
                "        now() - interval '2 hours', now() - interval '2 hours'"
                "   FROM unnest($1::uuid[]) AS id", [uuid7(time.time() - 7200) for _ in range(7)])
            sweeper = Sweeper(CFG, pool, None)
            first, second = await sweeper.sweep_retention(), await sweeper.sweep_retention()
            return first, second, await pool.fetchval("SELECT count(*) FROM hermod_command")
        finally:
            await pool.close()

    before = metrics.RETENTION_DELETED.snapshot()
    with caplog.at_level(logging.INFO, logger="hermod.retention"):
        first, second, left = asyncio.run(main())
    assert (first, second, left) == (7, 0, 0)
    assert metrics.RETENTION_DELETED.snapshot() - before == 7
    lines = [r.getMessage() for r in caplog.records if r.name == "hermod.retention"]
    assert lines == ["Retention: deleted 7 finished command(s) older than 3600s with their callbacks"]


def test_a_failing_sweep_logs_the_error_type_only(caplog):
    class Broken:
        async def execute(self, *args):
            raise ConnectionError("password=pw-SECRET refused")

    with caplog.at_level(logging.INFO, logger="hermod.retention"):
        assert asyncio.run(Sweeper(CFG, Broken(), None).sweep_retention()) == 0
    assert [r.getMessage() for r in caplog.records] == ["Deleting finished commands failed: ConnectionError"]


def test_period_zero_starts_no_retention_loop():
    class NoDatabase:
        async def execute(self, *args):
            raise AssertionError("no statement expected")

    sweeper = Sweeper(dataclasses.replace(CFG, retention_period=0), NoDatabase(), None)
    asyncio.run(asyncio.wait_for(sweeper._retention_loop(), 1))


def test_stop_ends_the_retention_loop_between_sweeps():
    calls = []

    class Empty:
        async def execute(self, *args):
            calls.append(args)
            return "DELETE 0"

    async def main():
        sweeper = Sweeper(dataclasses.replace(CFG, retention_poll_interval=0.05), Empty(), None)
        task = asyncio.create_task(sweeper._retention_loop())
        await asyncio.sleep(0.3)
        sweeper.stop()
        await asyncio.wait_for(task, 1)

    asyncio.run(main())
    assert len(calls) >= 2  # it swept repeatedly, then stopped at once


def test_batches_deleted_before_a_failure_are_counted(caplog):
    class FailsSecond:
        calls = 0

        async def execute(self, *args):
            self.calls += 1
            if self.calls == 2:
                raise OSError("connection reset")
            return "DELETE 1000"

    before = metrics.RETENTION_DELETED.snapshot()
    with caplog.at_level(logging.INFO, logger="hermod.retention"):
        assert asyncio.run(Sweeper(CFG, FailsSecond(), None).sweep_retention()) == 1000
    assert metrics.RETENTION_DELETED.snapshot() - before == 1000
    assert [r.getMessage() for r in caplog.records] == [
        "Deleting finished commands failed: OSError",
        "Retention: deleted 1000 finished command(s) older than 3600s with their callbacks"]
