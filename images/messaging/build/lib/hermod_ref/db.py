"""Connection pool to PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from .config import Database

log = logging.getLogger("hermod.db")


def connect_kwargs(db: Database) -> dict:
    return dict(host=db.host, port=db.port, database=db.name, user=db.user, password=db.password or None)


async def connect_with_retry(db: Database, deadline_s: float):
    """One connection, retried while the database container is still starting."""
    end = time.monotonic() + deadline_s
    delay = 0.5
    while True:
        try:
            return await asyncpg.connect(timeout=5, **connect_kwargs(db))
        except (OSError, asyncpg.CannotConnectNowError, asyncio.TimeoutError) as exc:
            if time.monotonic() + delay > end:
                raise
            log.warning("Database %s:%s not reachable yet (%s); retrying", db.host, db.port, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


async def create_pool(db: Database):
    return await asyncpg.create_pool(min_size=1, max_size=db.pool_size, timeout=10, **connect_kwargs(db))
